"""Everything a batch process shares between its clips: the CPU slots, the model thread (through
`SharedCaptioner` / `SharedGenerator`, the captioner and generator factories `api.plan` and
`api.render` are given), the opened bridges and the cache."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..bridge import Bridge
from ..cache import Cache
from ..music import OnStep
from ..plans import Settings
from ..progress import Reporter
from ..specs import ModelSpec, Sampling, caption_spec, music_spec
from .server import ContinueWork, CpuSlots, Loader, ModelServer, MusicWork, load_model

# api.plan hands a captioner `batch_size` frames per call: all of a clip's frames at once, so that
# the model thread can gather them with other clips' and split them by the real model's batch size.
_WHOLE_CLIP = 1 << 30


class SharedCaptioner:
    """A `scoretool.caption.Captioner` whose calls run on the model thread, gathered with other clips'."""

    def __init__(self, server: ModelServer, spec: ModelSpec):
        model = server.captioner(spec)
        self._server, self._requested = server, spec
        self.name = model.name
        self.spec = model.spec  # as it really runs
        self.batch_size = _WHOLE_CLIP

    def caption(self, images: list) -> list[str]:
        return self._server.caption(self._requested, images) if images else []


class SharedGenerator:
    """A `scoretool.music.MusicGenerator` whose calls run on the model thread. `generate` calls of
    several clips with the same spec and sampling share one model call; `continue_from` runs alone."""

    def __init__(self, server: ModelServer, spec: ModelSpec):
        model = server.generator(spec)
        self._server, self._requested = server, spec
        self.name = model.name
        self.spec = model.spec  # as it really runs
        self.sample_rate = model.sample_rate

    def steps(self, durations: list[float]) -> None:
        """No per-clip step count: a clip's scenes share their model calls with other clips'."""
        return None

    def generate(self, prompts: list[str], durations: list[float], seeds: list[int], sampling: Sampling,
                 on_step: OnStep | None = None) -> list[np.ndarray]:
        work = MusicWork(list(prompts), list(durations), list(seeds))
        return self._server.generate(self._requested, sampling, work, on_step)

    def continue_from(self, prompt: str, audio: np.ndarray, duration: float, seed: int, sampling: Sampling,
                      on_step: OnStep | None = None) -> np.ndarray:
        return self._server.continue_from(self._requested, sampling, ContinueWork(prompt, audio, duration, seed), on_step)


class Engine:
    """CPU slots, the model thread and the bridges of one process (a local batch, or a Ray actor)."""

    def __init__(self, jobs: int = 2, *, music_batch: int = 8, linger: float = 0.05,
                 status: Callable[[str], None] | None = None, inline: bool = False, cache: Cache | None = None,
                 loader: Loader = load_model):
        self.cache = cache  # shared by the clips; None: no cache
        self.jobs = max(1, jobs)
        self.slots = CpuSlots(self.jobs)
        self.server = ModelServer(self.slots, music_batch=music_batch, linger=linger, status=status, inline=inline,
                                  loader=loader)
        self._bridges: dict[tuple, tuple[Bridge, str, str | None]] = {}
        self._lock = threading.Lock()

    @property
    def window(self) -> int:
        """Clips in flight: the CPU workers, plus enough waiting on the model to fill a music batch."""
        return self.jobs + max(2, self.server.music_batch)

    def preload(self, settings: Settings) -> None:
        """Open the bridge and load both models the batch's settings name (its `--preset` applied),
        so that a missing model or key stops the batch with one line instead of failing every clip."""
        from ..presets import get_preset, load_presets

        self.bridge(settings, Reporter())
        preset = get_preset(settings.preset, load_presets(settings.presets_dir)) if settings.preset else None
        resolved = settings.resolved(preset)
        self.captioner(caption_spec(resolved))
        self.generator(music_spec(resolved))

    def bridge(self, settings: Settings, reporter: Reporter) -> tuple[Bridge, Settings]:
        """The bridge for these settings, opened once (`auto` resolved, the LLM's key checked), and
        the settings with the bridge resolved."""
        from .. import api

        key = (settings.bridge, settings.llm_model, settings.device)
        with self._lock:
            if key not in self._bridges:
                bridge, resolved = api.open_bridge(settings, reporter)
                self._bridges[key] = (bridge, resolved.bridge, resolved.llm_model)
        bridge, name, llm_model = self._bridges[key]
        return bridge, replace(settings, bridge=name, llm_model=llm_model)

    def captioner(self, spec: ModelSpec) -> SharedCaptioner:
        """The captioner factory `api.plan` is given."""
        return SharedCaptioner(self.server, spec)

    def generator(self, spec: ModelSpec) -> SharedGenerator:
        """The generator factory `api.render` is given."""
        return SharedGenerator(self.server, spec)

    def close(self, reason: BaseException | None = None) -> None:
        self.server.stop(reason)

"""The model thread of a batch: it owns every loaded model and runs every model call, gathering
the requests of several clips into one call.

Models are keyed by their `ModelSpec` alone: one loaded captioner or generator per spec, whatever
the sampling settings of the clips it serves. Music requests share a call only when their spec and
their `Sampling` are equal (one `generate` call takes one sampling); a clip's music depends only on
its prompts, seeds and sampling, never on its batch-mates, so gathering changes nothing but speed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..caption import Captioner
from ..errors import ScoreToolError
from ..music import MusicGenerator, OnStep
from ..specs import ModelSpec, Sampling

ModelKind = Literal["caption", "music"]
# kind + spec -> the loaded model (a Captioner for "caption", a MusicGenerator for "music").
Loader = Callable[[str, ModelSpec], object]


def load_model(kind: str, spec: ModelSpec) -> Captioner | MusicGenerator:
    """The default loader: the pipeline's own `load_captioner` / `load_music_generator`."""
    if kind == "caption":
        from ..caption import load_captioner

        return load_captioner(spec)
    from ..music import load_music_generator

    return load_music_generator(spec)


class Aborted(Exception):
    """The batch is stopping (Ctrl-C, or the models could not be loaded): drop this clip's work."""


class _Holding(threading.local):
    held = False  # whether this thread holds a CPU slot


class CpuSlots:
    """At most `n` threads doing CPU work at once; threads finishing a clip go before new ones."""

    def __init__(self, n: int):
        self.n = max(1, n)
        self._free = self.n
        self._urgent = 0
        self._waiting = 0
        self._cv = threading.Condition()
        self._local = _Holding()

    def acquire(self, urgent: bool = False) -> None:
        with self._cv:
            self._urgent += urgent
            self._waiting += 1
            try:
                while self._free == 0 or (not urgent and self._urgent):
                    self._cv.wait()
            finally:
                self._urgent -= urgent
                self._waiting -= 1
            self._free -= 1
        self._local.held = True

    def release(self) -> None:
        if not self.held():
            return
        self._local.held = False
        with self._cv:
            self._free += 1
            self._cv.notify_all()

    def held(self) -> bool:
        """Whether the calling thread holds a slot."""
        return self._local.held

    def busy(self) -> int:
        return self.n - self._free

    def waiting(self) -> int:
        """Threads waiting for a slot."""
        with self._cv:
            return self._waiting


@dataclass(frozen=True)
class MusicWork:
    prompts: list[str]
    durations: list[float]
    seeds: list[int]


@dataclass(frozen=True)
class ContinueWork:
    prompt: str
    audio: np.ndarray
    duration: float
    seed: int


Job = Literal["load", "caption", "music", "continue"]
_PRIORITY = {"load": 0, "caption": 1, "music": 2, "continue": 2}  # captions unblock the bridge, which feeds music
_ALONE = ("load", "continue")  # never gathered with other requests


class _Request:
    _numbers = itertools.count()  # next() on it is atomic: requests keep their arrival order

    def __init__(self, job: Job, kind: ModelKind, spec: ModelSpec, payload=None, *, size: int = 1,
                 sampling: Sampling | None = None, on_step: OnStep | None = None):
        self.seq = next(_Request._numbers)
        self.job, self.kind, self.spec, self.payload = job, kind, spec, payload
        self.size, self.sampling, self.on_step = size, sampling, on_step
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None

    @property
    def group(self) -> tuple:
        """Requests of one group may share a model call."""
        return self.job, self.kind, self.spec, self.sampling


class ModelServer:
    """Runs the model calls of every clip, gathering pending requests: all captions first, then
    music, up to `music_batch` scenes a call. It never waits for a batch to fill while it has work,
    except for `linger` seconds while other threads are still busy on the CPU (and may add
    requests). A gathered call that fails is retried one request at a time, so one bad clip fails alone.

    `inline=True`: the thread that creates the server serves it, by calling `serve()` in its loop
    (the CLI's main thread: a thread other than the main one that has run torch must not end while
    the interpreter shuts down, pytorch/pytorch#38228, or the process aborts with "terminate called
    without an active exception"). Otherwise the server starts its own daemon thread.
    """

    def __init__(self, slots: CpuSlots, *, music_batch: int = 8, linger: float = 0.05,
                 status: Callable[[str], None] | None = None, inline: bool = False, loader: Loader = load_model):
        self.slots = slots
        self.music_batch = max(1, music_batch)
        self.linger = linger
        self.status = status or (lambda text: None)
        self.loader = loader
        self.calls: list[tuple[str, int, int]] = []  # (job, requests, items) per model call, for reports
        self._models: dict[tuple[str, ModelSpec], object] = {}
        self._queue: list[_Request] = []
        self._cv = threading.Condition()
        self._stopped: BaseException | None = None
        if inline:
            self._owner = threading.current_thread()
        else:
            self._owner = threading.Thread(target=self._serve_forever, name="scoretool-models", daemon=True)
            self._owner.start()

    # ------------------------------------------------------------------ what clips ask for

    def captioner(self, spec: ModelSpec) -> Captioner:
        """The captioner for `spec`, loaded on the model thread the first time."""
        return self._load("caption", spec)

    def generator(self, spec: ModelSpec) -> MusicGenerator:
        """The music generator for `spec`, loaded on the model thread the first time."""
        return self._load("music", spec)

    def _load(self, kind: ModelKind, spec: ModelSpec):
        # Once loaded, a model is handed out at once: a clip need not wait for the call in progress.
        loaded = self._models.get((kind, spec))
        return loaded if loaded is not None else self._call(_Request("load", kind, spec, size=0))

    def caption(self, spec: ModelSpec, images: list) -> list[str]:
        return self._call(_Request("caption", "caption", spec, list(images), size=len(images)))

    def generate(self, spec: ModelSpec, sampling: Sampling, work: MusicWork, on_step: OnStep | None = None) -> list:
        return self._call(_Request("music", "music", spec, work, size=len(work.prompts), sampling=sampling, on_step=on_step))

    def continue_from(self, spec: ModelSpec, sampling: Sampling, work: ContinueWork, on_step: OnStep | None = None):
        return self._call(_Request("continue", "music", spec, work, sampling=sampling, on_step=on_step))

    def waiting(self) -> int:
        """Requests queued and not yet taken into a model call."""
        with self._cv:
            return len(self._queue)

    # ------------------------------------------------------------------ serving

    def _call(self, request: _Request):
        """Run one request on the model thread and wait for it, giving up the CPU slot meanwhile."""
        if threading.current_thread() is self._owner:  # the serving thread itself (preloading models)
            self._run([request])
            return self._outcome(request)
        with self._cv:
            if self._stopped is not None:
                raise Aborted(str(self._stopped))
            self._queue.append(request)
            self._cv.notify_all()
        held = self.slots.held()
        self.slots.release()
        try:
            request.done.wait()
        finally:
            if held:
                self.slots.acquire(urgent=True)
        return self._outcome(request)

    @staticmethod
    def _outcome(request: _Request):
        if request.error is not None:
            raise request.error
        return request.result

    def stop(self, reason: BaseException | None = None) -> None:
        """Fail every waiting request with Aborted and end the model thread after its current call."""
        with self._cv:
            self._stopped = reason or Aborted("stopped")
            pending, self._queue = self._queue, []
            self._cv.notify_all()
        for r in pending:
            r.error = Aborted(str(self._stopped))
            r.done.set()

    def serve(self, timeout: float | None = None) -> bool:
        """Run the next model call, waiting up to `timeout` s for a request. False if there was none."""
        with self._cv:
            if not self._queue and self._stopped is None:
                self._cv.wait(timeout)
            if not self._queue or self._stopped is not None:
                return False
            batch = self._take()
        self._run(batch)
        self.status("idle")
        return True

    def _serve_forever(self) -> None:
        while self._stopped is None:
            self.serve()

    def _take(self) -> list[_Request]:
        """Pick the next call's requests (called with the lock held; may wait up to `linger`)."""
        first = min(self._queue, key=lambda r: (_PRIORITY[r.job], r.seq))
        if first.job in _ALONE:
            self._queue.remove(first)
            return [first]
        cap = self._cap(first)
        deadline = time.monotonic() + self.linger
        while True:
            same = sorted((r for r in self._queue if r.group == first.group), key=lambda r: r.seq)
            left = deadline - time.monotonic()
            if sum(r.size for r in same) >= cap or left <= 0 or self.slots.busy() == 0 or self._stopped is not None:
                break
            self._cv.wait(left)
        batch, total = [], 0
        for r in same:
            if batch and total + r.size > cap:
                break
            batch.append(r)
            total += r.size
        for r in batch:
            self._queue.remove(r)
        return batch

    def _cap(self, request: _Request) -> int:
        if request.job == "music":
            return self.music_batch
        model = self._models.get((request.kind, request.spec))
        return 2 * (model.batch_size if model is not None else 8)

    def _model(self, kind: str, spec: ModelSpec):
        if (kind, spec) not in self._models:
            self.status(f"loading {spec.describe()}")
            self._models[kind, spec] = self.loader(kind, spec)
        return self._models[kind, spec]

    def _run(self, batch: list[_Request]) -> None:
        try:
            for r, result in zip(batch, self._execute(batch)):
                r.result = result
        except Exception as exc:  # noqa: BLE001 - handed to the waiting clip(s)
            if len(batch) > 1 and not isinstance(exc, ScoreToolError):
                for r in batch:  # fault isolation: find the request that fails
                    self._run([r])
                return
            for r in batch:
                r.error = exc
        finally:
            for r in batch:
                r.done.set()

    def _execute(self, batch: list[_Request]) -> list:
        first = batch[0]
        model = self._model(first.kind, first.spec)
        if first.job == "load":
            return [model]
        self.calls.append((first.job, len(batch), sum(r.size for r in batch)))
        if first.job == "caption":
            return self._captions(model, batch)
        if first.job == "continue":
            work: ContinueWork = first.payload
            self.status("continuing a scene's music for 1 clip")
            return [model.continue_from(work.prompt, work.audio, work.duration, work.seed, first.sampling, first.on_step)]
        return self._music(model, batch)

    def _captions(self, model: Captioner, batch: list[_Request]) -> list[list[str]]:
        images = [im for r in batch for im in r.payload]
        self.status(f"captions: {len(images)} frame(s) of {len(batch)} clip(s)")
        captions: list[str] = []
        for i in range(0, len(images), max(1, model.batch_size)):
            captions += model.caption(images[i : i + model.batch_size])
        return _split(captions, [len(r.payload) for r in batch])

    def _music(self, model: MusicGenerator, batch: list[_Request]) -> list[list]:
        works: list[MusicWork] = [r.payload for r in batch]
        prompts = [p for w in works for p in w.prompts]
        self.status(f"music: {len(prompts)} scene(s) of {len(batch)} clip(s)")
        steppers = [r.on_step for r in batch if r.on_step]

        def on_step(n: int = 1) -> None:
            for step in steppers:
                step(n)

        made = model.generate(prompts, [d for w in works for d in w.durations], [s for w in works for s in w.seeds],
                              batch[0].sampling, on_step=on_step if steppers else None)
        return _split(made, [len(w.prompts) for w in works])


def _split(items: list, sizes: list[int]) -> list[list]:
    out, i = [], 0
    for n in sizes:
        out.append(items[i : i + n])
        i += n
    return out

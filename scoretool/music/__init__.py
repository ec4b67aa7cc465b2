"""Music stage: one clip per scene, each exactly as long as asked.

`MusicGenerator` is everything the pipeline calls on a music model; `GENERATORS` maps each backend's
name to its class, and `load_music_generator(spec)` loads the one a `ModelSpec` names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..specs import ModelSpec, Sampling

OnStep = Callable[[int], None]


class MusicGenerator(Protocol):
    name: str
    spec: ModelSpec  # the model as it really runs (its precision after any fallback)
    sample_rate: int

    def steps(self, durations: list[float]) -> int | None:
        """Decoding steps `generate` will report for clips of these durations (None: unknown)."""
        ...

    def generate(
        self, prompts: list[str], durations: list[float], seeds: list[int], sampling: Sampling, on_step: OnStep | None = None
    ) -> list[np.ndarray]:
        """One float32 array of shape (samples, channels) per prompt, `round(duration * sample_rate)` long.

        A clip depends only on its own prompt, duration, seed and `sampling`, not on what else is in the batch.
        """
        ...

    def continue_from(
        self, prompt: str, audio: np.ndarray, duration: float, seed: int, sampling: Sampling, on_step: OnStep | None = None
    ) -> np.ndarray:
        """`audio` followed by `duration` more seconds that continue it, steered by `prompt`."""
        ...


def load_music_generator(spec: ModelSpec) -> MusicGenerator:
    """Only transformers' MusicGen for now; audiocraft (an optional extra) would plug in here."""
    from .musicgen import MusicGenGenerator

    return MusicGenGenerator(spec)

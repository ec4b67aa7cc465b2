"""Music stage: one clip per scene, each exactly as long as asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np


class MusicGenerator(Protocol):
    name: str
    sample_rate: int

    def generate(
        self,
        prompts: list[str],
        durations: list[float],
        seeds: list[int],
        on_step: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """One float32 array of shape (samples, channels) per prompt, `round(duration * sample_rate)` long.

        A clip depends only on its own prompt, duration and seed, not on what else is in the batch.
        """
        ...


def load_music_generator(model: str, device: str, **options) -> MusicGenerator:
    """Only transformers' MusicGen for now; audiocraft (an optional extra) would plug in here."""
    from .musicgen import MusicGenGenerator

    return MusicGenGenerator(model, device, **options)

"""What every tiny-model builder shares: the seed, a seeded RNG scope and the folder writer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

SEED = 0


@contextmanager
def seeded(seed: int = SEED) -> Iterator[None]:
    """Seed torch for reproducible random weights without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save(folder: Path, model, processor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder

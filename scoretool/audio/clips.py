"""The scenes' music clips on disk: each written to a temporary folder as it is made and read back
when asked for, so a long video's music is never all in memory at once."""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Sequence

import numpy as np

from ..files import make_temp_folder, writing


class ClipStore(Sequence):
    """A sequence of float32 clips (samples x channels), one .npy file each; `store[i]` reads it.

    The folder goes when the store is closed or garbage-collected (or the interpreter exits); one
    a killed run left is swept by a later run (`files.make_temp_folder`)."""

    def __init__(self, count: int):
        self._folder = make_temp_folder("clips")
        self._made = [False] * count
        self._remove = weakref.finalize(self, shutil.rmtree, self._folder, True)

    def __len__(self) -> int:
        return len(self._made)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not self._made[index]:
            raise LookupError(f"clip {index} has not been made yet")
        return np.load(self._path(index), allow_pickle=False)

    def __setitem__(self, index: int, clip: np.ndarray) -> None:
        with writing(self._path(index)):  # a refused write is one line naming the file
            np.save(self._path(index), np.asarray(clip, dtype=np.float32), allow_pickle=False)
        self._made[index] = True

    def made(self, index: int) -> bool:
        return self._made[index]

    def _path(self, index: int) -> str:
        return os.path.join(self._folder, f"{index % len(self):05d}.npy")

    def close(self) -> None:
        self._remove()

"""Audio tracks that the mix reads and writes in blocks, so memory stays flat in a video's length.

A `Track` is float32 audio, frames x channels, read and written a stretch at a time. `ArrayTrack`
holds it in memory (short clips, tests, the timeline export); `FileTrack` keeps it in a raw float32
file in a temporary folder and reads it with plain reads, not a memory map: a mapped file's pages
count as the process's memory once touched, a read's do not. Every stage of the mix (`assemble`,
`loudness`, `original`) is written once, against this protocol.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from ..files import writing

BLOCK = 1 << 18  # frames per block: 5.5 s at 48 kHz, 2 MB in stereo float32


class Track(Protocol):
    frames: int
    channels: int

    def read(self, start: int, count: int) -> np.ndarray:
        """Frames start .. start+count (float32, frames x channels), cut short at the track's end."""
        ...

    def write(self, start: int, data: np.ndarray) -> None:
        """Put `data` (frames x channels) at `start`; the track does not grow."""
        ...


class ArrayTrack:
    """A track in memory: `array` is the audio itself."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array, dtype=np.float32)
        self.frames, self.channels = self.array.shape

    def read(self, start: int, count: int) -> np.ndarray:
        return self.array[start : start + count].copy()

    def write(self, start: int, data: np.ndarray) -> None:
        self.array[start : start + len(data)] = data


class FileTrack:
    """A track in a raw float32 file (interleaved frames), created silent."""

    def __init__(self, path: str, frames: int, channels: int):
        self.path, self.frames, self.channels = path, frames, channels
        self._fd = -1
        with writing(path):  # a refused write (disk full, file too large) is one line naming the file
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(self._fd, frames * channels * 4)  # sparse zeros: silence costs no disk

    def read(self, start: int, count: int) -> np.ndarray:
        count = max(0, min(count, self.frames - start))
        data = os.pread(self._fd, count * self.channels * 4, start * self.channels * 4)
        return np.frombuffer(data, dtype=np.float32).reshape(count, self.channels).copy()

    def write(self, start: int, data: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(data[: max(0, self.frames - start)], dtype=np.float32)).cast("B")
        offset = start * self.channels * 4
        with writing(self.path):
            while data:  # a short write (at a size limit) is retried, and the retry says why
                done = os.pwrite(self._fd, data, offset)
                data, offset = data[done:], offset + done

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        self.close()


# Where a mix keeps its tracks: (name, frames, channels) -> a new silent Track.
TrackFactory = Callable[[str, int, int], Track]


def in_memory(_name: str, frames: int, channels: int) -> ArrayTrack:
    return ArrayTrack(np.zeros((frames, channels), dtype=np.float32))


def in_folder(folder: str) -> TrackFactory:
    """Tracks as files in `folder` (the run's temp folder), a new file each time (numbered)."""
    made = itertools.count(1)
    return lambda name, frames, channels: FileTrack(os.path.join(folder, f"{next(made):02d}-{name}.f32"), frames, channels)


def spans(frames: int, block: int | None = None) -> Iterator[tuple[int, int]]:
    """(start, count) of each block (BLOCK frames unless given) of a track `frames` long."""
    block = block or BLOCK
    for start in range(0, frames, block):
        yield start, min(block, frames - start)


def read_padded(track: Track, start: int, count: int) -> np.ndarray:
    """Exactly `count` frames from `start`, silence where that runs outside the track."""
    out = np.zeros((count, track.channels), dtype=np.float32)
    first = max(start, 0)
    data = track.read(first, start + count - first) if start + count > first else out[:0]
    out[first - start : first - start + len(data)] = data
    return out


def map_blocks(src: Track, dst: Track, fn: Callable[[np.ndarray, int, int], np.ndarray], margin: int = 0) -> None:
    """dst[block] = fn(chunk, start, lead) for each block, where chunk is the block of `src` with up
    to `margin` frames of context on each side (less at the track's ends; `lead` says how many
    come before it). `src` may be `dst`: the next chunk is read before this block is written."""
    blocks = list(spans(src.frames))

    def chunk(i: int):
        start, count = blocks[i]
        first = max(0, start - margin)
        return src.read(first, start + count + margin - first), start - first

    ahead = chunk(0) if blocks else None
    for i, (start, count) in enumerate(blocks):
        data, lead = ahead
        ahead = chunk(i + 1) if i + 1 < len(blocks) else None
        dst.write(start, fn(data, start, lead)[:count])


def whole(track: Track) -> np.ndarray:
    """The whole track as one array (short tracks only: tests, the timeline export)."""
    return track.array if isinstance(track, ArrayTrack) else track.read(0, track.frames)


def write_wav(path: str, audio: Track | np.ndarray, sample_rate: int) -> None:
    """24-bit WAV or FLAC (by the extension), written block by block and atomically."""
    import soundfile

    from ..files import write_atomic

    track = ArrayTrack(audio) if isinstance(audio, np.ndarray) else audio

    def write(tmp: str) -> None:
        with soundfile.SoundFile(tmp, "w", sample_rate, track.channels, subtype="PCM_24") as f:
            for start, count in spans(track.frames):
                f.write(track.read(start, count))

    write_atomic(path, write)

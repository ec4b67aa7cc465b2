"""What the review page draws from the media: frame thumbnails, and the soundtrack's waveform and
loudness curve (the timeline under the scenes)."""

from __future__ import annotations

import math
import tempfile

import numpy as np

from ..media.ffmpeg import run_ffmpeg
from ..media.info import MediaInfo
from ..audio.tracks import Track
from ..plans import Plan

THUMB_WIDTH = 240
PEAKS = 1000  # waveform columns, whatever the length: the page scales them to its width
CURVE_RATE = 16000  # the soundtrack is read at this rate for the curves (K-weighting is defined well below it)
MOMENTARY = 0.4  # seconds: EBU R 128 momentary loudness
MAX_POINTS = 600
FLOOR_LUFS = -70.0  # R 128's absolute gate: quieter reads as silence


def thumbnail(info: MediaInfo, t: float, target: str) -> None:
    """The frame at `t` seconds from the first video frame (or the still image), 240 px wide, as a JPEG."""
    scale = ["-vf", f"scale={THUMB_WIDTH}:-2", "-frames:v", "1", "-q:v", "4", "-y", target]
    if info.kind == "image":
        run_ffmpeg(["-i", info.path, *scale])
    else:
        run_ffmpeg(["-ss", f"{(info.start_time or 0.0) + t:.3f}", "-i", info.path, *scale])


def curves(output: str, the_plan: Plan, folder: str) -> dict:
    """The rendered soundtrack's waveform (min and max per column) and its momentary loudness (LUFS,
    pyloudnorm's meter over 400 ms blocks), with the cuts, for the page's timeline. The sound is read
    into a file track in `folder` and measured a stretch at a time: memory stays flat in the length."""
    from ..audio.original import read_original_track
    from ..audio.tracks import in_folder
    from ..media.probe import probe

    start = 0.0 if output.lower().endswith((".wav", ".flac")) else (probe(output).start_time or 0.0)
    with tempfile.TemporaryDirectory(prefix="curves-", dir=folder) as tmp:
        sound = read_original_track(output, start, the_plan.duration, rate=CURVE_RATE, tracks=in_folder(tmp))
        peaks, loudness = _peaks(sound), _loudness(sound, the_plan.duration)
        del sound  # its file is closed before its folder goes
    return {"duration": the_plan.duration, "peaks": peaks, "loudness": loudness, "cuts": [s.start for s in the_plan.scenes[1:]]}


def _peaks(sound: Track) -> list[list[float]]:
    edges = np.linspace(0, sound.frames, min(PEAKS, max(1, sound.frames)) + 1).astype(np.int64)
    peaks = []
    for begin, end in zip(edges[:-1], edges[1:]):
        mono = sound.read(int(begin), int(end - begin)).mean(axis=1)
        peaks.append([round(float(mono.min()), 4), round(float(mono.max()), 4)] if len(mono) else [0.0, 0.0])
    return peaks


def _loudness(sound: Track, duration: float) -> list[list[float]]:
    """[time of the block's middle, LUFS] pairs; a block under the absolute gate reads as the floor."""
    import pyloudnorm

    meter = pyloudnorm.Meter(CURVE_RATE, block_size=MOMENTARY)
    block = round(MOMENTARY * CURVE_RATE)
    hop = round(max(0.1, duration / MAX_POINTS) * CURVE_RATE)
    points = []
    for begin in range(0, max(0, sound.frames - block) + 1, hop):
        with np.errstate(divide="ignore"):
            value = meter.integrated_loudness(sound.read(begin, block))
        lufs = value if math.isfinite(value) and value > FLOOR_LUFS else FLOOR_LUFS
        points.append([round((begin + block / 2) / CURVE_RATE, 3), round(float(lufs), 2)])
    return points

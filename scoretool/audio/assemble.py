"""Timeline assembly: equal-power crossfades across cuts, fades at the ends, loudness to a target.

All audio is float32, shape (samples, channels): arrays, or `tracks.Track`s read in blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .loudness import CEILING_DB, limit_into, normalize, true_peak_db
from .tracks import ArrayTrack, Track, TrackFactory, in_memory, whole, write_wav

__all__ = ["CEILING_DB", "Transition", "assemble", "assemble_track", "clip_spans", "limit", "normalize_loudness",
           "plan_transitions", "true_peak_db", "write_wav"]  # fmt: skip


def clip_spans(bounds: list[tuple[float, float]], crossfade: float) -> list[tuple[float, float]]:
    """The stretch of the timeline each scene's clip must cover: its scene plus half a crossfade
    on each side that has a neighbour. A crossfade never exceeds the shorter of the two scenes."""
    spans = []
    for i, (start, end) in enumerate(bounds):
        lead = _half_fade(bounds, i - 1, i, crossfade) if i > 0 else 0.0
        tail = _half_fade(bounds, i, i + 1, crossfade) if i + 1 < len(bounds) else 0.0
        spans.append((start - lead, end + tail))
    return spans


def _half_fade(bounds, a: int, b: int, crossfade: float) -> float:
    shortest = min(bounds[a][1] - bounds[a][0], bounds[b][1] - bounds[b][0])
    return min(crossfade, shortest) / 2


# "continue" is generated differently (each scene carries on from the last) and mixed as a crossfade.
TRANSITIONS = ("crossfade", "cut", "continue")
DECLICK = 0.01  # seconds: the tiny fade a hard cut still needs, so it does not click


@dataclass(frozen=True)
class Transition:
    """Where and how long the change from one clip to the next sounds, in timeline seconds."""

    center: float
    length: float


def plan_transitions(
    clips: list[np.ndarray],
    bounds: list[tuple[float, float]],
    sample_rate: int,
    mode: str,
    crossfade: float,
    beat_aware: bool = True,
) -> list[Transition]:
    """One transition per cut. A beat-aware crossfade moves its centre from the cut to the
    outgoing music's onset nearest the cut (at most a quarter of the crossfade away), shortening
    itself so that it stays inside the overlap both clips were generated with."""
    from .beats import beat_near

    if mode not in TRANSITIONS:
        raise ValueError(f"unknown transition {mode!r}: use one of {', '.join(TRANSITIONS)}")
    spans = clip_spans(bounds, crossfade)
    transitions = []
    for i in range(len(bounds) - 1):
        cut = bounds[i][1]
        overlap = min(spans[i][1], bounds[i + 1][1]) - max(spans[i + 1][0], bounds[i][0])
        if mode == "cut" or overlap <= DECLICK:
            transitions.append(Transition(cut, min(DECLICK, max(overlap, 0.0))))
            continue
        center = cut
        if beat_aware:
            reach = overlap / 4
            first = round((cut - reach - 0.2 - spans[i][0]) * sample_rate)
            window = clips[i][max(first, 0) : round((cut + reach + 0.2 - spans[i][0]) * sample_rate)]
            beat = beat_near(window, sample_rate, (cut - spans[i][0]) - max(first, 0) / sample_rate, reach)
            if beat is not None:
                center = spans[i][0] + max(first, 0) / sample_rate + beat
        transitions.append(Transition(center, overlap - 2 * abs(center - cut)))
    return transitions


def assemble_track(
    clips: Sequence[np.ndarray],
    bounds: list[tuple[float, float]],
    sample_rate: int,
    crossfade: float,
    fade_in: float,
    fade_out: float,
    transitions: list[Transition] | None = None,
    tracks: TrackFactory = in_memory,
) -> Track:
    """Mix the clips (each as long as its `clip_spans` entry) into one track exactly as long as
    the last scene's end, to the sample, made by `tracks` (in memory, or a file for a long video:
    one clip is read at a time). Without `transitions`, each cut gets a centred equal-power
    crossfade as long as the overlap."""
    total = round(bounds[-1][1] * sample_rate)
    channels = max(c.shape[1] for c in clips)  # one clip in memory at a time, even from a store on disk
    track = tracks("music", total, channels)
    spans = clip_spans(bounds, crossfade)
    if transitions is None:
        transitions = [Transition(b[1], spans[i][1] - spans[i + 1][0]) for i, b in enumerate(bounds[:-1])]
    for i, (span_start, span_end) in enumerate(spans):
        first = round(span_start * sample_rate)
        length = min(round(span_end * sample_rate), total) - first
        gain = np.ones(length, dtype=np.float32)
        if i > 0:  # in across the transition at this clip's start
            _ramp(gain, transitions[i - 1], span_start, sample_rate, rising=True)
        if i + 1 < len(clips):  # out across the transition at its end
            _ramp(gain, transitions[i], span_start, sample_rate, rising=False)
        track.write(first, track.read(first, length) + _fit(clips[i], length, channels) * gain[:, None])
    _fade_ends(track, sample_rate, fade_in, fade_out)
    return track


def assemble(clips: list[np.ndarray], bounds, sample_rate: int, crossfade: float, fade_in: float, fade_out: float,
             transitions: list[Transition] | None = None) -> np.ndarray:  # fmt: skip
    """`assemble_track` in memory, as an array."""
    return whole(assemble_track(clips, bounds, sample_rate, crossfade, fade_in, fade_out, transitions))


def _ramp(gain: np.ndarray, t: Transition, clip_start: float, sample_rate: int, rising: bool) -> None:
    """Shape `gain` (a clip's, starting at timeline second `clip_start`) for one transition:
    silent on the far side, an equal-power ramp across it, untouched on the near side."""
    a = max(0, round((t.center - t.length / 2 - clip_start) * sample_rate))
    b = min(len(gain), max(a, round((t.center + t.length / 2 - clip_start) * sample_rate)))
    if rising:
        gain[:a] = 0.0
        gain[a:b] *= _equal_power(b - a, rising=True)
    else:
        gain[a:b] *= _equal_power(b - a, rising=False)
        gain[b:] = 0.0


def _fit(clip: np.ndarray, length: int, channels: int) -> np.ndarray:
    """Trim or zero-pad to `length` samples (a generator may be a sample short after rounding)."""
    if clip.shape[1] != channels:
        clip = np.repeat(clip[:, :1], channels, axis=1)
    out = np.zeros((length, channels), dtype=np.float32)
    n = min(length, clip.shape[0])
    out[:n] = clip[:n]
    return out


def _equal_power(n: int, rising: bool) -> np.ndarray:
    """sin/cos ramps: the two sides' powers sum to one at every point of the crossfade."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    ramp = np.sin(t * np.pi / 2) if rising else np.cos(t * np.pi / 2)
    return ramp.astype(np.float32)


def _fade_ends(track: Track, sample_rate: int, fade_in: float, fade_out: float) -> None:
    total = track.frames
    n_in = min(round(fade_in * sample_rate), total // 4)
    n_out = min(round(fade_out * sample_rate), total // 3)
    if n_in:
        track.write(0, track.read(0, n_in) * np.linspace(0.0, 1.0, n_in, dtype=np.float32)[:, None])
    if n_out:
        end = track.read(total - n_out, n_out)
        track.write(total - n_out, end * np.linspace(1.0, 0.0, n_out, dtype=np.float32)[:, None] ** 2)


def limit(audio: np.ndarray, sample_rate: int, ceiling_db: float, window: float = 0.005) -> np.ndarray:
    """`loudness.limit_into` for an array: a look-ahead peak limiter under `ceiling_db` dBTP."""
    out = ArrayTrack(np.empty_like(audio, dtype=np.float32))
    limit_into(ArrayTrack(audio), out, sample_rate, ceiling_db, window)
    return out.array


def normalize_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float, ceiling_db: float = CEILING_DB) -> np.ndarray:
    """`loudness.normalize` for an array: integrated loudness to `target_lufs`, true peak to `ceiling_db`."""
    out = ArrayTrack(np.empty_like(audio, dtype=np.float32))
    normalize(ArrayTrack(audio), out, sample_rate, target_lufs, ceiling_db)
    return out.array

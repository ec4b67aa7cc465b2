"""Timeline assembly: equal-power crossfades across cuts, fades at the ends, loudness to a target.

All arrays are float32, shape (samples, channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def assemble(
    clips: list[np.ndarray],
    bounds: list[tuple[float, float]],
    sample_rate: int,
    crossfade: float,
    fade_in: float,
    fade_out: float,
    transitions: list[Transition] | None = None,
) -> np.ndarray:
    """Mix the clips (each as long as its `clip_spans` entry) into one track exactly as long as
    the last scene's end, to the sample. Without `transitions`, each cut gets a centred
    equal-power crossfade as long as the overlap."""
    total = round(bounds[-1][1] * sample_rate)
    channels = max(c.shape[1] for c in clips)
    track = np.zeros((total, channels), dtype=np.float32)
    spans = clip_spans(bounds, crossfade)
    if transitions is None:
        transitions = [Transition(b[1], spans[i][1] - spans[i + 1][0]) for i, b in enumerate(bounds[:-1])]
    for i, (clip, (span_start, span_end)) in enumerate(zip(clips, spans)):
        first = round(span_start * sample_rate)
        length = min(round(span_end * sample_rate), total) - first
        gain = np.ones(length, dtype=np.float32)
        if i > 0:  # in across the transition at this clip's start
            _ramp(gain, transitions[i - 1], span_start, sample_rate, rising=True)
        if i + 1 < len(clips):  # out across the transition at its end
            _ramp(gain, transitions[i], span_start, sample_rate, rising=False)
        track[first : first + length] += _fit(clip, length, channels) * gain[:, None]
    _fade_ends(track, sample_rate, fade_in, fade_out)
    return track


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


def _fade_ends(track: np.ndarray, sample_rate: int, fade_in: float, fade_out: float) -> None:
    total = track.shape[0]
    n_in = min(round(fade_in * sample_rate), total // 4)
    n_out = min(round(fade_out * sample_rate), total // 3)
    if n_in:
        track[:n_in] *= np.linspace(0.0, 1.0, n_in, dtype=np.float32)[:, None]
    if n_out:
        track[total - n_out :] *= np.linspace(1.0, 0.0, n_out, dtype=np.float32)[:, None] ** 2


def true_peak_db(audio: np.ndarray, sample_rate: int) -> float:
    """Peak of the 4x oversampled signal, in dBTP (ITU-R BS.1770 style)."""
    from scipy.signal import resample_poly

    peak = float(np.max(np.abs(resample_poly(audio.astype(np.float64), 4, 1, axis=0)))) if audio.size else 0.0
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def limit(audio: np.ndarray, sample_rate: int, ceiling_db: float, window: float = 0.005) -> np.ndarray:
    """A look-ahead peak limiter: gain follows the oversampled peaks, smoothed so it never clicks."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d
    from scipy.signal import resample_poly

    ceiling = 10 ** (ceiling_db / 20)
    over = np.abs(resample_poly(audio.astype(np.float64), 4, 1, axis=0)).max(axis=1)
    peaks = over.reshape(-1, 4).max(axis=1)  # each sample's peak, including the ones between samples
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    n = max(3, int(window * sample_rate) | 1)
    # A min over 2n then a mean over n keeps the smoothed gain at or below what each peak needs.
    gain = uniform_filter1d(minimum_filter1d(need, size=2 * n + 1, mode="nearest"), size=n, mode="nearest")
    return (audio * gain[:, None]).astype(np.float32)


# True-peak ceiling (dBTP) of the soundtrack before encoding: under the usual -1 for the encoders' overshoot.
CEILING_DB = -2.0


def normalize_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float, ceiling_db: float = CEILING_DB) -> np.ndarray:
    """Integrated loudness to `target_lufs` (pyloudnorm), then true peak to `ceiling_db`.

    The ceiling sits a dB under the usual -1 dBTP: lossy encoding overshoots (Opus by up to ~0.7 dB
    on our outputs); `scoretool.media.mux` measures the encoded file and asks for a lower ceiling
    where that was not enough.
    Limiting lowers loudness slightly, so gain and limiting alternate a few times to settle.
    """
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    out = audio.astype(np.float32)
    if len(out) < int(0.4 * sample_rate) or not np.any(out):
        return out  # too short or silent to measure: leave it as it is
    for _ in range(4):
        loudness = meter.integrated_loudness(out.astype(np.float64))
        if not np.isfinite(loudness):
            return out
        out = (out * 10 ** ((target_lufs - loudness) / 20)).astype(np.float32)
        if true_peak_db(out, sample_rate) > ceiling_db:
            out = limit(out, sample_rate, ceiling_db - 0.1)
        if abs(meter.integrated_loudness(out.astype(np.float64)) - target_lufs) < 0.3:
            break
    return out


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
    """Write 24-bit WAV or FLAC (by the extension) atomically; the limiter kept it under full scale."""
    import soundfile

    from ..files import write_atomic

    write_atomic(path, lambda tmp: soundfile.write(tmp, audio, sample_rate, subtype="PCM_24"))

"""Loudness in blocks: BS.1770-4 integrated loudness, 4x oversampled true peak, a look-ahead
limiter, and normalisation to a target, each a pass over a `Track` a block at a time.

Each gives what the whole-track computation gives (pyloudnorm's `integrated_loudness`, one
`resample_poly` over the track): the filters are run across blocks with their state carried
(K-weighting) or with enough context on each side of a block (oversampling, the limiter's
filters), and the gating blocks' mean squares are summed from the pieces that fall in each block.
"""

from __future__ import annotations

import numpy as np

from .tracks import ArrayTrack, Track, map_blocks, spans

OVERSAMPLE = 4
_RESAMPLE_CONTEXT = 64  # frames each side: resample_poly(4, 1)'s filter reaches 10 frames


def _oversampled_peaks(chunk: np.ndarray) -> np.ndarray:
    """Per frame, the peak over its channels and its 4 oversampled points (ones between samples included)."""
    from scipy.signal import resample_poly

    over = np.abs(resample_poly(chunk.astype(np.float64), OVERSAMPLE, 1, axis=0)).max(axis=1)
    return over.reshape(-1, OVERSAMPLE).max(axis=1)


def true_peak(track: Track) -> float:
    """Linear peak of the 4x oversampled track (ITU-R BS.1770 style)."""
    peak = 0.0
    m = _RESAMPLE_CONTEXT
    for start, count in spans(track.frames):
        first = max(0, start - m)
        chunk = track.read(first, start + count + m - first)  # outside the track is silence, as for one pass
        if chunk.size:
            peak = max(peak, float(_oversampled_peaks(chunk)[start - first : start - first + count].max()))
    return peak


def true_peak_db(audio: Track | np.ndarray, sample_rate: int | None = None) -> float:
    """Peak of the 4x oversampled signal, in dBTP (`sample_rate` is not needed: kept for callers)."""
    peak = true_peak(ArrayTrack(audio) if isinstance(audio, np.ndarray) else audio)
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def limit_into(src: Track, dst: Track, sample_rate: int, ceiling_db: float, window: float = 0.005) -> None:
    """A look-ahead peak limiter, `src` into `dst` (may be the same track): the gain follows the
    oversampled peaks, smoothed so it never clicks."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_db / 20)
    n = max(3, int(window * sample_rate) | 1)
    margin = _RESAMPLE_CONTEXT + 2 * n + 16  # the oversampling's reach, then both filters'

    def block(chunk: np.ndarray, start: int, lead: int) -> np.ndarray:
        need = np.minimum(1.0, ceiling / np.maximum(_oversampled_peaks(chunk), 1e-12))
        # A min over 2n then a mean over n keeps the smoothed gain at or below what each peak needs.
        gain = uniform_filter1d(minimum_filter1d(need, size=2 * n + 1, mode="nearest"), size=n, mode="nearest")
        return (chunk[lead:] * gain[lead:, None]).astype(np.float32)

    map_blocks(src, dst, block, margin)


def scale(src: Track, dst: Track, gain: float) -> None:
    map_blocks(src, dst, lambda chunk, _start, _lead: (chunk * gain).astype(np.float32))


def integrated_loudness(track: Track, sample_rate: int, block_size: float = 0.4, overlap: float = 0.75) -> float:
    """BS.1770-4 gated loudness (LUFS), as pyloudnorm's Meter gives it, without the whole track in memory."""
    from scipy.signal import lfilter

    meter = _meter(sample_rate)
    stages = [(f.b, f.a, f.passband_gain) for f in meter._filters.values()]
    if track.frames < round(block_size * sample_rate):
        raise ValueError("audio is shorter than one gating block")
    # The gating blocks' bounds, computed exactly as pyloudnorm does; each block is a run of segments.
    count = int(np.round((track.frames / sample_rate - block_size) / (block_size * (1 - overlap)))) + 1
    j = np.arange(count)
    lower = (block_size * (j * (1 - overlap)) * sample_rate).astype(np.int64)
    upper = (block_size * (j * (1 - overlap) + 1) * sample_rate).astype(np.int64)
    bounds = np.unique(np.concatenate([lower, upper]))
    segments = np.zeros((len(bounds), track.channels))  # sum of squares from bounds[k] to bounds[k + 1]
    states = [[np.zeros(max(len(a), len(b)) - 1) for _ in range(track.channels)] for b, a, _ in stages]
    for start, n in spans(track.frames):
        filtered = track.read(start, n).astype(np.float64)
        for (b, a, gain), state in zip(stages, states):
            for ch in range(track.channels):
                out, state[ch] = lfilter(b, a, filtered[:, ch], zi=state[ch])
                filtered[:, ch] = gain * out
        _add_segments(segments, bounds, np.square(filtered), start)
    cumulative = np.concatenate([np.zeros((1, track.channels)), np.cumsum(segments, axis=0)])
    at = np.searchsorted(bounds, lower), np.searchsorted(bounds, upper)
    z = (cumulative[at[1]] - cumulative[at[0]]).T / (block_size * sample_rate)  # channels x blocks
    return _gated(z)


def _add_segments(segments: np.ndarray, bounds: np.ndarray, squares: np.ndarray, start: int) -> None:
    """Add this block's squares (from frame `start`) to the segments they fall in."""
    inside = bounds[(bounds > start) & (bounds < start + len(squares))] - start
    cuts = np.concatenate([[0], inside])
    first = np.searchsorted(bounds, start, side="right") - 1  # the segment frame `start` is in (bounds[0] is 0)
    segments[first : first + len(cuts)] += np.add.reduceat(squares, cuts, axis=0)


def _gated(z: np.ndarray) -> float:
    """BS.1770-4's two gates over the blocks' mean squares (z: channels x blocks), as pyloudnorm."""
    gains = np.array([1.0, 1.0, 1.0, 1.41, 1.41])[: len(z)]
    with np.errstate(divide="ignore", invalid="ignore"):
        block_loudness = -0.691 + 10.0 * np.log10(gains @ z)
        above = block_loudness >= -70.0
        if not above.any():
            return float("-inf")
        relative = -0.691 + 10.0 * np.log10(gains @ z[:, above].mean(axis=1)) - 10.0
        gated = (block_loudness > relative) & (block_loudness > -70.0)
        if not gated.any():
            return float("-inf")
        return float(-0.691 + 10.0 * np.log10(gains @ z[:, gated].mean(axis=1)))


def _meter(sample_rate: int):
    import pyloudnorm

    return pyloudnorm.Meter(sample_rate)


# True-peak ceiling (dBTP) of the soundtrack before encoding: under the usual -1 for the encoders' overshoot.
CEILING_DB = -2.0


def normalize(src: Track, dst: Track, sample_rate: int, target_lufs: float, ceiling_db: float = CEILING_DB) -> None:
    """`dst` = `src` at integrated loudness `target_lufs`, true peak under `ceiling_db`.

    The ceiling sits a dB under the usual -1 dBTP: lossy encoding overshoots (Opus by up to ~0.7 dB
    on our outputs); `scoretool.media.mux` measures the encoded file and asks for a lower ceiling
    where that was not enough. Limiting lowers loudness slightly, so gain and limiting alternate a
    few times to settle. Too short (under one gating block) or silent: `dst` = `src`.
    """
    if src.frames < int(0.4 * sample_rate):  # too short to measure: as it is
        if src is not dst:
            scale(src, dst, 1.0)
        return
    current = src
    loudness = integrated_loudness(src, sample_rate)
    for _ in range(4):
        if not np.isfinite(loudness):
            break
        scale(current, dst, 10 ** ((target_lufs - loudness) / 20))
        current = dst
        if 20 * np.log10(max(true_peak(dst), 1e-300)) > ceiling_db:
            limit_into(dst, dst, sample_rate, ceiling_db - 0.1)
        loudness = integrated_loudness(dst, sample_rate)
        if abs(loudness - target_lufs) < 0.3:
            break
    if current is not dst:
        scale(src, dst, 1.0)

"""Polyphase resampling (no pitch change) of a track, block by block."""

from __future__ import annotations

from math import gcd

import numpy as np

from .tracks import ArrayTrack, Track, TrackFactory, in_memory, read_padded, spans, whole


def resample_track(src: Track, rate_in: int, rate_out: int, tracks: TrackFactory = in_memory, name: str = "resampled") -> Track:
    """Polyphase resampling block by block, keeping the length exact to the sample: the same
    samples as one `resample_poly` over the whole track (each block is filtered with enough of
    its neighbours' samples around it, silence beyond the ends as for one pass)."""
    from scipy.signal import resample_poly

    if rate_in == rate_out:
        return src
    g = gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    out = tracks(name, round(src.frames * rate_out / rate_in), src.channels)
    # Output blocks start on multiples of `up`, so each starts on a whole input sample; the context
    # (a multiple of `down`, so it is whole output samples too) covers the filter's reach.
    block = up * max(1, (1 << 18) // up)
    context = down * -(-(10 * max(up, down) // up + 4) // down)
    for first, count in spans(out.frames, block):
        start = first // up * down
        chunk = read_padded(src, start - context, -(-count * down // up) + 2 * context)
        filtered = resample_poly(chunk.astype(np.float64), up, down, axis=0)
        out.write(first, filtered[context * up // down :][:count].astype(np.float32))
    return out


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """`resample_track` of an array."""
    return audio if rate_in == rate_out else whole(resample_track(ArrayTrack(audio), rate_in, rate_out))

"""The music's gain under the original sound (`--original-audio duck`), on a 1 ms envelope grid.

The original is read in blocks to a mean square per millisecond; the curve is worked out on that
grid (a few MB for an hour) and interpolated to samples one block at a time as the mix needs it.
"""

from __future__ import annotations

import numpy as np

from .tracks import ArrayTrack, Track

FRAME_RATE = 1000  # the gain curve is worked out on a 1 ms grid and interpolated to samples


def _frame_power(original: Track, step: int) -> np.ndarray:
    """Mean square per frame of `step` samples (the last frame padded with silence), float32,
    read in blocks so no whole-track temporary is made."""
    frames = -(-original.frames // step)
    power = np.empty(frames, dtype=np.float32)
    block = 1 << 14  # frames per block
    for first in range(0, frames, block):
        chunk = original.read(first * step, block * step)
        whole = -(-len(chunk) // step)
        if len(chunk) < whole * step:
            chunk = np.pad(chunk, ((0, whole * step - len(chunk)), (0, 0)))
        power[first : first + whole] = np.mean(np.square(chunk).reshape(whole, -1), axis=1)
    return power


def activity(original: Track, rate: int, window: float = 0.05, threshold_db: float = -45.0) -> np.ndarray:
    """Per frame of the 1 ms grid: True where the original is sounding.

    "Sounding" is relative to the track itself: above `threshold_db` and within 30 dB of its own
    loud passages, so a noisy room tone doesn't count while a quiet voice does.
    """
    from scipy.ndimage import uniform_filter1d

    step = max(1, rate // FRAME_RATE)
    level = uniform_filter1d(_frame_power(original, step), size=max(1, round(window * rate / step)))
    np.log10(np.add(level, np.float32(1e-12), out=level), out=level)  # in place: no hour-long temporaries
    np.multiply(level, np.float32(10), out=level)
    loud = np.percentile(level, 95)
    return level > max(threshold_db, loud - 30.0)


def duck_curve(
    original: Track,
    rate: int,
    depth_db: float = 12.0,
    other_db: float = 3.0,
    speech: list[tuple[float, float]] | None = None,
    attack: float = 0.08,
    release: float = 0.3,
    hold: float = 0.3,
) -> np.ndarray:
    """The music's gain (linear, float32) per frame of the 1 ms grid; `gain_at` gives it per sample.

    With `speech` (spans in seconds) the music dips by `depth_db` under speech and by `other_db`
    under the original's other sound; with None (no speech detection) by `depth_db` under all of
    the original's sound. The dip starts `attack` seconds before the sound (look-ahead: we have
    the whole track), holds through pauses shorter than `hold`, and recovers over `release`.
    """
    from scipy.ndimage import maximum_filter1d

    step = max(1, rate // FRAME_RATE)
    frame_rate = rate / step
    active = activity(original, rate)
    if speech is None:
        dip = np.where(active, np.float32(depth_db), np.float32(0))
    else:
        talking = np.zeros(len(active), dtype=bool)
        for start, end in speech:
            talking[max(0, int(start * frame_rate)) : max(0, int(np.ceil(end * frame_rate)))] = True
        dip = np.where(talking, np.float32(depth_db), np.where(active, np.float32(other_db), np.float32(0)))
    # Bridge short pauses (between words) and look ahead by the attack time.
    dip = maximum_filter1d(dip, size=max(1, round(hold * frame_rate)), origin=0)
    np.negative(dip, out=dip)
    smoothed = _follow(dip, frame_rate, attack, release)
    del dip
    lead = min(round(attack * frame_rate), len(smoothed))
    gain = np.empty_like(smoothed)
    gain[: len(gain) - lead] = smoothed[lead:]
    gain[len(gain) - lead :] = smoothed[-1] if len(smoothed) else 0.0
    del smoothed
    # In place, in float32: an hour's curve is 14 MB an array, and it is the only one left.
    np.multiply(gain, np.float32(1 / 20), out=gain)
    return np.power(np.float32(10), gain, out=gain)


def duck_gain(original: np.ndarray, rate: int, **options) -> np.ndarray:
    """`duck_curve` of an array, per sample (linear, float32)."""
    return gain_at(duck_curve(ArrayTrack(original), rate, **options), rate, 0, len(original))


def _follow(target_db: np.ndarray, frame_rate: float, attack: float, release: float) -> np.ndarray:
    """An attack/release follower, down fast and up slowly, run in dB so it sounds even (float32).

    The target is piecewise constant, and within one stretch the follower approaches it from one
    side, so each stretch is one closed-form exponential (exactly the one-pole loop, without it),
    worked out a piece at a time so that a long stretch needs no long temporary."""
    a_down = np.exp(-1 / (attack * frame_rate))
    a_up = np.exp(-1 / (release * frame_rate))
    out = np.empty(len(target_db), dtype=np.float32)
    changes = np.flatnonzero(np.diff(target_db)) + 1
    current = 0.0
    piece = 1 << 16
    for first, end in zip(np.concatenate([[0], changes]), np.concatenate([changes, [len(target_db)]])):
        t = float(target_db[first])
        a = a_down if t < current else a_up
        for at in range(first, end, piece):
            n = min(piece, end - at)
            out[at : at + n] = t + (current - t) * a ** np.arange(1, n + 1)
            current = t + (current - t) * a**n
    return out


def gain_at(curve: np.ndarray, rate: int, first: int, count: int) -> np.ndarray:
    """The curve linearly interpolated to samples first .. first+count (float32): only the grid
    points around them are used, so a block costs what a block is, however long the track."""
    step = max(1, rate // FRAME_RATE)
    lo = min(first // step, max(len(curve) - 1, 0))
    hi = min(len(curve), (first + count) // step + 2)
    samples = np.arange(first, first + count)
    return np.interp(samples, np.arange(lo, hi) * step, curve[lo:hi]).astype(np.float32)

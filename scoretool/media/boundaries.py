"""Scene boundaries from per-frame scores: the decisions of `CombinedDetector`, as pure functions.

`Signals` are what `scoretool.media.detectors.CombinedDetector` measured on every frame; here they
become frame numbers:
- a hard cut at frame k when the content score jumps against its neighbours (AdaptiveDetector's
  test), is large (ContentDetector's), is confirmed by the hash or the histogram (or the jump is
  very large), it is not inside a gradual transition, and the picture does not come back within a
  few frames (a flash, a car crossing the lens);
- one boundary in the middle of each gradual transition: windows whose middle frame is a blend of
  their ends mark a dissolve or a fade; flat frames (black, white) between two of them make one dip;
  the transition's extent is where the colour histogram's change over a short window falls back
  towards its level outside, and the boundary is its middle. A fade in at the very start of a
  video, or out at its end, is no boundary: there is no picture on the other side.

Frame counts are given at 24 fps and scaled to the video's rate (`frames_at`).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

EXTENT_FRACTION = 0.35  # where a transition's change counts as begun (0: the level outside, 1: inside)
REPEATED_FRAME = 0.5  # a content score under this: the frame repeats the one before (0-255 scale)


@dataclass(frozen=True)
class Tuning:
    """Every threshold of the combined detector, in one place."""

    cut_ratio: float = 3.0  # content score against its 4 neighbours' mean (AdaptiveDetector's default)
    cut_content: float = 15.0  # least content score of a cut (AdaptiveDetector's min_content_val)
    cut_hash: float = 0.25  # hash distance that confirms a cut (HashDetector's own threshold: 0.35)
    cut_hist: float = 0.3  # histogram change (1 - correlation) that confirms a cut
    cut_sure_ratio: float = 6.0  # a jump this far above its neighbours needs no confirmation
    flash_return: float = 0.35  # a later frame this close (vs the jump) to an earlier one: it came back
    flat_std: float = 6.0  # thumbnail spread (0-255) under which a frame is flat: black, white
    cell_change: float = 20.0  # a thumbnail cell changed when a channel moved this much (0-255)
    blend_change: float = 12.0  # least mean change between a blend window's ends (0-255)
    blend_residual: float = 0.2  # the middle frame is this close to the ends' mean (vs their change)
    blend_area: float = 0.5  # share of the picture that must change (a title fading in is no transition)
    min_scene_24: int = 8  # frames (at 24 fps) between two boundaries
    merge_gap_24: int = 4  # blend runs this close are one transition


def frames_at(frames_24: int, fps: float) -> int:
    """A count of frames at 24 fps, at `fps`."""
    return max(1, round(frames_24 * fps / 24.0))


@dataclass
class Signals:
    """Per-frame measurements (index: frame number). `fire_half` is the largest half-window of a
    blend window centred on the frame (0: none); `spread` the colour histogram change over the
    extent window centred on it (NaN near the ends; histograms do not see motion, only new
    colours); `returns` the distance from each frame to the `return_lags` frames before it
    (flattened; NaN where there is none)."""

    return_lags: int
    content: array
    hist: array
    hash: array
    flat: array
    fire_half: array
    spread: array
    returns: array

    @classmethod
    def empty(cls, return_lags: int) -> Signals:
        return cls(return_lags, *(array("f") for _ in range(7)))

    def append_returns(self, distances: np.ndarray) -> None:
        self.returns.frombytes(np.asarray(distances, np.float32).tobytes())

    def numpy(self) -> dict[str, np.ndarray]:
        out = {name: np.frombuffer(getattr(self, name), np.float32).astype(np.float64)
               for name in ("content", "hist", "hash", "flat", "fire_half", "spread")}  # fmt: skip
        out["flat"] = out["flat"] > 0.5
        out["returns"] = np.frombuffer(self.returns, np.float32).reshape(-1, self.return_lags)
        return out


def find_boundaries(signals: Signals, fps: float, tuning: Tuning) -> list[int]:
    """First frames of the new scenes, in order."""
    s = signals.numpy()
    n = len(s["content"])
    if n < 3:
        return []
    transitions = gradual_transitions(s, fps, tuning)
    covered = np.zeros(n, bool)
    for start, end, _middle, _kept in transitions:
        covered[start : end + 1] = True
    cuts = [(k, "cut") for k in hard_cuts(s, fps, tuning) if not covered[k]]
    points = sorted(cuts + [(middle, "gradual") for _s, _e, middle, kept in transitions if kept])
    out: list[int] = []
    gap = frames_at(tuning.min_scene_24, fps)
    for k, _kind in points:
        if 0 < k < n and (not out or k - out[-1] >= gap):
            out.append(int(k))
    return out


# ------------------------------------------------------------------------------------ hard cuts


def hard_cuts(s: dict, fps: float, tuning: Tuning) -> list[int]:
    content = s["content"]
    n = len(content)
    ratio = _adaptive_ratio(content, frames_at(2, fps))  # AdaptiveDetector: 2 frames each side, here at 24 fps
    confirmed = (s["hash"] >= tuning.cut_hash) | (s["hist"] >= tuning.cut_hist) | (ratio >= tuning.cut_sure_ratio)
    jump = (ratio >= tuning.cut_ratio) & (content >= tuning.cut_content) & confirmed
    jump[0] = False
    cuts = [k for k in np.flatnonzero(jump) if not _comes_back(s["returns"], int(k), n, tuning.flash_return)]
    # Of two jumps closer than a scene, the larger.
    gap = frames_at(tuning.min_scene_24, fps)
    kept: list[int] = []
    for k in cuts:
        if kept and k - kept[-1] < gap:
            if content[k] * ratio[k] > content[kept[-1]] * ratio[kept[-1]]:
                kept[-1] = k
            continue
        kept.append(k)
    return kept


def _adaptive_ratio(content: np.ndarray, window: int = 2) -> np.ndarray:
    """AdaptiveDetector's adaptive_ratio: each frame's content score over its neighbours' mean.

    Unlike AdaptiveDetector, a neighbour that repeats the frame before it (content score near 0:
    the filler of a 24 -> 30 fps conversion, a dropped frame) is left out of the mean: it says
    nothing about how much the shot moves, and two of them halve the mean of a moving shot.
    """
    n = len(content)
    padded = np.concatenate([np.full(window, np.nan), content, np.full(window, np.nan)])
    padded[window] = np.nan  # frame 0 has no score (it is 0 by convention)
    padded[padded < REPEATED_FRAME] = np.nan
    neighbours = np.stack([padded[window + d : window + d + n] for d in range(-window, window + 1) if d])
    count = np.isfinite(neighbours).sum(axis=0)
    mean = np.where(count > 0, np.nansum(neighbours, axis=0) / np.maximum(count, 1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 1e-5, content / mean, np.where(content > 0, 255.0, 0.0))
    return np.minimum(np.nan_to_num(ratio), 255.0)


def _comes_back(returns: np.ndarray, k: int, n: int, closer: float) -> bool:
    """Whether the picture before the jump into frame k is back within a few frames: some frame
    a < k and frame b >= k, at most `lags` apart (not the pair k-1, k), are much closer than the
    jump itself."""
    lags = returns.shape[1]
    jump = returns[k, 0]
    if not np.isfinite(jump) or jump <= 0:
        return False
    for b in range(k, min(n, k + lags)):
        for lag in range(max(2, b - k + 1), lags + 1):
            a = b - lag
            if a >= 0 and returns[b, lag - 1] <= closer * jump:
                return True
    return False


# --------------------------------------------------------------------------- gradual transitions


def gradual_transitions(s: dict, fps: float, tuning: Tuning) -> list[tuple[int, int, int, bool]]:
    """(start, end, middle, kept) of each dissolve or fade; not kept: no picture on one side."""
    fire, flat, spread = s["fire_half"] > 0, s["flat"], s["spread"]
    n = len(fire)
    out = []
    for first, last, has_blend in _transition_groups(fire, flat, frames_at(tuning.merge_gap_24, fps)):
        if not has_blend:
            continue  # black frames entered and left by cuts: those are hard cuts (or a flash)
        start, end = _extent(spread, first, last, fps)
        picture_before = start > 0 and not flat[:start].all()
        picture_after = end < n - 1 and not flat[end + 1 :].all()
        out.append((start, end, start + (end - start + 1) // 2, picture_before and picture_after))
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2] - 1))


def _transition_groups(fire: np.ndarray, flat: np.ndarray, gap: int) -> list[tuple[int, int, bool]]:
    """Runs of blend windows and of flat frames, joined when they touch, are `gap` frames apart, or
    only flat frames lie between them: (first, last, whether any blend window is in it)."""
    pieces = sorted([(a, b, True) for a, b in _runs(fire)] + [(a, b, False) for a, b in _runs(flat)])
    groups: list[list] = []
    for a, b, blend in pieces:
        if groups and (a - groups[-1][1] <= gap or flat[groups[-1][1] + 1 : a].all()):
            group = groups[-1]
            group[1], group[2] = max(group[1], b), group[2] or blend
        else:
            groups.append([a, b, blend])
    return [(int(a), int(b), blend) for a, b, blend in groups]


def _extent(spread: np.ndarray, first: int, last: int, fps: float) -> tuple[int, int]:
    """Walking out from each side of [first, last], where the change falls back to a third of the
    way from the level outside to the level of that half of the transition (a fade to black can be
    quick, and the fade in from it slow)."""
    n = len(spread)
    look = frames_at(36, fps)
    middle = (first + last) // 2
    start = _walk(spread, first, -1, _level(spread[first : middle + 1]), _base(spread[max(0, first - look) : first]))
    end = _walk(spread, last, 1, _level(spread[middle : last + 1]), _base(spread[last + 1 : last + 1 + look]))
    return start, min(end, n - 1)


def _walk(spread: np.ndarray, k: int, step: int, level: float, base: float) -> int:
    stop = base + EXTENT_FRACTION * (level - base)
    while 0 <= k + step < len(spread) and not spread[k + step] < stop:  # NaN (the very ends) walks on
        k += step
    return k


def _level(values: np.ndarray) -> float:
    return float(np.nanpercentile(values, 75)) if np.isfinite(values).any() else 0.0


def _base(values: np.ndarray) -> float:
    return float(np.nanpercentile(values, 25)) if np.isfinite(values).any() else 0.0

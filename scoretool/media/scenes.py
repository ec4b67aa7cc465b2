"""Scene boundaries: a detector finds the cuts, then pure functions shape them for music.

Music cannot change every half second, and a single 3-minute shot still wants some movement,
so detected shots are merged up to a minimum length and split down to a maximum one.
All times are seconds from the first video frame (what PySceneDetect reports).
"""

from __future__ import annotations

import logging
import math

from scoretool.media.info import MediaInfo

Span = tuple[float, float]


def _combined(threshold: float | None):
    from scoretool.media.detectors import CombinedDetector, Tuning

    return CombinedDetector() if threshold is None else CombinedDetector(Tuning(cut_ratio=threshold))


def _content(threshold: float | None):
    from scenedetect import ContentDetector

    return ContentDetector() if threshold is None else ContentDetector(threshold=threshold)


def _adaptive(threshold: float | None):
    from scenedetect import AdaptiveDetector

    return AdaptiveDetector() if threshold is None else AdaptiveDetector(adaptive_threshold=threshold)


def _histogram(threshold: float | None):
    from scenedetect import HistogramDetector

    return HistogramDetector() if threshold is None else HistogramDetector(threshold=threshold)


def _hash(threshold: float | None):
    from scenedetect import HashDetector

    return HashDetector() if threshold is None else HashDetector(threshold=threshold)


def _threshold(threshold: float | None):
    from scenedetect import ThresholdDetector

    return ThresholdDetector() if threshold is None else ThresholdDetector(threshold=threshold)


# Scene detectors by name (what `--detector` takes): each makes the detector for a threshold (None:
# its own default). "combined" is scoretool's (scoretool.media.detectors); the others are PySceneDetect's.
DETECTORS = {
    "combined": _combined,
    "content": _content,
    "adaptive": _adaptive,
    "histogram": _histogram,
    "hash": _hash,
    "threshold": _threshold,
}
DEFAULT_DETECTOR = "combined"
_EPS = 1e-6  # seconds; cuts closer than this to an edge or to each other are the same point

log = logging.getLogger(__name__)


def detect_cuts(
    path: str,
    *,
    detector: str = DEFAULT_DETECTOR,
    threshold: float | None = None,
    downscale: float | None = None,
    info: MediaInfo | None = None,
) -> list[float]:
    """Times (s) at which a new shot starts, in order; [] for a one-shot video.

    `downscale` fixes the frame shrink factor; by default frames shrink to 256 px on their
    larger side, as PySceneDetect does. The pipeline uses `cuts_in` on its one analysis pass.
    """
    from scoretool.media.decode import AnalysisPass
    from scoretool.media.probe import probe

    with AnalysisPass(path, info or probe(path), downscale=downscale) as decoded:
        return cuts_in(decoded.video, detector=detector, threshold=threshold)


def cuts_in(video, *, detector: str = DEFAULT_DETECTOR, threshold: float | None = None) -> list[float]:
    """Times (s) at which a new scene starts in a PySceneDetect `VideoStream`, read from where it is
    to its end: the first frame of a new shot, or the middle of a dissolve or fade.

    `threshold` is each detector's own: the combined detector's hard-cut ratio (default 3, as
    AdaptiveDetector's `adaptive_threshold`), ContentDetector's `threshold` (27), AdaptiveDetector's
    `adaptive_threshold` (3), HistogramDetector's `threshold` (0.2), HashDetector's `threshold`
    (0.35) or ThresholdDetector's `threshold` (12).
    """
    from scenedetect import SceneManager

    if detector not in DETECTORS:
        raise ValueError(f"unknown scene detector {detector!r}: use one of {', '.join(DETECTORS)}")
    det = DETECTORS[detector](threshold)

    manager = SceneManager()
    manager.auto_downscale = False  # the stream's frames are already small
    manager.downscale = 1
    manager.add_detector(det)
    manager.detect_scenes(video=video)
    # start_in_scene=True: a video with no cut is one scene, not an empty list.
    scenes = manager.get_scene_list(start_in_scene=True)
    return [start.seconds for start, _end in scenes[1:]]


def spans_from_cuts(cuts: list[float], duration: float) -> list[Span]:
    """[(0, c1), (c1, c2), ..., (cn, duration)]; cuts outside (0, duration) are dropped."""
    if duration <= 0:
        raise ValueError("duration must be positive")
    points = [0.0]
    for cut in sorted(cuts):
        if _EPS < cut < duration - _EPS and cut - points[-1] > _EPS:
            points.append(float(cut))
    points.append(float(duration))
    return list(zip(points[:-1], points[1:]))


def merge_short(spans: list[Span], min_len: float) -> list[Span]:
    """Merge every span shorter than `min_len` into a neighbour until none is short.

    Rule: the shortest short span goes first (so the result does not depend on scan
    direction); it joins its shorter neighbour (ties: the earlier one). A short fragment is
    most often a piece of the shot beside it that the detector split off (a flash, a whip pan),
    and joining the shorter side keeps scene lengths even and leaves long, well-defined scenes
    as they were. The first and last spans have one neighbour and join it. A single span
    (a video shorter than `min_len`) is left alone.
    """
    out = [tuple(s) for s in spans]
    while len(out) > 1:
        i = min(range(len(out)), key=lambda k: _length(out[k]))
        if _length(out[i]) >= min_len - _EPS:
            break
        if i == 0:
            j = 1
        elif i == len(out) - 1:
            j = i - 1
        else:
            j = i - 1 if _length(out[i - 1]) <= _length(out[i + 1]) else i + 1
        lo, hi = min(i, j), max(i, j)
        out[lo : hi + 1] = [(out[lo][0], out[hi][1])]
    return out


def split_long(spans: list[Span], max_len: float) -> list[Span]:
    """Split each span longer than `max_len` into the fewest equal parts of at most `max_len`.

    Parts are more than max_len / 2 long, so with max_len >= 2 * min_len, splitting after
    merging never makes a scene shorter than the minimum.
    """
    if max_len <= 0:
        raise ValueError("max_len must be positive")
    out: list[Span] = []
    for start, end in spans:
        parts = max(1, math.ceil((end - start) / max_len - _EPS))
        step = (end - start) / parts
        edges = [start + k * step for k in range(parts)] + [end]
        out.extend(zip(edges[:-1], edges[1:]))
    return out


def plan_scenes(cuts: list[float], duration: float, *, min_scene: float = 2.0, max_scene: float = 30.0) -> list[Span]:
    """Scenes ready for music from a video's cuts: short ones merged, long ones split."""
    if min_scene < 0 or max_scene <= 0 or max_scene < min_scene:
        raise ValueError("scene lengths need 0 <= min_scene <= max_scene and max_scene > 0")
    return split_long(merge_short(spans_from_cuts(cuts, duration), min_scene), max_scene)


def _length(span: Span) -> float:
    return span[1] - span[0]

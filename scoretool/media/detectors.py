"""The combined scene detector: several detectors' per-frame scores from one decode, decided together.

Each PySceneDetect detector sees one kind of change: ContentDetector (and AdaptiveDetector, its
score against its neighbours) hard cuts, HashDetector structure, HistogramDetector brightness
distributions, ThresholdDetector fades through black. Each also mistakes something else for a cut:
a flash, a car crossing the lens, a whip pan, a fade. `CombinedDetector` measures their scores on
every (256 px) frame, plus three of its own on a 32 x 18 thumbnail: whether the frame in the
middle of a window is a blend of the window's two ends (true in a dissolve or a fade, false in a
pan, a zoom or a cut), whether the picture comes back a few frames after a jump (a flash or an
occlusion), and whether the frame is flat (black, white). `scoretool.media.boundaries` then
decides, once the video has been read: hard cuts where the adaptive score, the content score and
the hash or histogram agree and the picture does not come back; one boundary in the middle of each
dissolve or fade.

Memory: thumbnails of the last two seconds and a few numbers per frame.
"""

from __future__ import annotations

import cv2
import numpy as np
from scenedetect import SceneDetector
from scenedetect.common import FrameTimecode

from scoretool.media.boundaries import Signals, Tuning, find_boundaries, frames_at

THUMB_SIZE = (32, 18)  # (width, height) of the thumbnail the blend and return tests compare
BLEND_HALVES_24 = (2, 3, 4, 6, 8, 12, 16, 24)  # half-windows of the blend test, frames at 24 fps
SPREAD_HALF_24 = 4  # the half-window whose colour change measures a transition's extent
RETURN_LAGS_24 = 4  # how far apart two frames may be to count as "the picture came back"
_HIST_BINS = 128  # HistogramDetector's default
_HASH_SIZE, _HASH_LOWPASS = 8, 2  # HashDetector's defaults (its sweep's best)
_BATCH = 32  # frames whose window tests run together


class CombinedDetector(SceneDetector):
    """Boundaries where the picture really changes: hard cuts, and the middle of dissolves and fades.

    `tuning` holds every threshold (`Tuning()`: chosen on the tuning clips of tests/data/scene_set.json;
    its held-out clips, and the set rebuilt at 30 and 60 fps, check them: benchmarks/detection.py).
    Reports all boundaries at the end of the video (`post_process`).
    """

    def __init__(self, tuning: Tuning | None = None) -> None:
        super().__init__()
        self.tuning = tuning or Tuning()
        self._fps: float | None = None
        self._signals: Signals | None = None
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # hsv, hist, hash
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # thumbnails, colours not yet windowed
        self._done = 0  # frames whose window tests have run

    def get_metrics(self) -> list[str]:
        return []

    # ------------------------------------------------------------------ per frame
    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list[FrameTimecode]:
        if self._signals is None:
            self._start(float(timecode.frame_rate or 24))
        hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
        gray = cv2.cvtColor(frame_img, cv2.COLOR_BGR2GRAY)
        hist = cv2.calcHist([gray], [0], None, [_HIST_BINS], [0, 256])
        cv2.normalize(hist, hist)
        phash = _perceptual_hash(gray)
        small = cv2.resize(frame_img, THUMB_SIZE, interpolation=cv2.INTER_AREA)
        self._frame_scores(hsv, hist, phash, small)
        self._previous = (hsv, hist, phash)
        # channels first: fast per-cell maxima
        self._pending.append((small.reshape(-1, 3).T.astype(np.float32), _colour_histogram(small)))
        if len(self._pending) >= _BATCH:
            self._window_scores()
        return []

    def post_process(self, timecode: FrameTimecode) -> list[FrameTimecode]:
        if self._signals is None:
            return []
        self._window_scores()
        frames = find_boundaries(self._signals, self._fps, self.tuning)
        return [FrameTimecode(k, fps=timecode) for k in frames]

    def _start(self, fps: float) -> None:
        self._fps = fps
        self._halves = np.array(sorted({frames_at(h, fps) for h in BLEND_HALVES_24}))
        self._spread_half = frames_at(SPREAD_HALF_24, fps)
        self._return_lags = frames_at(RETURN_LAGS_24, fps)
        self._signals = Signals.empty(self._return_lags)
        width, height = THUMB_SIZE
        self._keep = 2 * max(int(self._halves[-1]), self._spread_half, self._return_lags)  # frames of history
        self._thumbs = np.zeros((0, 3, height * width), np.float32)  # the last `_keep` frames windowed
        self._colours = np.zeros((0, 64), np.float32)

    def _frame_scores(self, hsv, hist, phash, small) -> None:
        """Scores of this frame against the one before (0 for the first), as the single detectors
        compute them, and whether it is flat."""
        s = self._signals
        if self._previous is None:
            content = hist_change = hash_change = 0.0
        else:
            last_hsv, last_hist, last_hash = self._previous
            # ContentDetector's content_val (equal weights on hue, saturation and luma)
            content = sum(cv2.mean(cv2.absdiff(hsv, last_hsv))[:3]) / 3.0
            hist_change = 1.0 - cv2.compareHist(last_hist, hist, cv2.HISTCMP_CORREL)
            hash_change = np.count_nonzero(phash != last_hash) / phash.size
        s.content.append(content)
        s.hist.append(hist_change)
        s.hash.append(hash_change)
        s.flat.append(float(cv2.meanStdDev(small)[1].max() < self.tuning.flat_std))
        s.fire_half.append(0.0)  # set later, once the windows centred here have been measured
        s.spread.append(np.nan)

    def _window_scores(self) -> None:
        """Tests that need later frames, on the thumbnails of the pending frames at once (numpy over
        a batch, not Python per frame): how far each is from the few frames before it, the blend
        test of each window that ends there (kept at its centre), the colour change around it."""
        if not self._pending:
            return
        thumbs = np.concatenate([self._thumbs, np.stack([p[0] for p in self._pending])])
        colours = np.concatenate([self._colours, np.stack([p[1] for p in self._pending])])
        first = self._done - len(self._thumbs)  # frame number of thumbs[0]
        ends = np.arange(len(self._thumbs), len(thumbs))  # the pending frames, as indices into thumbs
        self._returns(thumbs, ends, first)
        for h in self._halves:
            self._blend_test(thumbs, ends[ends + first >= 2 * h], int(h), first)
        e = self._spread_half
        ends_e = ends[ends + first >= 2 * e]
        change = np.abs(colours[ends_e] - colours[ends_e - 2 * e]).sum(axis=1) / 2
        for j, value in zip(ends_e + first - e, change):
            self._signals.spread[j] = float(value)
        self._done += len(self._pending)
        self._pending = []
        self._thumbs, self._colours = thumbs[-self._keep :], colours[-self._keep :]

    def _returns(self, thumbs: np.ndarray, ends: np.ndarray, first: int) -> None:
        """Distance of each frame to each of the `return_lags` frames before it (NaN: none)."""
        back = np.full((len(ends), self._return_lags), np.nan, np.float32)
        for lag in range(1, self._return_lags + 1):
            ok = ends + first >= lag
            cells = _per_cell_max(np.abs(thumbs[ends[ok] - lag] - thumbs[ends[ok]]))
            middle = cells.shape[1] // 2  # the median cell: a car across part of the picture is ignored
            back[ok, lag - 1] = np.partition(cells, middle, axis=1)[:, middle]
        self._signals.append_returns(back)

    def _blend_test(self, thumbs: np.ndarray, ends: np.ndarray, h: int, first: int) -> None:
        """Windows [k - 2h, k] for each k in `ends`: is the middle frame the mean of the two ends,
        with most of the picture changed between them?"""
        if not len(ends):
            return
        t = self.tuning
        start, middle, end = thumbs[ends - 2 * h], thumbs[ends - h], thumbs[ends]
        change = end - start
        magnitude = np.abs(change)
        spread = magnitude.reshape(len(ends), -1).mean(axis=1)
        residual = np.abs(middle - start - 0.5 * change).reshape(len(ends), -1).mean(axis=1)
        area = (_per_cell_max(magnitude) > t.cell_change).mean(axis=1)
        blend = (spread >= t.blend_change) & (residual <= t.blend_residual * spread) & (area >= t.blend_area)
        fire_half = self._signals.fire_half
        for k in ends[blend] + first - h:
            fire_half[k] = max(fire_half[k], float(h))


def _per_cell_max(values: np.ndarray) -> np.ndarray:
    """(..., 3, cells) -> (..., cells): the largest of the three channels."""
    return np.maximum(np.maximum(values[..., 0, :], values[..., 1, :]), values[..., 2, :])


def _colour_histogram(small: np.ndarray) -> np.ndarray:
    """Share of the thumbnail's pixels in each of 4 x 4 x 4 colour bins."""
    q = small.reshape(-1, 3) >> 6
    codes = (q[:, 0].astype(np.int32) << 4) | (q[:, 1] << 2) | q[:, 2]
    return np.bincount(codes, minlength=64).astype(np.float32) / len(codes)


def _perceptual_hash(gray: np.ndarray) -> np.ndarray:
    """HashDetector's hash: low frequencies of the DCT of the frame at 16 x 16, above their median."""
    side = _HASH_SIZE * _HASH_LOWPASS
    small = cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    small /= max(float(small.max()), 1.0)
    low = cv2.dct(small)[:_HASH_SIZE, :_HASH_SIZE]
    ordered = np.sort(low, axis=None)
    return low > (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2  # numpy.median, cheaper


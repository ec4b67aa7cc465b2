"""Pick and read the frames that get captioned: decord first, PyAV when decord is missing or fails."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from PIL import Image

from scoretool.errors import InputError
from scoretool.media.probe import MediaInfo

log = logging.getLogger(__name__)

# decord materialises a whole batch as one array: read at most this many frames at a time.
_DECORD_CHUNK = 16
# PyAV fallback: decode forward instead of seeking when the next time is this close (seconds).
_SEEK_GAP = 2.0


def frame_times(start: float, end: float, n: int = 3) -> list[float]:
    """`n` times spread evenly from 20% to 80% of [start, end] (n=3: 20%, 50%, 80%; n=1: 50%)."""
    if n <= 0:
        return []
    if n == 1:
        return [start + 0.5 * (end - start)]
    return [start + (0.2 + 0.6 * k / (n - 1)) * (end - start) for k in range(n)]


def read_frames(path: str, times: Sequence[float], info: MediaInfo) -> list[Image.Image]:
    """One RGB image per time (seconds from the first video frame), all read in one open.

    A time is mapped to the nearest frame. For a still image, the image is returned once per
    time (as separate copies, so callers may modify them).
    """
    if not times:
        return []
    if info.kind == "image":
        image = _load_image(path)
        return [image.copy() for _ in times]
    indices = _frame_indices(times, info)
    try:
        return _read_decord(path, indices)
    except Exception as e:  # ImportError, DECORDError, AssertionError on a bad count, ...
        log.info("decord could not read %s (%s); reading frames with PyAV", path, e)
    return _read_pyav(path, indices, info)


def _frame_indices(times: Sequence[float], info: MediaInfo) -> list[int]:
    """Nearest frame index for each time, clamped to the frames that really exist.

    The limit comes from the measured duration, not the header's frame count: decord can hang
    or fail when a container over-reports its frames.
    """
    fps = info.fps or 25.0
    count = max(1, math.floor(info.duration * fps + 0.5)) if info.duration else 1
    if info.frame_count:
        count = min(count, info.frame_count)
    return [min(max(0, round(t * fps)), count - 1) for t in times]


def _read_decord(path: str, indices: list[int]) -> list[Image.Image]:
    import decord
    from decord import VideoReader, cpu

    # decord bundles its own ffmpeg 4.1, which prints "Read error" lines on damaged files;
    # any real failure raises and we fall back to PyAV, so keep it quiet.
    decord.logging.set_level(decord.logging.QUIET)
    reader = VideoReader(path, ctx=cpu(0))
    last = len(reader) - 1
    wanted = sorted({min(i, last) for i in indices})
    by_index: dict[int, Image.Image] = {}
    for k in range(0, len(wanted), _DECORD_CHUNK):
        chunk = wanted[k : k + _DECORD_CHUNK]
        batch = reader.get_batch(chunk).asnumpy()  # (n, h, w, 3) uint8 RGB
        by_index.update((i, Image.fromarray(a)) for i, a in zip(chunk, batch))
    return [by_index[min(i, last)].copy() for i in indices]


def _read_pyav(path: str, indices: list[int], info: MediaInfo) -> list[Image.Image]:
    """Seek to the keyframe before each wanted frame and decode up to it (sorted, so nearby
    frames are reached by decoding forward). A frame past the end gives the last frame."""
    import av

    from scoretool.media.probe import main_video_stream

    fps = info.fps or 25.0
    by_index: dict[int, Image.Image] = {}
    try:
        with av.open(path, metadata_errors="replace") as container:
            stream = main_video_stream(container)
            stream.thread_type = "AUTO"
            tb = stream.time_base
            frames = None  # the running decode generator
            current = None  # the last frame decoded
            for index in sorted(set(indices)):
                shown_at = info.start_time + index / fps  # when frame `index` is on screen
                earliest = shown_at - 0.5 / fps  # first frame from here on = the nearest one
                near = current is not None and current.time is not None and (
                    current.time <= shown_at <= current.time + _SEEK_GAP
                )
                if not near:  # jump to the keyframe before it
                    container.seek(max(0, math.floor(earliest / tb)), stream=stream)
                    frames = container.decode(stream)
                    current = None
                for frame in frames:
                    current = frame
                    if frame.time is None or frame.time >= earliest:
                        break
                if current is None:
                    raise InputError(f"No video frame could be decoded from {path}.")
                by_index[index] = current.to_image()  # RGB24
    except av.error.FFmpegError as e:
        raise InputError(f"Could not read frames from {path}: {e}.") from None
    return [by_index[i].copy() for i in indices]


def _load_image(path: str) -> Image.Image:
    """The picture as displayed (EXIF rotation applied), RGB, transparency flattened onto black."""
    from PIL import ImageOps

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (0, 0, 0))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return img.convert("RGB")
    except (OSError, ValueError) as e:
        raise InputError(f"Could not read the image {path}: {e}.") from None

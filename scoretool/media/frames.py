"""Frames that get captioned: a few per scene, from the grid the analysis pass kept (or a still image)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from scoretool.errors import InputError
from scoretool.media.decode import CAPTION_SIDE, GRID_FPS, AnalysisPass

log = logging.getLogger(__name__)


def frame_times(start: float, end: float, n: int = 3) -> list[float]:
    """`n` times spread evenly from 20% to 80% of [start, end] (n=3: 20%, 50%, 80%; n=1: 50%)."""
    if n <= 0:
        return []
    if n == 1:
        return [start + 0.5 * (end - start)]
    return [start + (0.2 + 0.6 * k / (n - 1)) * (end - start) for k in range(n)]


def grid_fps(frames_per_scene: int, min_scene: float) -> float:
    """Frames a second the analysis pass should keep, so that even a scene of `min_scene` seconds
    gets `frames_per_scene` different frames between its 20% and 80% points (at least GRID_FPS)."""
    return max(GRID_FPS, (frames_per_scene - 1) / (0.6 * max(min_scene, 1e-3)))


def scene_frames(source: AnalysisPass | str, span: tuple[float, float], n: int) -> list[tuple[float, Image.Image]]:
    """`n` frames of a scene for captioning, each with the time it was really taken at.

    `source` is a video's analysis pass (read to the end): each frame is the kept frame nearest
    to its `frame_times` time, inside the scene. Or it is the path of a still image, which is
    every frame (as separate copies, so callers may modify them), shrunk as a video's kept frames
    are (shorter side CAPTION_SIDE).
    """
    times = frame_times(span[0], span[1], n)
    if isinstance(source, str):
        image = load_image(source, shorter_side=CAPTION_SIDE)
        return [(t, image.copy()) for t in times]
    return [source.frame_near(t, span) for t in times]


@contextmanager
def open_image(path: str) -> Iterator[Image.Image]:
    """`Image.open`, with what Pillow warns of while the picture is read (a DecompressionBombWarning
    for a big photo, odd EXIF data) sent to the log instead of the console. (Not thread-safe before
    Python 3.14, like every catch_warnings: at worst another thread's warning lands in the log too.)"""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(path) as img:
                yield img
        finally:
            for w in caught:
                log.info("%s: %s: %s", path, w.category.__name__, w.message)


def load_image(path: str, shorter_side: int | None = None, longest_side: int | None = None) -> Image.Image:
    """The picture as displayed (EXIF rotation applied), RGB, transparency flattened onto black,
    shrunk (never enlarged) so its shorter side is at most `shorter_side` and both sides at most
    `longest_side`. A JPEG is decoded at the reduced size to begin with (`draft`: an 8th of a
    100-megapixel photo's memory), other formats shrink in integer steps before the last resize."""
    from PIL import ImageOps

    try:
        with open_image(path) as img:
            target = _shrunk(img.size, shorter_side, longest_side)
            if target != img.size:
                img.draft(None, target)  # JPEG only (None elsewhere): decodes at 1/2, 1/4 or 1/8 scale, still >= target
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.new("RGB", rgba.size, (0, 0, 0))
                img.paste(rgba, mask=rgba.getchannel("A"))
            else:
                img = img.convert("RGB")
            shown = _shrunk(img.size, shorter_side, longest_side)
            return img if shown == img.size else img.resize(shown, Image.Resampling.LANCZOS, reducing_gap=3.0)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"Could not read the image {path}: {e}.") from None


def _shrunk(size: tuple[int, int], shorter_side: int | None, longest_side: int | None) -> tuple[int, int]:
    """`size` scaled down to fit both limits, keeping its aspect (at least 1 pixel a side)."""
    w, h = size
    scale = min(1.0, shorter_side / min(w, h) if shorter_side else 1.0, longest_side / max(w, h) if longest_side else 1.0)
    return size if scale >= 1.0 else (max(1, round(w * scale)), max(1, round(h * scale)))

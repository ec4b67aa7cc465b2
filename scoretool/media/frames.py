"""Frames that get captioned: a few per scene, from the grid the analysis pass kept (or a still image)."""

from __future__ import annotations

from PIL import Image

from scoretool.errors import InputError
from scoretool.media.decode import GRID_FPS, AnalysisPass


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
    every frame (as separate copies, so callers may modify them).
    """
    times = frame_times(span[0], span[1], n)
    if isinstance(source, str):
        image = load_image(source)
        return [(t, image.copy()) for t in times]
    return [source.frame_near(t, span) for t in times]


def load_image(path: str) -> Image.Image:
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

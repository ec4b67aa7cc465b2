"""Analysis: the scenes of a video and the frames to caption, from one decode of it."""

from __future__ import annotations

from contextlib import ExitStack

from ..media import frames as frames_mod
from ..media import scenes as scenes_mod
from ..media.decode import AnalysisPass
from ..media.info import MediaInfo
from ..plans import Scene, Settings
from ..progress import Reporter
from ..validation import MAX_SEED


def analyse(input_path: str, info: MediaInfo, settings: Settings, reporter: Reporter) -> tuple[list[Scene], list]:
    """The scenes of a video (bounds and seeds) and the frames to caption, scene by scene, from
    one decode of it; an image is one scene."""
    with ExitStack() as stack:
        decoded = None
        if info.kind == "video":
            grid = frames_mod.grid_fps(settings.frames_per_scene, settings.min_scene)
            decoded = stack.enter_context(AnalysisPass(input_path, info, grid_fps=grid))
        with reporter.stage("scenes", total=decoded and decoded.frame_count) as advance:
            if decoded:
                decoded.on_frame = advance
            bounds = scene_bounds(decoded, info, settings)
        scenes = [Scene(number=i, start=round(s, 3), end=round(e, 3)) for i, (s, e) in enumerate(bounds, start=1)]
        scenes[-1].end = round(bounds[-1][1], 6)  # the soundtrack must end exactly where the video does
        images = []
        with reporter.stage("frames", total=len(scenes) * settings.frames_per_scene) as advance:
            for scene, span in zip(scenes, bounds):
                taken = frames_mod.scene_frames(decoded or input_path, span, settings.frames_per_scene)
                scene.frames = [round(t, 3) for t, _image in taken]  # the times really captioned
                scene.seed = (settings.seed + scene.number - 1) % (MAX_SEED + 1)  # stays a valid seed
                images += [image for _t, image in taken]
                advance(len(taken))
    return scenes, images


def scene_bounds(decoded: AnalysisPass | None, info: MediaInfo, settings: Settings) -> list[tuple[float, float]]:
    """An image is one scene; a video's scenes come from the cuts in its analysis pass."""
    if decoded is None:
        return [(0.0, settings.image_duration)]
    cuts = scenes_mod.cuts_in(decoded.video, detector=settings.detector, threshold=settings.threshold)
    return scenes_mod.plan_scenes(cuts, info.duration, min_scene=settings.min_scene, max_scene=settings.max_scene)

"""Every value of a plan checked before any model loads: the settings against their types, choices
and ranges (the ranges the CLI's options take too), the scenes against the timeline.

Each problem is one line that names the field, and the scene as people number it (from 1):
"scene 2: end (inf) is not a finite time".
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Literal, get_args, get_origin

from .errors import PlanError

# Seeds go to torch.Generator.manual_seed, which takes 0 .. 2**63 - 1.
MAX_SEED = 2**63 - 1
# A prompt longer than this is no prompt MusicGen's text encoder can use (512 T5 tokens).
MAX_PROMPT = 1000
# Seconds a scene's end may pass the video's end (a frame's worth of container rounding).
END_TOLERANCE = 0.05

# The numeric settings' ranges (inclusive); the CLI's options take the same ones.
RANGES: dict[str, tuple[float, float]] = {
    "seed": (0, MAX_SEED),
    "min_scene": (0.5, 60),
    "max_scene": (4, 600),
    "threshold": (0, 255),
    "frames_per_scene": (1, 16),
    "image_duration": (1, 300),
    "crossfade": (0, 10),
    "music_level": (-40, 20),
    "duck_depth": (0, 60),
    "duck_other": (0, 60),
    "fade_in": (0, 30),
    "fade_out": (0, 30),
    "loudness": (-40, -5),
    "guidance_scale": (1, 20),
    "temperature": (0.05, 5),
    "top_k": (1, 4096),
}


def _named(annotation) -> tuple[str, ...] | None:
    """The names a `Literal[...]` (or `Literal[...] | None`) setting takes."""
    for a in get_args(annotation) if get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,):
        if get_origin(a) is Literal:
            return get_args(a)
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kinds(annotation) -> tuple[set[type], bool]:
    """The plain types an annotation allows, and whether None is allowed."""
    allowed = get_args(annotation) if get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    plain = {get_origin(a) or a for a in allowed if a is not type(None)}
    return {str if p is Literal else p for p in plain}, type(None) in allowed


def check_settings(settings) -> None:
    """Types, choices and ranges of every setting; raises PlanError naming the first bad one."""
    from .media.scenes import DETECTORS

    hints = typing.get_type_hints(type(settings))
    for f in fields(settings):
        value = getattr(settings, f.name)
        kinds, optional = _kinds(hints[f.name])
        names = tuple(DETECTORS) if f.name == "detector" else _named(hints[f.name])
        if value is None:
            if not optional:
                raise PlanError(f"settings: {f.name} must be given")
            continue
        if kinds & {int, float} and not kinds & {str}:
            _check_number(f.name, value, int in kinds and float not in kinds)
        elif not isinstance(value, str):
            raise PlanError(f"settings: {f.name} ({_show(value)}) must be text")
        elif names and value not in names:
            raise PlanError(f"settings: {f.name} '{value[:40]}' is not one of {', '.join(names)}")


def _check_number(name: str, value, whole: bool) -> None:
    if not _is_number(value) or (whole and not isinstance(value, int)):
        raise PlanError(f"settings: {name} ({_show(value)}) must be a {'whole number' if whole else 'number'}")
    if not math.isfinite(value):
        raise PlanError(f"settings: {name} ({value}) is not a finite number")
    low, high = RANGES.get(name, (-math.inf, math.inf))
    if not low <= value <= high:
        raise PlanError(f"settings: {name} ({_show(value)}) must be from {low:g} to {'2**63-1' if high == MAX_SEED else f'{high:g}'}")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_scenes(plan) -> None:
    """Scenes tile the timeline in order, from 0 to the video's end; each field has its type."""
    if not plan.scenes:
        raise PlanError("the plan has no scenes")
    previous_end = 0.0
    for i, scene in enumerate(plan.scenes, start=1):
        _check_scene_fields(i, scene)
        if scene.number != i:
            raise PlanError(f"scene {i}: number is {_show(scene.number)}; scenes are numbered 1, 2, 3... in order")
        for name in ("start", "end"):
            value = getattr(scene, name)
            if not _is_number(value) or not math.isfinite(value):
                raise PlanError(f"scene {i}: {name} ({_show(value)}) is not a finite time")
        if abs(scene.start - previous_end) > 1e-3:
            where = "the video's start (0.000 s)" if i == 1 else f"where scene {i - 1} ends ({previous_end:.3f} s)"
            raise PlanError(f"scene {i}: start ({scene.start:.3f} s) is not {where}")
        if scene.end <= scene.start:
            raise PlanError(f"scene {i}: end ({scene.end:.3f} s) is not after its start ({scene.start:.3f} s)")
        previous_end = scene.end
    duration = plan.input.duration
    if duration is not None and abs(previous_end - duration) > END_TOLERANCE:
        raise PlanError(f"scene {len(plan.scenes)}: end ({previous_end:.3f} s) is not the video's end ({duration:.3f} s)")
    if duration is None and previous_end > RANGES["image_duration"][1]:
        raise PlanError(f"scene {len(plan.scenes)}: end ({previous_end:.3f} s) is past the longest image score (300 s)")


def _check_scene_fields(i: int, scene) -> None:
    if scene.seed is not None and (not isinstance(scene.seed, int) or isinstance(scene.seed, bool) or not 0 <= scene.seed <= MAX_SEED):
        raise PlanError(f"scene {i}: seed ({_show(scene.seed)}) must be a whole number from 0 to 2**63-1")
    for name in ("caption", "caption_source", "prompt", "prompt_source", "fallback_reason", "preset"):
        value = getattr(scene, name)
        if value is not None and not isinstance(value, str):
            raise PlanError(f"scene {i}: {name} ({_show(value)}) must be text")
    if scene.prompt is not None and len(scene.prompt) > MAX_PROMPT:
        raise PlanError(f"scene {i}: prompt is {len(scene.prompt)} characters long; at most {MAX_PROMPT}")
    if not isinstance(scene.frames, list) or not all(_is_number(t) and math.isfinite(t) for t in scene.frames):
        raise PlanError(f"scene {i}: frames must be a list of finite times")
    if not isinstance(scene.frame_captions, list) or not all(isinstance(c, str) for c in scene.frame_captions):
        raise PlanError(f"scene {i}: frame_captions must be a list of texts")


def check_input(data) -> dict:
    """The plan's `input` (what probing found) has the types `MediaInfo` needs; returns it."""
    if not isinstance(data, dict):
        raise PlanError("input: must be a JSON object (what probing the input found)")
    if not isinstance(data.get("path"), str) or not data["path"]:
        raise PlanError("input: path must be the input file's name")
    if data.get("kind") not in ("video", "image"):
        raise PlanError(f"input: kind ({_show(data.get('kind'))}) must be video or image")
    for name in ("duration", "fps", "start_time"):
        value = data.get(name)
        if value is not None and (not _is_number(value) or not math.isfinite(value) or value < 0):
            raise PlanError(f"input: {name} ({_show(value)}) must be a finite number of seconds")
    return data


def check_same_input(recorded, current) -> None:
    """The file a plan was made from is still the one on disk (re-probed before a render)."""
    if current.kind != recorded.kind:
        raise PlanError(f"the plan's input {recorded.path} is now an {current.kind}, not the {recorded.kind} the plan was made from")
    if recorded.duration is not None and abs((current.duration or 0.0) - recorded.duration) > END_TOLERANCE:
        raise PlanError(
            f"the plan's input {recorded.path} has changed since the plan was made "
            f"({recorded.duration:.3f} s then, {current.duration or 0:.3f} s now): make a new plan"
        )

"""Shared set-up of the review tests: a planned three-scene clip (tiny models), copied per test."""

from __future__ import annotations

import json
import shutil
import time

from .helpers import make_clip


def planned_clip(folder, tiny_models):
    """A 3-scene clip (red, green, blue, 2 s each) and its plan, made with the tiny models."""
    import scoretool
    from scoretool import Settings
    from scoretool.cache import Cache

    clip = make_clip(folder / "in.mp4", colours=("red", "green", "blue"), seconds=2.0)
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), bridge="offline")
    the_plan = scoretool.plan(str(clip), settings, cache=Cache(folder / "cache"))
    data = the_plan.to_dict()
    data["input"]["path"] = "in.mp4"  # beside the plan, as `scoretool plan in.mp4` run there writes it
    (folder / "in.plan.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return folder / "in.plan.json"


def copy_plan(planned, folder):
    """The clip and its plan in `folder` (a plan names its input relative to itself)."""
    shutil.copy(planned.parent / "in.mp4", folder / "in.mp4")
    shutil.copy(planned, folder / "in.plan.json")
    return folder / "in.plan.json"


def plan_json(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def wait_for_render(get_state, timeout=300.0) -> dict:
    """Poll the state until no render runs; returns the last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = get_state()
        if not state["render"]["running"]:
            return state
        time.sleep(0.2)
    raise AssertionError(f"render still running after {timeout} s")

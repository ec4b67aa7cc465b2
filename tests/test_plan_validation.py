"""Every plan value checked before any model loads: one line naming the scene (from 1) and the field."""

import copy
import json
import math
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from scoretool.errors import PlanError
from scoretool.plans import Plan, Scene, Settings
from scoretool.validation import MAX_PROMPT

from .helpers import media_info
from .test_cli import assert_one_line_error, run


def good_plan() -> dict:
    """A valid plan's JSON: a 4 s video in two scenes."""
    info = {**media_info("clip.mp4").to_dict(), "duration": 4.0, "fps": 24.0, "width": 160, "height": 120}
    scenes = [Scene(number=1, start=0.0, end=2.0, frames=[0.4, 1.0], frame_captions=["a", "b"], prompt="piano", seed=0),
              Scene(number=2, start=2.0, end=4.0, prompt="drums", seed=1)]
    return {"version": 1, "input": info, "settings": asdict(Settings().resolved()), "scenes": [asdict(s) for s in scenes]}


def edited(path: list, value) -> dict:
    data = good_plan()
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def test_a_good_plan_loads():
    plan = Plan.from_dict(good_plan())
    assert [s.number for s in plan.scenes] == [1, 2] and plan.input.duration == 4.0


@pytest.mark.parametrize("path, value, message", [
    (["scenes", 1, "end"], math.inf, r"scene 2: end \(inf\) is not a finite time"),
    (["scenes", 0, "start"], math.nan, r"scene 1: start \(nan\) is not a finite time"),
    (["scenes", 0, "start"], -5.0, r"scene 1: start \(-5.000 s\) is not the video's start"),
    (["scenes", 1, "start"], 2.5, r"scene 2: start \(2.500 s\) is not where scene 1 ends \(2.000 s\)"),
    (["scenes", 1, "end"], 1e300, r"scene 2: end .* is not the video's end \(4.000 s\)"),
    (["scenes", 1, "end"], 2.0, r"scene 2: end \(2.000 s\) is not after its start"),
    (["scenes", 0, "seed"], 2**80, r"scene 1: seed .* must be a whole number from 0 to 2\*\*63-1"),
    (["scenes", 0, "seed"], -1, r"scene 1: seed \(-1\)"),
    (["scenes", 0, "prompt"], "x" * (MAX_PROMPT + 1), f"scene 1: prompt is {MAX_PROMPT + 1} characters long"),
    (["scenes", 0, "prompt"], 7, r"scene 1: prompt \(7\) must be text"),
    (["scenes", 0, "frames"], ["a"], "scene 1: frames must be a list of finite times"),
    (["scenes", 0, "colour"], 1, "scene 1: unknown field 'colour'"),
    (["scenes", 1], "nope", "scene 2: must be a JSON object"),
    (["settings", "crossfade"], "long", r"settings: crossfade \('long'\) must be a number"),
    (["settings", "loudness"], -200, r"settings: loudness \(-200\) must be from -40 to -5"),
    (["settings", "transition"], "wipe", "settings: transition 'wipe' is not one of crossfade, cut, continue"),
    (["settings", "seed"], 2**80, r"settings: seed .* must be from 0 to 2\*\*63-1"),
    (["settings", "top_k"], 2.5, r"settings: top_k \(2.5\) must be a whole number"),
    (["input", "duration"], "long", r"input: duration \('long'\) must be a finite number"),
    (["input", "kind"], "audio", r"input: kind \('audio'\) must be video or image"),
])
def test_each_bad_value_is_named(path, value, message):
    with pytest.raises(PlanError, match=message):
        Plan.from_dict(edited(path, value))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_either_loads_or_gives_one_plan_error(data):
    try:
        Plan.from_dict(data)
    except PlanError as exc:
        assert "\n" not in str(exc)


def _fields(data: dict) -> list[list]:
    paths = [["input", k] for k in data["input"]] + [["settings", k] for k in data["settings"]]
    return paths + [["scenes", i, k] for i, s in enumerate(data["scenes"]) for k in s] + [["scenes"], ["version"], ["input"]]


@hsettings(max_examples=400, deadline=None)
@given(st.data())
def test_any_one_field_replaced_by_any_json_loads_or_gives_one_plan_error(data):
    plan = good_plan()
    path = data.draw(st.sampled_from(_fields(plan)))
    value = data.draw(json_values)
    broken = copy.deepcopy(plan)
    target = broken
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    try:
        loaded = Plan.from_dict(broken)
    except PlanError as exc:
        assert "\n" not in str(exc)
    else:  # what loads is fit to render: finite times that tile the video
        assert all(math.isfinite(s.start) and math.isfinite(s.end) for s in loaded.scenes)


def test_render_refuses_a_bad_plan_in_one_line_before_any_model(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(edited(["scenes", 1, "end"], math.inf)))  # JSON's Infinity, as Python writes it
    assert_one_line_error(run("render", str(path), "-o", str(tmp_path / "o.wav")), "scene 2: end")


def test_a_seed_past_2_63_is_refused_on_the_command_line(tmp_path):
    result = run("plan", "in.mp4", "--seed", str(2**80), "-o", str(tmp_path / "p.json"))
    assert result.returncode == 2 and "--seed" in result.stderr and "Traceback" not in result.stderr

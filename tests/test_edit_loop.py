"""Presets, per-scene overrides and the cache through the real pipeline (tiny models)."""

import json

import pytest

import scoretool
from scoretool import Settings
from scoretool.cache import Cache
from scoretool.overrides import OverrideError, gather
from scoretool.presets import PresetError, load_presets

from .helpers import make_clip
from .test_cli import assert_one_line_error, run


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", colours=("red", "green", "blue"), seconds=2.5)


@pytest.fixture
def settings(tiny_models):
    return Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), preset="cinematic")


def test_preset_cli_and_sidecar_overrides_then_edit_and_rerender_only_what_changed(clip, settings, tmp_path):
    presets = load_presets()
    (tmp_path / "in.scoretool.toml").write_text('[scenes.3]\npreset = "suspense"\n')
    cache = Cache(tmp_path / "cache")
    result = scoretool.score(str(clip), str(tmp_path / "a.mp4"), settings, save_plan=str(tmp_path / "p.json"),
                             overrides=gather(str(clip), ("2=lofi", "1:seed=42")), cache=cache)
    scenes = result.plan.scenes
    assert [s.preset for s in scenes] == [None, "lofi", "suspense"]
    assert presets["cinematic"].genre in scenes[0].prompt
    assert presets["lofi"].genre in scenes[1].prompt and "cinematic" not in scenes[1].prompt
    assert presets["suspense"].genre in scenes[2].prompt
    assert scenes[0].seed == 42 and scenes[1].seed == 1
    assert result.cache["clip"] == {"hits": 0, "misses": 3}
    assert result.plan.settings.guidance_scale == presets["cinematic"].generation["guidance_scale"]

    data = json.loads((tmp_path / "p.json").read_text())
    data["scenes"][0]["prompt"] = "solo piano, tender, 70 BPM"
    (tmp_path / "p.json").write_text(json.dumps(data))
    again = scoretool.render(str(tmp_path / "p.json"), str(tmp_path / "b.mp4"), cache=Cache(tmp_path / "cache"))
    assert again.cache["clip"] == {"hits": 2, "misses": 1}  # scene 1 only
    assert again.plan.scenes[0].prompt == "solo piano, tender, 70 BPM"


def test_user_prompt_for_one_scene_is_kept_as_written(clip, settings):
    the_plan = scoretool.plan(str(clip), settings, overrides=gather(str(clip), ('2:prompt="harp and rain"',)))
    assert the_plan.scenes[1].prompt == "harp and rain" and the_plan.scenes[1].prompt_source == "user"


def test_bad_overrides_fail_before_any_model_is_loaded(clip, tmp_path):
    # No such models exist: reaching the model stage would fail differently.
    bad_models = ["--caption-model", str(tmp_path / "no-blip"), "--music-model", str(tmp_path / "no-musicgen")]
    out = tmp_path / "o.mp4"
    assert_one_line_error(run("score", clip, "-o", out, "--scene", "9=lofi", *bad_models), r"no scene 9; this video has scenes 1 to 3")
    assert_one_line_error(run("score", clip, "-o", out, "--scene", "2=nope", *bad_models), r"unknown preset 'nope'.*lofi")
    assert_one_line_error(run("score", clip, "-o", out, "--scene", "2:seed=x", *bad_models), r"seed must be a whole number")
    assert_one_line_error(run("score", clip, "-o", out, "--preset", "nope", *bad_models), r"unknown preset 'nope'")
    assert not out.exists()


def test_presets_commands():
    proc = run("presets")
    assert proc.returncode == 0 and "lofi" in proc.stdout and "jazz-noir" in proc.stdout
    proc = run("presets", "show", "lofi")
    assert proc.returncode == 0 and "lo-fi hip hop" in proc.stdout
    assert_one_line_error(run("presets", "show", "nope"), r"unknown preset")


def test_cache_commands(tmp_path):
    cache = Cache(tmp_path / "c")
    cache.put_json("caption", "ab" * 32, "a caption")
    proc = run("cache", "info", "--cache-dir", tmp_path / "c")
    assert proc.returncode == 0 and "caption" in proc.stdout and "1 entries" in proc.stdout
    assert run("cache", "clear", "--cache-dir", tmp_path / "c").returncode == 0
    assert Cache(tmp_path / "c").info()["entries"] == {}

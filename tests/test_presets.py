"""Presets, per-scene override parsing and the content-addressed cache, as units."""

import numpy as np
import pytest

from scoretool.cache import Cache, key
from scoretool.overrides import OverrideError, gather, parse_scene_option, parse_time, scene_for, sidecar_path
from scoretool.presets import PresetError, get_preset, load_presets, parse_preset

GOOD = """
name = "mine"
description = "My style"
genre = "dub techno"
mood = "hazy"
instruments = ["chords", "sub bass"]
bpm = 118
"""


def test_builtin_presets_are_many_distinct_and_valid():
    presets = load_presets(user_dir=None)
    assert len(presets) >= 10
    for name in ("cinematic", "lofi", "documentary", "corporate", "upbeat-pop", "ambient", "suspense", "jazz-noir", "epic-trailer", "acoustic-folk"):
        assert name in presets
    assert len({p.genre for p in presets.values()}) == len(presets)
    cinematic = presets["cinematic"]
    terms = cinematic.terms()
    for word in (cinematic.genre, cinematic.instruments[0], f"{cinematic.bpm} BPM"):
        assert word in terms
    assert cinematic.generation["guidance_scale"] == 3.5


def test_user_folder_adds_and_shadows(tmp_path):
    (tmp_path / "mine.toml").write_text(GOOD)
    (tmp_path / "lofi.toml").write_text(GOOD.replace('"mine"', '"lofi"'))
    presets = load_presets(tmp_path)
    assert presets["mine"].genre == "dub techno"
    assert presets["lofi"].genre == "dub techno" and presets["lofi"].source.endswith("lofi.toml")


@pytest.mark.parametrize(
    "change, field",
    [
        (('bpm = 118', 'bpm = "fast"'), "bpm"),
        (('instruments = ["chords", "sub bass"]', 'instruments = []'), "instruments"),
        (('genre = "dub techno"', ''), "genre"),
        (('bpm = 118', 'bpm = 118\ncolour = "red"'), "colour"),
        (('bpm = 118', 'bpm = 118\n[generation]\nguidance_scale = 99'), "generation.guidance_scale"),
    ],
)
def test_bad_preset_names_the_file_and_the_field(tmp_path, change, field):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(*change))
    presets = load_presets(tmp_path)  # the other presets still load; this one fails when asked for
    with pytest.raises(PresetError, match=rf"bad\.toml: field '{field}'"):
        get_preset("bad", presets)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(PresetError, match="unknown preset 'nope'.*cinematic.*lofi"):
        get_preset("nope", load_presets())


def test_scene_options():
    o = parse_scene_option("3=lofi")
    assert (o.scene, o.field, o.value) == (3, "preset", "lofi")
    o = parse_scene_option('3:prompt="solo piano, tender"')
    assert (o.scene, o.field, o.value) == (3, "prompt", "solo piano, tender")
    assert parse_scene_option("3:seed=7").value == 7
    o = parse_scene_option("00:01:20=suspense")
    assert (o.scene, o.time, o.value) == (None, 80.0, "suspense")
    assert parse_time("1:02:03.5") == 3723.5 and parse_time("abc") is None
    for bad in ("3", "x=lofi", "3:seed=seven", "3:colour=red", "3:prompt="):
        with pytest.raises(OverrideError):
            parse_scene_option(bad)


def test_scene_selection_and_range_errors():
    bounds = [(0.0, 10.0), (10.0, 75.0), (75.0, 90.0)]
    assert scene_for(parse_scene_option("00:01:20=lofi"), bounds) == 3
    assert scene_for(parse_scene_option("2=lofi"), bounds) == 2
    with pytest.raises(OverrideError, match="no scene 4; this video has scenes 1 to 3"):
        scene_for(parse_scene_option("4=lofi"), bounds)
    with pytest.raises(OverrideError, match="past the end"):
        scene_for(parse_scene_option("00:02:00=lofi"), bounds)


def test_sidecar_then_cli_on_top(tmp_path):
    video = tmp_path / "in.mp4"
    assert sidecar_path(str(video)) == str(tmp_path / "in.scoretool.toml")
    (tmp_path / "in.scoretool.toml").write_text('preset = "ambient"\n[scenes.2]\npreset = "lofi"\nseed = 9\n[scenes."00:00:05"]\nprompt = "harp"\n')
    found = gather(str(video), ("2=suspense",))
    assert found.preset == "ambient"
    assert [(o.scene, o.time, o.field, o.value) for o in found.scenes] == [
        (2, None, "preset", "lofi"), (2, None, "seed", 9), (None, 5.0, "prompt", "harp"), (2, None, "preset", "suspense"),
    ]
    (tmp_path / "in.scoretool.toml").write_text("[scenes.2]\ncolour = 1\n")
    with pytest.raises(OverrideError, match=r"in\.scoretool\.toml \[scenes\.2\]: unknown field 'colour'"):
        gather(str(video))


def test_cache_round_trip_stats_info_and_clear(tmp_path):
    cache = Cache(tmp_path / "c")
    k = key("musicgen", "a prompt", 7, 2.5)
    assert k == key("musicgen", "a prompt", 7, 2.5) and k != key("musicgen", "a prompt", 8, 2.5)
    assert cache.get_array("clip", k) is None
    cache.put_array("clip", k, np.arange(6, dtype=np.float32).reshape(3, 2))
    assert np.array_equal(cache.get_array("clip", k), np.arange(6, dtype=np.float32).reshape(3, 2))
    cache.put_json("prompt", k, {"prompt": "x"})
    assert cache.get_json("prompt", k) == {"prompt": "x"}
    assert cache.stats() == {"clip": {"hits": 1, "misses": 1}, "prompt": {"hits": 1, "misses": 0}}
    info = cache.info()
    assert info["entries"] == {"clip": 1, "prompt": 1} and info["bytes"] > 0
    assert not list((tmp_path / "c").rglob(".*tmp"))  # no temp files left behind
    assert cache.clear() == info["bytes"] and cache.info()["entries"] == {}
    off = Cache(tmp_path / "d", enabled=False)
    off.put_json("prompt", k, 1)
    assert off.get_json("prompt", k) is None and not (tmp_path / "d").exists()


def test_a_broken_preset_file_fails_only_the_runs_that_ask_for_it(tmp_path, caplog):
    from scoretool.presets import check_plan_presets

    (tmp_path / "mine.toml").write_text('name = "mine"\ndescription = "d"\ngenre = "dub techno"\nmood = "deep"\n'
                                        'instruments = ["synth"]\ntempo = "slow"\n')
    (tmp_path / "broken.toml").write_text("name = [unclosed")
    with caplog.at_level("WARNING", logger="scoretool"):
        presets = load_presets(tmp_path)
    assert "mine" in presets and "cinematic" in presets  # the others still load
    assert any("broken.toml" in r.getMessage() for r in caplog.records)
    with pytest.raises(PresetError, match=r"broken\.toml: not valid TOML"):
        get_preset("broken", presets)
    assert get_preset("mine", presets).genre == "dub techno"

    class Plan:  # what check_plan_presets reads: the video's preset and each scene's
        settings = type("S", (), {"preset": None})()
        scenes = [type("Sc", (), {"number": 2, "preset": "broken"})()]

    with pytest.raises(PresetError, match=r"scene 2: .*broken\.toml"):
        check_plan_presets(Plan(), presets)

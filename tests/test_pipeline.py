"""End to end through the real code paths, with tiny random models built by scoretool.testing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import scoretool
from scoretool import Plan, Settings
from scoretool.errors import ModelUnavailable

from .conftest import SAMPLES, SHARED_MEDIA, needs_shared_media
from .helpers import audio_and_video_seconds, file_md5, make_clip, video_packets_md5


@pytest.fixture(scope="module")
def settings(tiny_models):
    return Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), device="cpu")


def check_scored(src, out, frame_seconds):
    assert video_packets_md5(out) == video_packets_md5(src)
    audio, video = audio_and_video_seconds(out)
    assert abs(audio - video) <= frame_seconds


@needs_shared_media
def test_tears_of_steel_scored_bit_exact_with_cuts_where_the_readme_says(settings, tmp_path):
    src = SHARED_MEDIA / "clip_01_tears_of_steel.mp4"
    before = file_md5(src)
    result = scoretool.score(str(src), str(tmp_path / "tos.mp4"), settings, save_plan=str(tmp_path / "tos.plan.json"))
    check_scored(src, tmp_path / "tos.mp4", 1 / 24)
    assert file_md5(src) == before
    cuts = [s.start for s in result.plan.scenes[1:]]
    # README cuts: 0.875 (first shot is 0.875 s, under --min-scene 2, so it merges), 2.708, 7.708.
    assert cuts == pytest.approx([2.708, 7.708], abs=0.1)
    assert result.plan.scenes[-1].end == pytest.approx(10.0, abs=1 / 24)
    for scene in result.plan.scenes:
        assert len(scene.frame_captions) == 3 and scene.caption and scene.prompt and scene.prompt_source == "offline"
    assert set(result.timings) >= {"probe", "scenes", "frames", "captions", "bridge", "music", "mix", "mux"}
    assert Plan.load(tmp_path / "tos.plan.json").to_dict() == result.plan.to_dict()


@needs_shared_media
def test_webm_into_mkv_and_a_clear_refusal_for_mp4(settings, tmp_path):
    src = SHARED_MEDIA / "big_buck_bunny_0_30.webm"
    with pytest.raises(scoretool.ScoreToolError, match=r"VP8.*\.mkv"):
        scoretool.score(str(src), str(tmp_path / "bbb.mp4"), settings)
    assert not (tmp_path / "bbb.mp4").exists()
    result = scoretool.score(str(src), str(tmp_path / "bbb.mkv"), settings)
    check_scored(src, tmp_path / "bbb.mkv", 1 / 24)
    assert [s.start for s in result.plan.scenes[1:]] == pytest.approx([11.792, 15.667, 22.958], abs=0.1)


def test_plan_edit_then_render_honours_the_edit(settings, tmp_path):
    src = make_clip(tmp_path / "in.mp4", colours=("red", "green", "blue"), seconds=2.5)
    plan_path = tmp_path / "in.plan.json"
    the_plan = scoretool.plan(str(src), settings)
    assert len(the_plan.scenes) == 3
    the_plan.save(plan_path)
    data = json.loads(plan_path.read_text())
    data["scenes"][1]["prompt"] = "solo piano, tender"
    data["scenes"][1]["prompt_source"] = "user"
    data["scenes"][2]["prompt"] = ""  # emptied: the bridge writes a new one
    plan_path.write_text(json.dumps(data))
    result = scoretool.render(str(plan_path), str(tmp_path / "out.mp4"))
    assert result.plan.scenes[1].prompt == "solo piano, tender"
    assert result.plan.scenes[2].prompt and result.plan.scenes[2].prompt_source == "offline"
    check_scored(src, tmp_path / "out.mp4", 1 / 24)


def test_same_seed_same_music_and_a_scene_does_not_depend_on_its_batch(settings):
    from scoretool.music import load_music_generator
    from scoretool.specs import ModelSpec, Sampling

    gen = load_music_generator(ModelSpec(settings.music_model, "cpu"))
    together = gen.generate(["calm piano", "fast drums", "ambient pads"], [1.0, 2.0, 1.5], [5, 6, 7], Sampling())
    alone = gen.generate(["fast drums"], [2.0], [6], Sampling())
    again = gen.generate(["calm piano", "fast drums", "ambient pads"], [1.0, 2.0, 1.5], [5, 6, 7], Sampling())
    assert [c.shape[0] for c in together] == [32000, 64000, 48000]
    assert np.array_equal(together[0], again[0]) and np.array_equal(together[2], again[2])
    assert np.allclose(alone[0], together[1], atol=1e-4)
    other_seed = gen.generate(["fast drums"], [2.0], [99], Sampling())
    assert not np.allclose(other_seed[0], alone[0])


def test_image_to_video_and_image_to_wav(settings, tmp_path):
    src = SAMPLES / "coffee.png"
    short = Settings(**{**settings.__dict__, "image_duration": 4.0})
    result = scoretool.score(str(src), str(tmp_path / "coffee.mp4"), short)
    audio, video = audio_and_video_seconds(tmp_path / "coffee.mp4")
    assert video == pytest.approx(4.0, abs=0.05) and audio == pytest.approx(video, abs=0.05)
    assert len(result.plan.scenes) == 1 and len(result.plan.scenes[0].frame_captions) == 3
    scoretool.score(str(src), str(tmp_path / "coffee.wav"), short)
    data, rate = soundfile.read(tmp_path / "coffee.wav")
    assert data.shape[0] == 4 * rate


def test_video_to_wav_is_exactly_the_video_length(settings, tmp_path):
    src = make_clip(tmp_path / "in.mp4", colours=("red", "white"), seconds=1.5)
    scoretool.score(str(src), str(tmp_path / "music.wav"), settings)
    info = soundfile.info(tmp_path / "music.wav")
    assert info.frames == round(3.0 * info.samplerate)


def test_missing_model_is_one_clear_error(settings, tmp_path):
    src = make_clip(tmp_path / "in.mp4", colours=("red",), seconds=2)
    bad = Settings(**{**settings.__dict__, "caption_model": "nobody/no-such-model"})
    with pytest.raises(ModelUnavailable, match="nobody/no-such-model.*not in the Hugging Face cache"):
        scoretool.score(str(src), str(tmp_path / "out.mp4"), bad)
    assert not (tmp_path / "out.mp4").exists()

"""What a run is told to do: explicit options over presets over defaults, model identity apart from
sampling, and the precision that ran recorded in the plan and the cache keys (tiny models)."""

import json

import pytest

import scoretool
from scoretool import Settings
from scoretool.music import load_music_generator
from scoretool.plans import DEFAULT_MUSIC_MODEL
from scoretool.presets import parse_preset
from scoretool.specs import Loaded, ModelSpec, Sampling, music_spec
from scoretool.stages.music import clip_keys

from .helpers import make_clip
from .test_cli import run

LOUD_PRESET = """name = "loud"
description = "A brass band at full tilt"
genre = "brass band"
mood = "bold"
instruments = ["trumpets", "tuba"]
tempo = "fast"
[generation]
guidance_scale = 12.0
"""


@pytest.fixture
def presets_dir(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "loud.toml").write_text(LOUD_PRESET)
    return folder


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", colours=("red", "blue"), seconds=2.5)


def test_resolved_settings_explicit_then_preset_then_default():
    preset = parse_preset(LOUD_PRESET, "loud.toml")
    assert Settings().resolved().sampling() == Sampling()
    assert Settings().resolved().music_model == DEFAULT_MUSIC_MODEL
    assert Settings().resolved(preset).guidance_scale == 12.0
    assert Settings(guidance_scale=3.0).resolved(preset).guidance_scale == 3.0  # the default value, given: wins
    resolved = Settings(temperature=0.7).resolved(preset)
    assert resolved.sampling() == Sampling(guidance_scale=12.0, temperature=0.7, top_k=250)
    assert resolved.resolved(preset) == resolved  # idempotent


def test_explicit_default_guidance_wins_over_the_preset_on_the_command_line(tiny_models, clip, presets_dir, tmp_path):
    """Bug: `--preset P --guidance 3.0` generated at P's guidance ("given as the default" looked like "not given")."""
    common = [str(clip), "--preset", "loud", "--presets-dir", str(presets_dir), "--caption-model", str(tiny_models["blip"]),
              "--bridge", "offline", "--no-cache", "-q"]
    run("plan", *common, "-o", str(tmp_path / "preset.json"))
    run("plan", *common, "--guidance", "3.0", "-o", str(tmp_path / "explicit.json"))
    by_preset = json.loads((tmp_path / "preset.json").read_text())["settings"]
    explicit = json.loads((tmp_path / "explicit.json").read_text())["settings"]
    assert by_preset["guidance_scale"] == 12.0
    assert explicit["guidance_scale"] == 3.0


class Recording:
    """A `MusicGenerator` that hands every call to the real one and records the sampling it got."""

    def __init__(self, real, log):
        self.real, self.log = real, log
        self.name, self.spec, self.sample_rate = real.name, real.spec, real.sample_rate

    def steps(self, durations):
        return self.real.steps(durations)

    def generate(self, prompts, durations, seeds, sampling, on_step=None):
        self.log.append(sampling)
        return self.real.generate(prompts, durations, seeds, sampling, on_step)

    def continue_from(self, prompt, audio, duration, seed, sampling, on_step=None):
        self.log.append(sampling)
        return self.real.continue_from(prompt, audio, duration, seed, sampling, on_step)


class SamplingSpy:
    """A generator factory: the real tiny generator, recording its calls' sampling, loads counted."""

    def __init__(self):
        self.loads, self.sampling = 0, []

    def __call__(self, spec):
        self.loads += 1
        return Recording(load_music_generator(spec), self.sampling)


def test_render_generates_with_the_plans_sampling_and_one_model_serves_every_setting(tiny_models, clip, presets_dir, tmp_path):
    spy = SamplingSpy()
    generators = Loaded(spy)
    base = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), bridge="offline",
                    presets_dir=str(presets_dir), device="cpu", precision="fp32")
    for settings in (Settings(**{**base.__dict__, "preset": "loud", "guidance_scale": 3.0}),
                     Settings(**{**base.__dict__, "preset": "loud"})):
        the_plan = scoretool.plan(str(clip), settings)
        scoretool.render(the_plan, str(tmp_path / "out.wav"), generators=generators)
    assert [s.guidance_scale for s in spy.sampling] == [3.0, 12.0]
    assert spy.loads == 1  # the sampling settings changed, the model did not: loaded once


def test_the_plan_records_the_precision_that_ran_and_clip_keys_depend_on_it(tiny_models, clip, tmp_path):
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), bridge="offline",
                        device="cpu", precision="fp32")
    result = scoretool.score(str(clip), str(tmp_path / "out.wav"), settings)
    assert result.plan.models["caption"]["precision"] == "fp32"
    assert result.plan.models["music"] == {"model": str(tiny_models["musicgen"]), "device": "cpu", "precision": "fp32",
                                           "why": "--precision fp32"}
    assert result.summary()["models"] == result.plan.models
    spec = music_spec(result.plan.settings)
    assert spec == ModelSpec(str(tiny_models["musicgen"]), "cpu", "fp32")
    other = [ModelSpec(spec.model, "cpu", p) for p in ("bf16", "int8")]
    keys = [clip_keys(result.plan, s) for s in (spec, *other)]
    assert len({k for ks in keys for k in ks}) == 3 * len(result.plan.scenes)  # never served for another precision


def test_a_spec_needs_a_concrete_precision():
    with pytest.raises(ValueError, match="concrete precision"):
        ModelSpec("m", "cpu", "auto")

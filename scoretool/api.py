"""The Python API: `plan()` looks at a video, `render()` makes its music, `score()` does both.

A façade over the stage modules (`scoretool.stages`), which talk through the `Plan`:
analysis → captions → prompts (in `plan`); music → output (in `render`). `scoretool.batch` runs
the same two functions with models shared between clips, passed in as factories keyed by
`ModelSpec`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from . import memory
from . import overrides as overrides_mod
from . import timeline as timelines
from .bridge import BRIDGES, Bridge
from .cache import Cache
from .caption import load_captioner
from .errors import InputError
from .media.probe import probe
from .music import load_music_generator
from .plans import Plan, Settings
from .presets import Presets, check_plan_presets, get_preset, load_presets
from .progress import Reporter
from .specs import Loaded, ModelSpec, model_spec
from .stages import analysis, captions, music, output, prompts
from .stages.captions import CaptionerFactory
from .stages.music import GeneratorFactory
from .validation import check_same_input

# Re-exported: `batch` and the CLI call these through the façade.
open_bridge = prompts.open_bridge
write_prompts = prompts.write_prompts
check_output = output.check_output
check_plan_path = output.check_plan_path


@dataclass
class Result:
    output: str
    plan: Plan
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)  # hits and misses per kind: what was reused, what was made

    def summary(self) -> dict:
        """What `--json` prints: enough for a script to use the output and check the scenes."""
        return {
            "output": self.output,
            "input": self.plan.input.path,
            "duration": round(self.plan.duration, 3),
            "bridge": self.plan.settings.bridge,
            "models": self.plan.models,
            "scenes": [
                {"number": s.number, "start": s.start, "end": s.end, "caption": s.caption, "prompt": s.prompt,
                 "prompt_source": s.prompt_source, "fallback_reason": s.fallback_reason, "seed": s.seed,
                 "preset": s.preset or self.plan.settings.preset}
                for s in self.plan.scenes
            ],  # fmt: skip
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "cache": self.cache,
        }


def plan(
    input_path: str,
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    captioners: CaptionerFactory | None = None,
    bridge: Bridge | None = None,
    overrides: overrides_mod.Overrides | None = None,
    cache: Cache | None = None,
) -> Plan:
    """Find the scenes of a video (or take an image as one scene), caption them and write prompts.

    `overrides` (per-scene presets, prompts, seeds; see `scoretool.overrides`) are checked against
    the scenes and the presets before any model is loaded. `captioners`: a factory giving the
    captioner for a `ModelSpec` (default: load it, once); it is asked only if a frame needs it.
    """
    reporter = reporter or Reporter()
    overrides = overrides or overrides_mod.Overrides()
    with reporter.stage("probe"):
        info = probe(input_path)
    settings, presets = _with_presets(settings or Settings(), overrides)
    if bridge is None:  # before any captioning: a missing key or a bad model id stops the run now
        bridge, settings = prompts.open_bridge(settings, reporter)
    elif settings.bridge == "auto" and bridge.name in BRIDGES:
        settings = replace(settings, bridge=bridge.name)
    spec, why = model_spec(settings, "caption")
    owned = captioners is None
    if owned:
        captioners = Loaded(load_captioner)
        captioners.preload(spec)  # loads while the video is decoded
    try:
        scenes, images = analysis.analyse(input_path, info, settings, reporter)
        overrides_mod.apply(scenes, overrides, presets)
        texts, ran = captions.caption_frames(images, spec, captioners, cache, reporter)
    finally:
        if isinstance(captioners, Loaded):
            captioners.settle()
    if owned:  # the captioner is not needed again: its memory goes before the music model comes
        del captioners
        memory.trim()
    per_scene = settings.frames_per_scene
    for n, scene in enumerate(scenes):
        scene.frame_captions = texts[n * per_scene : (n + 1) * per_scene]
    result = Plan(input=info, settings=settings, scenes=scenes)
    _record_model(result, "caption", ran, why, reporter)
    prompts.write_prompts(result, bridge, reporter, cache=cache)
    return result


def _with_presets(settings: Settings, overrides: overrides_mod.Overrides) -> tuple[Settings, Presets]:
    """Load the presets, take a sidecar's video-wide preset and prompt where no option set them,
    and fill in what no option gave from the video's preset, else the defaults. Unknown names fail
    here, early."""
    presets = load_presets(settings.presets_dir)
    settings = replace(settings, preset=settings.preset or overrides.preset, prompt=settings.prompt or overrides.prompt)
    return settings.resolved(get_preset(settings.preset, presets) if settings.preset else None), presets


def _record_model(the_plan: Plan, role: str, spec: ModelSpec, why: str, reporter: Reporter) -> None:
    """The plan says which model ran in which precision (and why); the console says it once."""
    if spec.precision != (the_plan.models.get(role) or {}).get("precision"):
        reporter.note(f"{role} model: {spec.describe()} ({why})")
    the_plan.models[role] = {"model": spec.model, "device": spec.device, "precision": spec.precision, "why": why}


def render(
    plan_or_path: Plan | str,
    output_path: str,
    *,
    reporter: Reporter | None = None,
    generators: GeneratorFactory | None = None,
    stems: str | None = None,
    cache: Cache | None = None,
    timeline: str | None = None,
    timeline_beats: bool = False,
) -> Result:
    """Generate each scene's music, mix the soundtrack and write `output_path` (a video or a .wav).

    With `stems`, that folder also gets the music alone, one WAV per scene, and the plan. With
    `timeline` (.otio .fcpxml .xml .edl), an editor's timeline of it too (`scoretool.timeline`;
    `timeline_beats`: with a marker on each beat of the music). With a
    `cache`, a scene whose prompt, seed, length, sampling and model are unchanged is not generated
    again. `generators`: a factory giving the music generator for a `ModelSpec` (default: load it);
    the spec and the sampling settings always come from the plan's settings.
    """
    reporter = reporter or Reporter()
    the_plan = plan_or_path if isinstance(plan_or_path, Plan) else Plan.load(plan_or_path)
    the_plan.settings, presets = _with_presets(the_plan.settings, overrides_mod.Overrides())  # a hand-made plan may leave some unset
    info = the_plan.input
    if not os.path.isfile(info.path):
        raise InputError(f"the plan's input file is missing: {info.path}")
    check_same_input(info, probe(info.path))
    check_plan_presets(the_plan, presets)
    output.check_output(info, output_path)
    if timeline:
        timelines.check_timeline_path(timeline)
    if stems:
        os.makedirs(stems, exist_ok=True)
    prompts.write_prompts(the_plan, None, reporter, cache=cache)  # loads the plan's bridge only if a scene lacks a prompt
    spec, why = model_spec(the_plan.settings, "music")
    clips, rate, ran = music.make_clips(the_plan, spec, generators or load_music_generator, cache, reporter)
    _record_model(the_plan, "music", ran, why if ran == spec else f"{why}; fell back to {ran.precision}", reporter)
    output.write_output(the_plan, clips, rate, output_path, reporter, stems=stems)
    if timeline:
        timelines.export_timeline(the_plan, clips, rate, timeline, beats=timeline_beats, reporter=reporter)
    return Result(output=output_path, plan=the_plan, timings=dict(reporter.timings), cache=cache.stats() if cache else {})


def score(
    input_path: str,
    output_path: str,
    settings: Settings | None = None,
    *,
    save_plan: str | None = None,
    stems: str | None = None,
    reporter: Reporter | None = None,
    overrides: overrides_mod.Overrides | None = None,
    cache: Cache | None = None,
    timeline: str | None = None,
    timeline_beats: bool = False,
) -> Result:
    """`plan` then `render`; with `save_plan`, the plan is kept for editing and re-rendering."""
    reporter = reporter or Reporter()
    output.check_output(probe(input_path), output_path)  # fail fast, before minutes of captioning
    if timeline:
        timelines.check_timeline_path(timeline)
    if save_plan:
        output.check_plan_path(input_path, save_plan)
    the_plan = plan(input_path, settings, reporter=reporter, overrides=overrides, cache=cache)
    if save_plan:  # kept even if the render fails
        the_plan.save(save_plan)
    result = render(
        the_plan, output_path, reporter=reporter, stems=stems, cache=cache, timeline=timeline, timeline_beats=timeline_beats
    )
    if save_plan:  # now with the music model that ran
        the_plan.save(save_plan)
    return result

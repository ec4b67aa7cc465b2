"""The Python API: `plan()` looks at a video, `render()` makes its music, `score()` does both.

Stages run in order, each in its own module, and talk through the `Plan`:
probe → scenes → frames → captions → bridge (in `plan`); music → mix → mux (in `render`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from .audio.assemble import assemble, clip_spans, normalize_loudness, write_wav
from .bridge import Bridge, load_bridge
from .caption import Captioner, load_captioner
from .errors import InputError, PlanError
from .media import frames as frames_mod
from .media import mux, scenes as scenes_mod
from .media.probe import MediaInfo, probe
from .models import pick_device
from .music import MusicGenerator, load_music_generator
from .plans import Plan, Scene, Settings
from .progress import Reporter


@dataclass
class Result:
    output: str
    plan: Plan
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        """What `--json` prints: enough for a script to use the output and check the scenes."""
        return {
            "output": self.output,
            "input": self.plan.input["path"],
            "duration": round(self.plan.duration, 3),
            "bridge": self.plan.settings.bridge,
            "scenes": [
                {"number": s.number, "start": s.start, "end": s.end, "caption": s.caption, "prompt": s.prompt,
                 "prompt_source": s.prompt_source, "seed": s.seed}
                for s in self.plan.scenes
            ],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def plan(
    input_path: str,
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    captioner: Captioner | None = None,
    bridge: Bridge | None = None,
) -> Plan:
    """Find the scenes of a video (or take an image as one scene), caption them and write prompts."""
    settings = settings or Settings()
    reporter = reporter or Reporter()
    with reporter.stage("probe"):
        info = probe(input_path)
    with reporter.stage("scenes"):
        bounds = _scene_bounds(input_path, info, settings)
    scenes = [
        Scene(number=i, start=round(s, 3), end=round(e, 3), frames=[round(t, 3) for t in frames_mod.frame_times(s, e, settings.frames_per_scene)])
        for i, (s, e) in enumerate(bounds, start=1)
    ]
    scenes[-1].end = round(bounds[-1][1], 6)  # the soundtrack must end exactly where the video does
    times = [t for s in scenes for t in s.frames]
    with reporter.stage("frames", total=len(times)) as advance:
        images = frames_mod.read_frames(input_path, times, info)
        advance(len(images))
    if captioner is None:
        with reporter.stage("load models"):
            captioner = load_captioner(settings.caption_model, pick_device(settings.device))
    with reporter.stage("captions", total=len(images)) as advance:
        captions = []
        for i in range(0, len(images), captioner.batch_size):
            captions += captioner.caption(images[i : i + captioner.batch_size])
            advance(len(captions) - i)
    per_scene = settings.frames_per_scene if info.kind == "video" else len(times)
    for n, scene in enumerate(scenes):
        scene.frame_captions = captions[n * per_scene : (n + 1) * per_scene]
        scene.seed = settings.seed + scene.number - 1
    result = Plan(input=info.to_dict(), settings=settings, scenes=scenes)
    write_prompts(result, bridge or load_bridge(settings.bridge), reporter)
    return result


def _scene_bounds(path: str, info: MediaInfo, settings: Settings) -> list[tuple[float, float]]:
    if info.kind == "image":
        return [(0.0, settings.image_duration)]
    return scenes_mod.plan_scenes(
        path, info, min_scene=settings.min_scene, max_scene=settings.max_scene,
        detector=settings.detector, threshold=settings.threshold,
    )


def write_prompts(plan: Plan, bridge: Bridge, reporter: Reporter) -> None:
    """Fill in each scene's caption and prompt where the plan has none yet (a person's edits stay)."""
    todo = [s for s in plan.scenes if not s.prompt]
    if not todo:
        return
    user_prompt = plan.settings.prompt
    with reporter.stage("bridge", total=len(todo)) as advance:
        for scene in plan.scenes:
            if not scene.caption:
                scene.caption = bridge.scene_caption(scene.frame_captions, user_prompt)
        if not plan.video_summary:
            plan.video_summary = bridge.video_summary([s.caption for s in plan.scenes])
        for scene in todo:
            if not scene.caption:
                raise PlanError(f"scene {scene.number} has neither a caption nor a prompt: give it a prompt in the plan")
            scene.prompt = bridge.music_prompt(
                scene.caption, summary=plan.video_summary, user_prompt=user_prompt, kind=plan.input["kind"]
            )
            scene.prompt_source = bridge.name
            advance(1)


def render(
    plan_or_path: Plan | str,
    output: str,
    *,
    reporter: Reporter | None = None,
    generator: MusicGenerator | None = None,
) -> Result:
    """Generate each scene's music, mix the soundtrack and write `output` (a video or a .wav)."""
    reporter = reporter or Reporter()
    the_plan = plan_or_path if isinstance(plan_or_path, Plan) else Plan.load(plan_or_path)
    settings = the_plan.settings
    info = MediaInfo.from_dict(the_plan.input)
    if not os.path.isfile(info.path):
        raise InputError(f"the plan's input file is missing: {info.path}")
    output_kind = check_output(info, output)
    write_prompts(the_plan, load_bridge(settings.bridge), reporter)

    bounds = [(s.start, s.end) for s in the_plan.scenes]
    spans = clip_spans(bounds, settings.crossfade)
    durations = [end - start for start, end in spans]
    if generator is None:
        with reporter.stage("load models"):
            generator = load_music_generator(
                settings.music_model, pick_device(settings.device),
                guidance_scale=settings.guidance_scale, temperature=settings.temperature, top_k=settings.top_k,
            )
    steps = generator.steps(durations) if hasattr(generator, "steps") else None
    with reporter.stage("music", total=steps) as advance:
        clips = generator.generate([s.prompt for s in the_plan.scenes], durations, [s.seed for s in the_plan.scenes], on_step=advance)
    with reporter.stage("mix"):
        track = assemble(clips, bounds, generator.sample_rate, settings.crossfade, settings.fade_in, settings.fade_out)
        track = normalize_loudness(track, generator.sample_rate, settings.loudness)
    with reporter.stage("mux"):
        if output_kind == "audio":
            write_wav(output, track, generator.sample_rate)
        else:
            with tempfile.TemporaryDirectory(prefix="scoretool-") as tmp:
                wav = os.path.join(tmp, "music.wav")
                write_wav(wav, track, generator.sample_rate)
                if info.kind == "image":
                    mux.still_video(info.path, wav, output, the_plan.duration)
                else:
                    mux.mux_video(info, wav, output)
    return Result(output=output, plan=the_plan, timings=dict(reporter.timings))


def check_output(info: MediaInfo, output: str) -> str:
    """Refuse an output we could not write, before any model is loaded. Returns "video" or "audio"."""
    kind = mux.check_output_path(info.path, output)
    if kind == "video" and info.kind == "video":
        mux.check_container(info, output)
    return kind


def check_plan_path(input_path: str, plan_path: str) -> None:
    mux.check_output_path(input_path, plan_path, kinds=("plan",))


def score(
    input_path: str,
    output: str,
    settings: Settings | None = None,
    *,
    save_plan: str | None = None,
    reporter: Reporter | None = None,
) -> Result:
    """`plan` then `render`; with `save_plan`, the plan is kept for editing and re-rendering."""
    reporter = reporter or Reporter()
    check_output(probe(input_path), output)  # fail fast, before minutes of captioning
    if save_plan:
        check_plan_path(input_path, save_plan)
    the_plan = plan(input_path, settings, reporter=reporter)
    if save_plan:
        the_plan.save(save_plan)
    return render(the_plan, output, reporter=reporter)


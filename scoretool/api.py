"""The Python API: `plan()` looks at a video, `render()` makes its music, `score()` does both.

Stages run in order, each in its own module, and talk through the `Plan`:
probe → scenes → frames → captions → bridge (in `plan`); music → mix → mux (in `render`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .audio.assemble import assemble, clip_spans, normalize_loudness, plan_transitions, true_peak_db, write_wav
from .audio.original import OUTPUT_RATE, combine, read_original
from . import overrides as overrides_mod
from .bridge import BRIDGES, Answer, Bridge, load_bridge, resolve_bridge
from .cache import Cache, key, model_identity
from .caption import Captioner, load_captioner
from .errors import InputError, PlanError
from .media import frames as frames_mod
from .media import mux, scenes as scenes_mod
from .media.decode import AnalysisPass
from .media.probe import MediaInfo, probe
from .models import pick_device
from .music import MusicGenerator, load_music_generator
from .plans import Plan, Scene, Settings
from .presets import apply_to_settings, ensure_style, get_preset, load_presets
from .progress import Reporter


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
            "input": self.plan.input["path"],
            "duration": round(self.plan.duration, 3),
            "bridge": self.plan.settings.bridge,
            "scenes": [
                {"number": s.number, "start": s.start, "end": s.end, "caption": s.caption, "prompt": s.prompt,
                 "prompt_source": s.prompt_source, "fallback_reason": s.fallback_reason, "seed": s.seed,
                 "preset": s.preset or self.plan.settings.preset}
                for s in self.plan.scenes
            ],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "cache": self.cache,
        }


def plan(
    input_path: str,
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    captioner: Captioner | None = None,
    bridge: Bridge | None = None,
    overrides: overrides_mod.Overrides | None = None,
    cache: Cache | None = None,
) -> Plan:
    """Find the scenes of a video (or take an image as one scene), caption them and write prompts.

    `overrides` (per-scene presets, prompts, seeds; see `scoretool.overrides`) are checked against
    the scenes and the presets before any model is loaded.
    """
    settings = settings or Settings()
    reporter = reporter or Reporter()
    overrides = overrides or overrides_mod.Overrides()
    with reporter.stage("probe"):
        info = probe(input_path)
    settings, presets = _with_presets(settings, overrides)
    if bridge is None:  # before any captioning: a missing key or a bad model id stops the run now
        bridge, settings = open_bridge(settings, reporter)
    elif settings.bridge == "auto" and bridge.name in BRIDGES:
        settings = replace(settings, bridge=bridge.name)
    scenes, images = analyse(input_path, info, settings, reporter)
    overrides_mod.apply(scenes, overrides, presets)
    keys, captions = cached_captions(images, settings.caption_model, cache)
    if captioner is None and None in captions:  # every frame captioned before: no model to load
        with reporter.stage("load models"):
            captioner = load_captioner(settings.caption_model, pick_device(settings.device))
    with reporter.stage("captions", total=len(images)) as advance:
        captions = caption_images(images, captioner, captions, keys, cache, advance)
    per_scene = settings.frames_per_scene
    for n, scene in enumerate(scenes):
        scene.frame_captions = captions[n * per_scene : (n + 1) * per_scene]
    result = Plan(input=info.to_dict(), settings=settings, scenes=scenes)
    write_prompts(result, bridge, reporter, cache=cache)
    return result


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
            bounds = _scene_bounds(decoded, info, settings)
        scenes = [Scene(number=i, start=round(s, 3), end=round(e, 3)) for i, (s, e) in enumerate(bounds, start=1)]
        scenes[-1].end = round(bounds[-1][1], 6)  # the soundtrack must end exactly where the video does
        images = []
        with reporter.stage("frames", total=len(scenes) * settings.frames_per_scene) as advance:
            for scene, span in zip(scenes, bounds):
                taken = frames_mod.scene_frames(decoded or input_path, span, settings.frames_per_scene)
                scene.frames = [round(t, 3) for t, _image in taken]  # the times really captioned
                scene.seed = settings.seed + scene.number - 1
                images += [image for _t, image in taken]
                advance(len(taken))
    return scenes, images


def _with_presets(settings: Settings, overrides: overrides_mod.Overrides) -> tuple[Settings, dict]:
    """Load the presets, take a sidecar's video-wide preset and prompt where no option set them,
    and let the video's preset fill in its generation settings. Unknown names fail here, early."""
    presets = load_presets(settings.presets_dir)
    settings = replace(settings, preset=settings.preset or overrides.preset, prompt=settings.prompt or overrides.prompt)
    if settings.preset:
        settings = apply_to_settings(settings, get_preset(settings.preset, presets))
    return settings, presets


def cached_captions(images: list, model: str, cache: Cache | None) -> tuple[list[str], list[str | None]]:
    """Each frame's cache key (by its pixels and the model) and its caption where one is cached."""
    if cache is None:
        return [], [None] * len(images)
    model_key = model_identity(model)
    keys = [key("caption", model_key, image.tobytes(), image.size) for image in images]
    return keys, [cache.get_json("caption", k) for k in keys]


def caption_images(
    images: list, captioner: Captioner | None, captions: list, keys: list, cache: Cache | None, advance: Callable[[int], None]
) -> list[str]:
    """Caption, in batches, the frames that have no caption yet; new captions go to the cache."""
    captions = list(captions)
    advance(sum(c is not None for c in captions))
    missing = [i for i, c in enumerate(captions) if c is None]
    for b in range(0, len(missing), captioner.batch_size if missing else 1):
        batch = missing[b : b + captioner.batch_size]
        for i, text in zip(batch, captioner.caption([images[i] for i in batch])):
            captions[i] = text
            if cache:
                cache.put_json("caption", keys[i], text)
        advance(len(batch))
    return captions


def _scene_bounds(decoded: AnalysisPass | None, info: MediaInfo, settings: Settings) -> list[tuple[float, float]]:
    """An image is one scene; a video's scenes come from the cuts in its analysis pass."""
    if decoded is None:
        return [(0.0, settings.image_duration)]
    cuts = scenes_mod.cuts_in(decoded.video, detector=settings.detector, threshold=settings.threshold)
    return scenes_mod.plan_scenes(cuts, info.duration, min_scene=settings.min_scene, max_scene=settings.max_scene)


def open_bridge(settings: Settings, reporter: Reporter) -> tuple[Bridge, Settings]:
    """Load the settings' bridge (`auto` resolved, the LLM's key and model checked) and say which it is.

    Returns the bridge and the settings with the choice filled in (bridge name, LLM model id), as the
    plan records them.
    """
    name, why = resolve_bridge(settings.bridge)
    if name in ("anthropic", "local"):
        with reporter.stage("load models"):
            bridge = load_bridge(name, llm_model=settings.llm_model, device=settings.device)
            bridge.preflight()
        settings = replace(settings, bridge=name, llm_model=bridge.model)
        reporter.note(f"bridge: {name}, model {bridge.model} ({why})")
    else:
        bridge = load_bridge(name)
        settings = replace(settings, bridge=name)
        reporter.note(f"bridge: {name} ({why})")
    return bridge, settings


def write_prompts(plan: Plan, bridge: Bridge | None = None, reporter: Reporter | None = None, cache: Cache | None = None) -> None:
    """Fill in each scene's caption and prompt where the plan has none yet (a person's edits stay).

    A scene that already has a prompt is never sent to the bridge again, and no bridge is even
    loaded when every scene has one. Scenes are bridged concurrently (up to the bridge's
    `concurrency`), the first one alone so that a bad key costs one request, not one per scene.
    Captions first, then the whole-video summary from all of them, then the prompts.
    """
    todo = [s for s in plan.scenes if not s.prompt]
    if not todo:
        return
    reporter = reporter or Reporter()
    if bridge is None:
        bridge, plan.settings = open_bridge(plan.settings, reporter)
    user_prompt = plan.settings.prompt
    kind = plan.input["kind"]
    workers = max(1, int(getattr(bridge, "concurrency", 1)))
    with reporter.stage("bridge", total=len(todo)) as advance:
        uncaptioned = [s for s in plan.scenes if not s.caption]
        for scene, answer in _each(uncaptioned, lambda s: bridge.scene_caption(s.frame_captions, user_prompt), workers):
            scene.caption, scene.caption_source = answer.text, answer.source
            _record_fallback(scene, "caption", answer, reporter)
        for scene in todo:
            if not scene.caption:
                raise PlanError(f"scene {scene.number} has neither a caption nor a prompt: give it a prompt in the plan")
        if not plan.video_summary:
            if len(plan.scenes) == 1:  # one scene (an image, a single shot): its caption says it all
                only = plan.scenes[0]
                answer = Answer(only.caption or "", only.caption_source or bridge.name)
            else:
                answer = bridge.video_summary([s.caption or "" for s in plan.scenes])
            plan.video_summary, plan.video_summary_source = answer.text, answer.source
            plan.video_summary_fallback_reason = answer.reason
            if answer.reason:
                reporter.note(f"video summary: {answer.reason}; used the offline bridge")

        presets = load_presets(plan.settings.presets_dir) if plan.settings.preset or any(s.preset for s in todo) else {}

        cacheable = cache is not None and bridge.name in ("anthropic", "local")  # offline is instant anyway

        def prompt(scene: Scene) -> Answer:
            name = scene.preset or plan.settings.preset
            preset = get_preset(name, presets) if name else None
            style = preset.terms() if preset else None
            k = key("prompt", bridge.name, plan.settings.llm_model, scene.caption, plan.video_summary, user_prompt, style, kind)
            cached = cache.get_json("prompt", k) if cacheable else None
            if cached:
                return Answer(**cached)
            answer = bridge.music_prompt(scene.caption, summary=plan.video_summary, user_prompt=user_prompt, kind=kind, style=style)
            if preset:
                answer = replace(answer, text=ensure_style(answer.text, preset))
            if cacheable and not answer.reason:  # a fallback is not worth keeping: the next run may do better
                cache.put_json("prompt", k, {"text": answer.text, "source": answer.source})
            return answer

        for scene, answer in _each(todo, prompt, workers):
            scene.prompt, scene.prompt_source = answer.text, answer.source
            _record_fallback(scene, "prompt", answer, reporter)
            advance(1)


T = TypeVar("T")
R = TypeVar("R")


def _each(items: list[T], work: Callable[[T], R], workers: int) -> Iterator[tuple[T, R]]:
    """`(item, work(item))` as each finishes: the first alone, the rest `workers` at a time.

    An exception (e.g. a rejected key) cancels the calls not yet started and propagates.
    """
    if not items:
        return
    yield items[0], work(items[0])
    if workers <= 1 or len(items) == 2:
        for item in items[1:]:
            yield item, work(item)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scoretool-bridge")
    try:
        futures = {pool.submit(work, item): item for item in items[1:]}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _record_fallback(scene: Scene, step: str, answer: Answer, reporter: Reporter) -> None:
    """Keep one line per scene saying which bridge steps fell back and why ("caption: ... | prompt: ...")."""
    parts = [p for p in (scene.fallback_reason or "").split(" | ") if p and not p.startswith(f"{step}: ")]
    if answer.reason:
        parts.append(f"{step}: {answer.reason}")
        reporter.note(f"scene {scene.number} {step}: {answer.reason}; used the offline bridge")
    scene.fallback_reason = " | ".join(parts) or None


def render(
    plan_or_path: Plan | str,
    output: str,
    *,
    reporter: Reporter | None = None,
    generator: MusicGenerator | None = None,
    stems: str | None = None,
    cache: Cache | None = None,
) -> Result:
    """Generate each scene's music, mix the soundtrack and write `output` (a video or a .wav).

    With `stems`, that folder also gets the music alone, one WAV per scene, and the plan. With a
    `cache`, a scene whose prompt, seed, length and model are unchanged is not generated again.
    """
    reporter = reporter or Reporter()
    the_plan = plan_or_path if isinstance(plan_or_path, Plan) else Plan.load(plan_or_path)
    settings = the_plan.settings
    info = MediaInfo.from_dict(the_plan.input)
    if not os.path.isfile(info.path):
        raise InputError(f"the plan's input file is missing: {info.path}")
    check_output(info, output)
    if stems:
        os.makedirs(stems, exist_ok=True)
    write_prompts(the_plan, None, reporter, cache=cache)  # loads the plan's bridge only if a scene lacks a prompt
    device = pick_device(settings.device)
    keys = clip_keys(the_plan, device) if cache else []
    rate_key = key("rate", model_identity(settings.music_model))
    cached = [cache.get_array("clip", k) for k in keys] if cache else [None] * len(the_plan.scenes)
    rate = cache.get_json("rate", rate_key) if cache else None
    if generator is None and (rate is None or any(c is None for c in cached)):
        with reporter.stage("load models"):
            generator = load_music_generator(
                settings.music_model, device,
                guidance_scale=settings.guidance_scale, temperature=settings.temperature, top_k=settings.top_k,
            )
    clips = generate_clips(the_plan, generator, reporter, cached)
    if generator is not None:
        rate = generator.sample_rate
    if cache:  # only the clips made now are new; the model's rate lets a fully cached render skip loading it
        cache.put_json("rate", rate_key, rate)
        for k, clip, before in zip(keys, clips, cached):
            if before is None:
                cache.put_array("clip", k, clip)
    write_output(the_plan, clips, rate, output, reporter, stems=stems)
    return Result(output=output, plan=the_plan, timings=dict(reporter.timings), cache=cache.stats() if cache else {})


def clip_keys(the_plan: Plan, device: str) -> list[str]:
    """What makes a scene's clip what it is: model, device, sampling settings, prompt, seed, length."""
    s = the_plan.settings
    spans = clip_spans([(sc.start, sc.end) for sc in the_plan.scenes], s.crossfade)
    model = model_identity(s.music_model)
    keys, previous = [], None
    for sc, (start, end) in zip(the_plan.scenes, spans):
        k = key("clip", model, device, s.guidance_scale, s.temperature, s.top_k, sc.prompt, sc.seed, round(end - start, 6))
        if s.transition == "continue":  # a continued clip also depends on everything before it
            k = key(k, previous, round(start, 6))
        keys.append(k)
        previous = k
    return keys


def generate_clips(the_plan: Plan, generator: MusicGenerator | None, reporter: Reporter, cached: list | None = None) -> list:
    """One clip per scene, each covering its scene plus its share of the transitions. Scenes with a
    clip in `cached` are taken from there; the rest are generated together."""
    spans = clip_spans([(s.start, s.end) for s in the_plan.scenes], the_plan.settings.crossfade)
    durations = [end - start for start, end in spans]
    clips = list(cached) if cached else [None] * len(durations)
    todo = [i for i, c in enumerate(clips) if c is None]
    steps = generator.steps([durations[i] for i in todo]) if todo and hasattr(generator, "steps") else None
    with reporter.stage("music", total=steps) as advance:
        if todo and the_plan.settings.transition == "continue":
            _continue_clips(the_plan, generator, clips, spans, advance)
        elif todo:
            made = generator.generate(
                [the_plan.scenes[i].prompt for i in todo], [durations[i] for i in todo],
                [the_plan.scenes[i].seed for i in todo], on_step=advance,
            )
            for i, clip in zip(todo, made):
                clips[i] = clip
    return clips


def _continue_clips(the_plan: Plan, generator: MusicGenerator, clips: list, spans, advance) -> None:
    """`--transition continue`: each scene's music carries on from the previous scene's, heard up
    to where their crossfade begins, with the new scene's prompt. One scene after another."""
    scenes = the_plan.scenes
    for i, scene in enumerate(scenes):
        if clips[i] is not None:
            continue
        start, end = spans[i]
        if i == 0:
            (clips[0],) = generator.generate([scene.prompt], [end - start], [scene.seed], on_step=advance)
            continue
        previous = clips[i - 1][: round((start - spans[i - 1][0]) * generator.sample_rate)]
        joined = generator.continue_from(scene.prompt, previous, end - start, scene.seed, on_step=advance)
        clips[i] = joined[len(previous) :]


def write_output(the_plan: Plan, clips: list, rate: int, output: str, reporter: Reporter, stems: str | None = None) -> None:
    """Mix the clips into the soundtrack and write it: a WAV of the music, or the video with it."""
    settings = the_plan.settings
    info = MediaInfo.from_dict(the_plan.input)
    bounds = [(s.start, s.end) for s in the_plan.scenes]
    with reporter.stage("mix"):
        transitions = plan_transitions(clips, bounds, rate, settings.transition, settings.crossfade)
        music = assemble(clips, bounds, rate, settings.crossfade, settings.fade_in, settings.fade_out, transitions)
        music = normalize_loudness(music, rate, settings.loudness)
        if stems:
            write_stems(stems, the_plan, clips, music, rate)
        if os.path.splitext(output)[1].lower() in mux.OUTPUT_KINDS["audio"]:
            write_wav(output, music, rate)
            return
        mode = original_audio_mode(settings.original_audio, info)
        original = None
        if mode != "replace":
            original = read_original(info.path, info.start_time, the_plan.duration)
            original = normalize_loudness(original, OUTPUT_RATE, settings.loudness)
        soundtrack = combine(music, rate, original, mode, settings.music_level, settings.duck_depth)
        soundtrack = normalize_loudness(soundtrack, OUTPUT_RATE, settings.loudness)
    with reporter.stage("mux"), tempfile.TemporaryDirectory(prefix="scoretool-") as tmp:
        wav = os.path.join(tmp, "soundtrack.wav")
        write_wav(wav, soundtrack, OUTPUT_RATE)
        encoded = [soundtrack]  # what the last encode was given

        def relimit(over_db: float) -> str:
            """The encoded sound peaked `over_db` over the limit: the same loudness, limited that much
            (and a little) under what was encoded."""
            ceiling = true_peak_db(encoded[0], OUTPUT_RATE) - over_db - 0.2
            encoded[0] = normalize_loudness(soundtrack, OUTPUT_RATE, settings.loudness, ceiling)
            quieter = os.path.join(tmp, f"soundtrack{ceiling:.2f}.wav")
            write_wav(quieter, encoded[0], OUTPUT_RATE)
            return quieter

        if info.kind == "image":
            mux.still_video(info.path, wav, output, the_plan.duration, relimit)
        else:
            mux.mux_video(info, wav, output, relimit)


def original_audio_mode(requested: str, info: MediaInfo) -> str:
    """`auto` ducks the music under the input's own sound when it has one, else replaces."""
    if requested == "auto":
        return "duck" if info.has_audio else "replace"
    if requested != "replace" and not info.has_audio:
        return "replace"  # nothing to mix with
    return requested


def write_stems(folder: str, the_plan: Plan, clips: list, music, rate: int) -> None:
    """For an editor's own timeline: the whole music track, each scene's clip, and the plan."""
    write_wav(os.path.join(folder, "music.wav"), music, rate)
    for scene, clip in zip(the_plan.scenes, clips):
        write_wav(os.path.join(folder, f"scene_{scene.number:02d}.wav"), clip, rate)
    the_plan.save(os.path.join(folder, "plan.json"))


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
    stems: str | None = None,
    reporter: Reporter | None = None,
    overrides: overrides_mod.Overrides | None = None,
    cache: Cache | None = None,
) -> Result:
    """`plan` then `render`; with `save_plan`, the plan is kept for editing and re-rendering."""
    reporter = reporter or Reporter()
    check_output(probe(input_path), output)  # fail fast, before minutes of captioning
    if save_plan:
        check_plan_path(input_path, save_plan)
    the_plan = plan(input_path, settings, reporter=reporter, overrides=overrides, cache=cache)
    if save_plan:
        the_plan.save(save_plan)
    return render(the_plan, output, reporter=reporter, stems=stems, cache=cache)


"""Prompts: the bridge turns each scene's frame captions into a scene caption, the scene captions
into one line about the whole video, and each scene into a music prompt. A person's edits stay:
only scenes without a prompt are bridged.

Every scene gets a prompt. One with no caption (its frames' captions came back empty) borrows a
stand-in: the caption of the nearest scene that has one, else the nearest scene's prompt as it
is, else the video summary, else a neutral brief (to which a preset still adds its style). Its
`prompt_source` then says which ("neighbour", "summary", "default") and its `fallback_reason`
why ("caption: ...").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import TypeVar

from .. import interrupts
from ..bridge import Answer, Bridge, load_bridge, resolve_bridge
from ..cache import Cache, key
from ..plans import Plan, Scene, Settings
from ..presets import Presets, ensure_style, get_preset, load_presets
from ..progress import Reporter

T = TypeVar("T")
R = TypeVar("R")

# What the bridge is given for a scene that nothing else describes: it finds no setting, mood or
# motion in it and writes its most neutral music.
NEUTRAL_CAPTION = "a still, quiet scene"


@dataclass(frozen=True)
class Brief:
    """What one scene's prompt is written from: its own caption, or a stand-in for a missing one."""

    caption: str | None  # what the bridge is given; None: `prompt` is taken as it is
    source: str | None = None  # the prompt_source of a stand-in: "neighbour", "summary" or "default"
    reason: str | None = None  # why, for the scene's fallback_reason
    prompt: str | None = None  # a neighbour's prompt, taken as it is


def open_bridge(settings: Settings, reporter: Reporter) -> tuple[Bridge, Settings]:
    """Load the settings' bridge (`auto` resolved, the LLM's key and model checked) and say which it is.

    Returns the bridge and the settings with the choice filled in (bridge name, LLM model id), as the
    plan records them.
    """
    name, why = resolve_bridge(settings.bridge)
    with reporter.stage("load models"):
        bridge = load_bridge(name, llm_model=settings.llm_model, device=settings.device)
        bridge.preflight()
    reporter.note(f"bridge: {name}" + (f", model {bridge.model}" if bridge.model else "") + f" ({why})")
    return bridge, replace(settings, bridge=name, llm_model=bridge.model)


def write_prompts(plan: Plan, bridge: Bridge | None = None, reporter: Reporter | None = None, cache: Cache | None = None) -> None:
    """Fill in each scene's caption and prompt where the plan has none yet (a person's edits stay).

    A scene that already has a prompt is never sent to the bridge again, and no bridge is even
    loaded when every scene has one. Scenes are bridged concurrently (up to the bridge's
    `concurrency`), the first one alone so that a bad key costs one request, not one per scene.
    Captions first, then the whole-video summary from all of them, then the prompts. Every scene
    gets one: a scene without a caption gets a stand-in for it (`brief_for`), and the plan says so.
    """
    todo = [s for s in plan.scenes if not _text(s.prompt)]  # a prompt of blanks is an emptied one
    if not todo:
        return
    reporter = reporter or Reporter()
    if bridge is None:
        bridge, plan.settings = open_bridge(plan.settings, reporter)
    with reporter.stage("bridge", total=len(todo)) as advance:
        _caption_scenes(plan, bridge, reporter)
        _summarise(plan, bridge, reporter)
        briefs = {s.number: brief_for(plan, s) for s in todo}  # before any is written: the same whatever the order
        prompt = _prompter(plan, bridge, cache, needs_presets=any(s.preset for s in todo))
        for scene, answer in _each(todo, lambda s: prompt(s, briefs[s.number]), bridge.concurrency):
            brief = briefs[scene.number]
            scene.prompt, scene.prompt_source = answer.text, brief.source or answer.source
            if brief.reason:
                _set_reason(scene, "caption", brief.reason)
                reporter.note(f"scene {scene.number}: {brief.reason}")
            _record_fallback(scene, "prompt", answer, reporter)
            advance(1)


def brief_for(plan: Plan, scene: Scene) -> Brief:
    """The scene's caption, or the stand-in for it (see the module's doc)."""
    if _text(scene.caption):
        return Brief(scene.caption)
    blank = not any(_text(c) for c in scene.frame_captions)
    why = "no caption" + (" (the captioner returned empty text for its frames)" if blank else "")
    near = sorted((s for s in plan.scenes if s is not scene), key=lambda s: (abs(s.number - scene.number), s.number))
    if other := next((s for s in near if _text(s.caption)), None):
        return Brief(other.caption, "neighbour", f"{why}; prompt from scene {other.number}'s caption")
    if other := next((s for s in near if _text(s.prompt)), None):
        return Brief(None, "neighbour", f"{why}; prompt copied from scene {other.number}", prompt=other.prompt)
    if _text(plan.video_summary):
        return Brief(plan.video_summary, "summary", f"{why}; prompt from the video summary")
    preset = scene.preset or plan.settings.preset
    style = f" in the style of preset {preset}" if preset else ""
    return Brief(NEUTRAL_CAPTION, "default", f"{why}, nor has any other scene; prompt from a neutral brief{style}")


def _text(value: str | None) -> bool:
    return bool(value and value.strip())


def _caption_scenes(plan: Plan, bridge: Bridge, reporter: Reporter) -> None:
    user_prompt = plan.settings.prompt
    uncaptioned = [s for s in plan.scenes if not s.caption]
    for scene, answer in _each(uncaptioned, lambda s: bridge.scene_caption(s.frame_captions, user_prompt), bridge.concurrency):
        scene.caption, scene.caption_source = answer.text, answer.source
        _record_fallback(scene, "caption", answer, reporter)


def _summarise(plan: Plan, bridge: Bridge, reporter: Reporter) -> None:
    if plan.video_summary or not any(_text(s.caption) for s in plan.scenes):
        return  # written already, or nothing to summarise (an LLM would make a video up)
    if len(plan.scenes) == 1:  # one scene (an image, a single shot): its caption says it all
        only = plan.scenes[0]
        answer = Answer(only.caption or "", only.caption_source or bridge.name)
    else:
        answer = bridge.video_summary([s.caption or "" for s in plan.scenes])
    plan.video_summary, plan.video_summary_source = answer.text, answer.source
    plan.video_summary_fallback_reason = answer.reason
    if answer.reason:
        reporter.note(f"video summary: {answer.reason}; used the offline bridge")


def _prompter(plan: Plan, bridge: Bridge, cache: Cache | None, needs_presets: bool) -> Callable[[Scene, Brief], Answer]:
    """The function that writes one scene's prompt from its brief: its preset's style, the cache for LLM answers."""
    settings, kind = plan.settings, plan.input.kind
    presets = load_presets(settings.presets_dir) if settings.preset or needs_presets else Presets()
    cacheable = cache is not None and bridge.cacheable

    def prompt(scene: Scene, brief: Brief) -> Answer:
        if brief.caption is None:  # a neighbour's prompt, as it is
            return Answer(brief.prompt or "", "neighbour")
        name = scene.preset or settings.preset
        preset = get_preset(name, presets) if name else None
        style = preset.terms() if preset else None
        k = key("prompt", bridge.name, settings.llm_model, brief.caption, plan.video_summary, settings.prompt, style, kind)
        cached = cache.get_json("prompt", k) if cacheable else None
        if cached:
            return Answer(**cached)
        answer = bridge.music_prompt(brief.caption, summary=plan.video_summary, user_prompt=settings.prompt, kind=kind, style=style)
        if preset:
            answer = replace(answer, text=ensure_style(answer.text, preset))
        if cacheable and not answer.reason:  # a fallback is not worth keeping: the next run may do better
            cache.put_json("prompt", k, {"text": answer.text, "source": answer.source})
        return answer

    return prompt


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
    finally:  # on Ctrl-C/SIGTERM, calls in flight are not waited for: the process is on its way out
        pool.shutdown(wait=not interrupts.requested(), cancel_futures=True)


def _record_fallback(scene: Scene, step: str, answer: Answer, reporter: Reporter) -> None:
    """Keep one line per scene saying which bridge steps fell back and why ("caption: ... | prompt: ...")."""
    _set_reason(scene, step, answer.reason)
    if answer.reason:
        reporter.note(f"scene {scene.number} {step}: {answer.reason}; used the offline bridge")


def _set_reason(scene: Scene, step: str, reason: str | None) -> None:
    """Put (or, with None, clear) `step`'s part of the scene's fallback_reason."""
    parts = [p for p in (scene.fallback_reason or "").split(" | ") if p and not p.startswith(f"{step}: ")]
    scene.fallback_reason = " | ".join(parts + ([f"{step}: {reason}"] if reason else [])) or None

"""Music: one clip per scene, covering its scene plus its share of the crossfades, from the cache
where the same model (in the same precision) made it before with the same sampling, prompt, seed
and length, else from the generator, loaded only when a clip is missing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..audio.assemble import clip_spans
from ..cache import Cache, key
from ..music import MusicGenerator
from ..plans import Plan
from ..progress import Reporter
from ..specs import ModelSpec

GeneratorFactory = Callable[[ModelSpec], MusicGenerator]


def make_clips(
    plan: Plan, spec: ModelSpec, generators: GeneratorFactory, cache: Cache | None, reporter: Reporter
) -> tuple[list[np.ndarray], int, ModelSpec]:
    """The clips, their sample rate and the spec that made the new ones (a precision that could
    not run falls back: its clips are keyed by what ran)."""
    keys, cached, rate = _cached(plan, spec, cache)
    generator = None
    if rate is None or any(c is None for c in cached):
        with reporter.stage("load models"):
            generator = generators(spec)
        if generator.spec != spec:
            spec = generator.spec
            keys, cached, _ = _cached(plan, spec, cache)
        rate = generator.sample_rate
    clips = generate_clips(plan, generator, reporter, cached)
    if cache:  # only the clips made now are new; the rate lets a fully cached render skip loading
        cache.put_json("rate", key("rate", spec.identity()), rate)
        for k, clip, before in zip(keys, clips, cached):
            if before is None:
                cache.put_array("clip", k, clip)
    return clips, rate, spec


def _cached(plan: Plan, spec: ModelSpec, cache: Cache | None):
    if cache is None:
        return [], [None] * len(plan.scenes), None
    keys = clip_keys(plan, spec)
    return keys, [cache.get_array("clip", k) for k in keys], cache.get_json("rate", key("rate", spec.identity()))


def clip_keys(plan: Plan, spec: ModelSpec) -> list[str]:
    """What makes a scene's clip what it is: the model as it runs, the sampling, prompt, seed, length."""
    settings = plan.settings
    spans = clip_spans([(sc.start, sc.end) for sc in plan.scenes], settings.crossfade)
    sampling = settings.sampling()
    keys, previous = [], None
    for sc, (start, end) in zip(plan.scenes, spans):
        k = key("clip", spec.identity(), sampling, sc.prompt, sc.seed, round(end - start, 6))
        if settings.transition == "continue":  # a continued clip also depends on everything before it
            k = key(k, previous, round(start, 6))
        keys.append(k)
        previous = k
    return keys


def generate_clips(plan: Plan, generator: MusicGenerator | None, reporter: Reporter, cached: list) -> list:
    """One clip per scene: those in `cached` as they are, the rest generated together."""
    spans = clip_spans([(s.start, s.end) for s in plan.scenes], plan.settings.crossfade)
    durations = [end - start for start, end in spans]
    clips = list(cached)
    todo = [i for i, c in enumerate(clips) if c is None]
    sampling = plan.settings.sampling()
    steps = generator.steps([durations[i] for i in todo]) if todo else None
    with reporter.stage("music", total=steps) as advance:
        if todo and plan.settings.transition == "continue":
            _continue_clips(plan, generator, clips, spans, advance)
        elif todo:
            made = generator.generate(
                [plan.scenes[i].prompt for i in todo], [durations[i] for i in todo],
                [plan.scenes[i].seed for i in todo], sampling, on_step=advance,
            )  # fmt: skip
            for i, clip in zip(todo, made):
                clips[i] = clip
    return clips


def _continue_clips(plan: Plan, generator: MusicGenerator, clips: list, spans, advance) -> None:
    """`--transition continue`: each scene's music carries on from the previous scene's, heard up
    to where their crossfade begins, with the new scene's prompt. One scene after another."""
    sampling = plan.settings.sampling()
    for i, scene in enumerate(plan.scenes):
        if clips[i] is not None:
            continue
        start, end = spans[i]
        if i == 0:
            (clips[0],) = generator.generate([scene.prompt], [end - start], [scene.seed], sampling, on_step=advance)
            continue
        previous = clips[i - 1][: round((start - spans[i - 1][0]) * generator.sample_rate)]
        joined = generator.continue_from(scene.prompt, previous, end - start, scene.seed, sampling, on_step=advance)
        clips[i] = joined[len(previous) :]

"""Music: one clip per scene, covering its scene plus its share of the crossfades, from the cache
where the same model (in the same precision) made it before with the same sampling, prompt, seed
and length, else from the generator, loaded only when a clip is missing. Clips are kept on disk
(`audio.clips.ClipStore`) as they are made."""

from __future__ import annotations

from collections.abc import Callable

from ..audio.assemble import clip_spans
from ..audio.clips import ClipStore
from ..cache import Cache, key
from ..music import MusicGenerator
from ..plans import Plan
from ..progress import Reporter
from ..specs import ModelSpec

GeneratorFactory = Callable[[ModelSpec], MusicGenerator]


# Scenes generated per call: the generator batches at most this many at once anyway, and each call's
# clips go to disk before the next, so a long video's music is never all in memory.
SCENES_PER_CALL = 8


def make_clips(
    plan: Plan, spec: ModelSpec, generators: GeneratorFactory, cache: Cache | None, reporter: Reporter
) -> tuple[ClipStore, int, ModelSpec]:
    """The clips (on disk, read back one at a time), their sample rate and the spec that made the
    new ones (a precision that could not run falls back: its clips are keyed by what ran)."""
    clips = ClipStore(len(plan.scenes))
    keys, rate = _cached(plan, spec, cache, clips)
    generator = None
    if rate is None or not all(clips.made(i) for i in range(len(clips))):
        with reporter.stage("load models"):
            generator = generators(spec)
        if generator.spec != spec:
            spec = generator.spec
            clips = ClipStore(len(plan.scenes))
            keys, _ = _cached(plan, spec, cache, clips)
        rate = generator.sample_rate
    before = [clips.made(i) for i in range(len(clips))]
    generate_clips(plan, generator, reporter, clips)
    if cache:  # only the clips made now are new; the rate lets a fully cached render skip loading
        cache.put_json("rate", key("rate", spec.identity()), rate)
        for i, k in enumerate(keys):
            if not before[i]:
                cache.put_array("clip", k, clips[i])
    return clips, rate, spec


def _cached(plan: Plan, spec: ModelSpec, cache: Cache | None, clips: ClipStore):
    """The clips' keys and the model's rate; the cached clips go into `clips`, one at a time."""
    if cache is None:
        return [], None
    keys = clip_keys(plan, spec)
    for i, k in enumerate(keys):
        clip = cache.get_array("clip", k)
        if clip is not None:
            clips[i] = clip
    return keys, cache.get_json("rate", key("rate", spec.identity()))


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


def generate_clips(plan: Plan, generator: MusicGenerator | None, reporter: Reporter, clips: ClipStore) -> ClipStore:
    """One clip per scene: those already in `clips` as they are, the rest generated, longest first,
    SCENES_PER_CALL at a time, each call's clips stored before the next call."""
    spans = clip_spans([(s.start, s.end) for s in plan.scenes], plan.settings.crossfade)
    durations = [end - start for start, end in spans]
    todo = sorted((i for i in range(len(clips)) if not clips.made(i)), key=lambda i: -durations[i])
    sampling = plan.settings.sampling()
    continued = plan.settings.transition == "continue"
    calls = [todo] if continued else [todo[k : k + SCENES_PER_CALL] for k in range(0, len(todo), SCENES_PER_CALL)]
    per_call = [generator.steps([durations[i] for i in call]) for call in calls if call]
    steps = sum(per_call) if per_call and None not in per_call else None  # None: unknown (batch's shared model)
    with reporter.stage("music", total=steps) as advance:
        if todo and continued:
            _continue_clips(plan, generator, clips, spans, advance)
            return clips
        for call in calls:
            made = generator.generate(
                [plan.scenes[i].prompt for i in call], [durations[i] for i in call],
                [plan.scenes[i].seed for i in call], sampling, on_step=advance,
            )  # fmt: skip
            for i, clip in zip(call, made):
                clips[i] = clip
    return clips


def _continue_clips(plan: Plan, generator: MusicGenerator, clips: ClipStore, spans, advance) -> None:
    """`--transition continue`: each scene's music carries on from the previous scene's, heard up
    to where their crossfade begins, with the new scene's prompt. One scene after another."""
    sampling = plan.settings.sampling()
    for i, scene in enumerate(plan.scenes):
        if clips.made(i):
            continue
        start, end = spans[i]
        if i == 0:
            (clips[0],) = generator.generate([scene.prompt], [end - start], [scene.seed], sampling, on_step=advance)
            continue
        previous = clips[i - 1][: round((start - spans[i - 1][0]) * generator.sample_rate)]
        joined = generator.continue_from(scene.prompt, previous, end - start, scene.seed, sampling, on_step=advance)
        clips[i] = joined[len(previous) :]

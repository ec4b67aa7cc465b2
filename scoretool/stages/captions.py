"""Captions: one short caption per frame, from the cache where the same pixels were captioned
by the same model (in the same precision) before, else from the captioner, loaded only when a
frame needs it."""

from __future__ import annotations

from collections.abc import Callable

from ..cache import Cache, key
from ..caption import Captioner
from ..progress import Reporter
from ..specs import ModelSpec

CaptionerFactory = Callable[[ModelSpec], Captioner]


def caption_frames(
    images: list, spec: ModelSpec, captioners: CaptionerFactory, cache: Cache | None, reporter: Reporter
) -> tuple[list[str], ModelSpec]:
    """Every frame's caption, in order, and the spec that made them (a precision that could not
    run falls back: the captions are then keyed by what ran). New captions go to the cache."""
    keys, captions = _cached(images, spec, cache)
    captioner = None
    if None in captions:
        with reporter.stage("load models"):
            captioner = captioners(spec)
        if captioner.spec != spec:
            spec = captioner.spec
            keys, captions = _cached(images, spec, cache)
    missing = [i for i, c in enumerate(captions) if c is None]
    with reporter.stage("captions", total=len(images)) as advance:
        advance(len(images) - len(missing))
        for b in range(0, len(missing), captioner.batch_size if captioner else 1):
            batch = missing[b : b + captioner.batch_size]
            for i, text in zip(batch, captioner.caption([images[i] for i in batch])):
                captions[i] = text
                if cache:
                    cache.put_json("caption", keys[i], text)
            advance(len(batch))
    return captions, spec


def _cached(images: list, spec: ModelSpec, cache: Cache | None) -> tuple[list[str], list[str | None]]:
    """Each frame's cache key (its pixels and the model) and its caption where one is cached."""
    if cache is None:
        return [], [None] * len(images)
    keys = [key("caption", spec.identity(), image.tobytes(), image.size) for image in images]
    return keys, [cache.get_json("caption", k) for k in keys]

"""One clip of a batch: `api.plan` + `api.render` with the engine's shared models, bridge and
cache injected (exactly the pipeline `scoretool score` runs), rendered to a hidden partial file
and renamed into place."""

from __future__ import annotations

import contextlib
import os
import time
import uuid

from .. import api
from .. import overrides as overrides_mod
from ..files import fsync_dir
from ..media.probe import probe
from ..plans import Settings
from ..progress import Reporter
from .clips import Clip, prepare_output
from .engine import Engine
from .events import ClipDone, ClipResult, failure
from .manifest import PARTIAL_PREFIX, file_sha256
from .server import Aborted


def score_clip(clip: Clip, settings: Settings, engine: Engine, reporter: Reporter) -> ClipDone:
    """Score one clip into its final path. The caller holds a CPU slot; raises on any failure."""
    started = time.perf_counter()
    out = prepare_output(clip)
    with reporter.stage("probe"):
        info = probe(clip.src)
    api.check_output(info, out)  # a codec the container can't take fails now, before any model work
    overrides = overrides_mod.gather(clip.src)  # the clip's sidecar, checked against its scenes in plan()
    bridge, settings = engine.bridge(settings, reporter)
    the_plan = api.plan(clip.src, settings, reporter=reporter, captioners=engine.captioner, bridge=bridge,
                        overrides=overrides, cache=engine.cache)
    partial = os.path.join(os.path.dirname(out), PARTIAL_PREFIX + uuid.uuid4().hex[:12] + os.path.splitext(out)[1])
    try:
        api.render(the_plan, partial, reporter=reporter, generators=engine.generator, cache=engine.cache)
        with reporter.stage("finish"):
            digest, size = _publish(partial, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return ClipDone(
        sha256=digest, size=size, scenes=len(the_plan.scenes), duration=round(the_plan.duration, 3),
        seconds=round(time.perf_counter() - started, 3), timings={k: round(v, 3) for k, v in reporter.timings.items()},
    )


def _publish(partial: str, out: str) -> tuple[str, int]:
    """Make the rendered file durable, then rename it to its final name: a name that exists is
    always a whole output. Returns its SHA-256 and size."""
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    digest, size = file_sha256(partial), os.path.getsize(partial)
    os.replace(partial, out)
    fsync_dir(os.path.dirname(out))
    return digest, size


def run_clip(clip: Clip, settings: Settings, engine: Engine, reporter: Reporter) -> ClipResult:
    """`score_clip` in a CPU slot, with every failure turned into a `ClipFailed` (Aborted propagates)."""
    started = time.perf_counter()
    engine.slots.acquire()
    try:
        return score_clip(clip, settings, engine, reporter)
    except Aborted:
        raise
    except Exception as exc:  # noqa: BLE001 - fault isolation: the batch goes on
        return failure(exc, time.perf_counter() - started)
    finally:
        engine.slots.release()

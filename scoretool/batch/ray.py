"""`scoretool batch --ray`: the same batch, its clips run by Ray actors on a cluster.

One long-lived actor per GPU (or, without GPUs, one per node) holds the models and runs an
`Engine`, the same one a local batch uses: its clips share the models, their captions and music
are gathered together, and `--jobs` bounds its CPU work. The driver (the `scoretool batch` process)
finds the clips, keeps the manifest and hands each actor up to a window of clips at a time, so the
manifest, the outputs and the resume semantics are those of a local batch.

Actors read the inputs and write the outputs themselves, by the paths the driver gives them (made
absolute): every node must see IN_DIR and OUT_DIR at the same paths (one machine, or a shared
file system). Ray is an optional extra (`pip install 'scoretool[ray]'`), imported only here, when
a batch runs with `--ray`.
"""

from __future__ import annotations

import os
from collections import deque

from ..cache import Cache
from ..errors import ScoreToolError
from ..files import first_line
from ..plans import Settings
from ..progress import Reporter
from .clips import BatchError, Clip
from .display import BatchDisplay
from .engine import Engine
from .events import ClipFailed, ClipFinished, ClipResult, ClipStarted, Emit, failure
from .scoring import run_clip
from .server import Aborted

# Environment the actors need to behave like this process (offline hub, cache location...).
_FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")


class ClipActor:
    """Holds the models for the whole batch and scores the clips sent to it, several at a time."""

    def __init__(self, jobs: int, music_batch: int, cache: tuple[str | None, bool] = (None, True)):
        self.engine = Engine(jobs, music_batch=music_batch, cache=Cache(cache[0], enabled=cache[1]))

    def preload(self, settings: Settings) -> str:
        import socket

        self.engine.preload(settings)
        return socket.gethostname()

    def score(self, clip: Clip, settings: Settings) -> ClipResult:
        try:
            return run_clip(clip, settings, self.engine, Reporter())
        except Aborted as exc:
            return failure(exc)

    def calls(self) -> list[tuple[str, int, int]]:
        return list(self.engine.server.calls)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs Ray, an optional extra: pip install 'scoretool[ray]'") from None
    return ray


def _cause(ray, exc: BaseException) -> BaseException:
    """The actor's own exception inside Ray's wrapper."""
    return exc.cause if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None else exc


class RayExecutor:
    def __init__(self, address: str, jobs: int, *, music_batch: int = 8, cache: tuple[str | None, bool] = (None, True)):
        self.address = address or "auto"
        self.jobs = jobs
        self.music_batch = music_batch
        self.cache = cache  # (folder or None for each node's default, enabled)
        self.calls: list[tuple[str, int, int]] = []

    @property
    def window(self) -> int:
        """Clips in flight per actor (as `Engine.window`)."""
        return self.jobs + max(2, self.music_batch)

    def run(self, todo: list[Clip], settings: Settings, emit: Emit, display: BatchDisplay) -> None:
        ray = _import_ray()
        self._connect(ray)
        actors = []
        try:
            actors = self._actors(ray, len(todo))
            display.model_status(f"loading on {len(actors)} Ray actor(s)")
            hosts = self._preload(ray, actors, settings)
            display.model_status(f"{len(actors)} Ray actor(s) on {', '.join(sorted(set(hosts)))}")
            self._dispatch(ray, actors, [clip.absolute() for clip in todo], settings, emit)
            self.calls = [c for calls in ray.get([a.calls.remote() for a in actors]) for c in calls]
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            ray.shutdown()

    def _connect(self, ray) -> None:
        import logging

        env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
        options = dict(log_to_driver=False, logging_level=logging.WARNING, runtime_env={"env_vars": env} if env else None)
        try:
            if self.address == "local":
                ray.init(address="local", include_dashboard=False, **options)
            else:
                ray.init(address=self.address, **options)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            raise BatchError(
                f"cannot connect to a Ray cluster at '{self.address}' ({first_line(exc)}): start one with `ray start --head`, "
                f"pass its address (--ray HOST:PORT), or use --ray local"
            ) from None

    def _actors(self, ray, count: int) -> list:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(ClipActor)
        common = dict(max_concurrency=self.window + 2, max_restarts=1, max_task_retries=1)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus:
            placements = [dict(num_gpus=1, num_cpus=1)] * min(gpus, count)
        else:
            nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
            if not nodes:
                raise BatchError("the Ray cluster has no node with a free CPU to run scoretool on")
            placements = [dict(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                          for n in nodes[:count]]
        return [remote.options(**common, **p).remote(self.jobs, self.music_batch, self.cache) for p in placements]

    def _preload(self, ray, actors: list, settings: Settings) -> list[str]:
        """Load the models on every actor; a missing model or a bad key is one line, as locally."""
        try:
            return ray.get([a.preload.remote(settings) for a in actors])
        except Exception as exc:  # noqa: BLE001
            cause = _cause(ray, exc)
            if isinstance(cause, ScoreToolError):
                raise cause from None
            raise BatchError(f"the Ray actors could not start: {failure(cause).error}") from None

    def _dispatch(self, ray, actors: list, todo: list[Clip], settings: Settings, emit: Emit) -> None:
        waiting = deque(todo)
        in_flight: dict = {}  # ObjectRef -> (clip, actor index)
        load = [0] * len(actors)
        while waiting or in_flight:
            while waiting:
                i = min(range(len(actors)), key=load.__getitem__)
                if load[i] >= self.window:
                    break
                clip = waiting.popleft()
                in_flight[actors[i].score.remote(clip, settings)] = (clip, i)
                load[i] += 1
                emit(ClipStarted(clip))
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                clip, i = in_flight.pop(ref)
                load[i] -= 1
                emit(ClipFinished(clip, self._result(ray, ref)))

    @staticmethod
    def _result(ray, ref) -> ClipResult:
        try:
            return ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the actor died (twice) or Ray failed the task
            failed = failure(_cause(ray, exc))
            if isinstance(exc, ray.exceptions.RayActorError):
                return ClipFailed(f"the Ray worker scoring it died: {failed.error}", failed.detail, failed.seconds)
            return failed

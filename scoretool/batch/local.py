"""A batch in this process: worker threads do the clips' CPU stages, `jobs` at a time, while the
calling thread runs the models (see `ModelServer`), and a recorder thread hands each event to the
bookkeeping as it happens (so a "done" is recorded at once, even in the middle of a model call)."""

from __future__ import annotations

import queue
import threading

from ..cache import Cache
from ..plans import Settings
from .clips import Clip
from .display import BatchDisplay, ClipReporter
from .engine import Engine
from .events import ClipAborted, ClipEvent, ClipFailed, ClipFinished, ClipStarted, Emit, failure
from .scoring import run_clip
from .server import Aborted, Loader, load_model

WORKER_PREFIX = "scoretool-clip-"


def clips_in_flight() -> bool:
    """Whether worker threads are still busy (after Ctrl-C or a fatal error mid-batch)."""
    return any(t.name.startswith(WORKER_PREFIX) and t.is_alive() for t in threading.enumerate())


class LocalExecutor:
    """Clips in threads of this process: `jobs` at a time on the CPU, one model thread (the caller's)."""

    def __init__(self, jobs: int, *, music_batch: int = 8, linger: float = 0.05, cache: Cache | None = None,
                 loader: Loader = load_model):
        self.jobs, self.music_batch, self.linger, self.cache, self.loader = jobs, music_batch, linger, cache, loader
        self.engine: Engine | None = None

    @property
    def calls(self) -> list[tuple[str, int, int]]:
        return self.engine.server.calls if self.engine else []

    def run(self, todo: list[Clip], settings: Settings, emit: Emit, display: BatchDisplay) -> None:
        """Score `todo`, telling `emit` (from one thread) as each clip starts and ends."""
        engine = self.engine = Engine(self.jobs, music_batch=self.music_batch, linger=self.linger,
                                      status=display.model_status, inline=True, cache=self.cache, loader=self.loader)
        run = _Run(todo, settings, engine, emit, display)
        engine.preload(settings)  # models first: a missing model or key stops the batch before any clip
        run.start(workers=min(len(todo), engine.window))
        try:
            run.serve_models()
        except BaseException as exc:
            run.stopping.set()
            engine.close(Aborted("interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)))
            raise
        finally:
            run.events.put(None)
            run.recorder.join()
            engine.close()
        run.join_workers()  # all done: their clips are recorded


class _Run:
    """The threads of one local batch and what they share."""

    def __init__(self, todo: list[Clip], settings: Settings, engine: Engine, emit: Emit, display: BatchDisplay):
        self.todo, self.settings, self.engine, self.emit, self.display = todo, settings, engine, emit, display
        self.work: queue.SimpleQueue[Clip] = queue.SimpleQueue()
        for clip in todo:
            self.work.put(clip)
        self.events: queue.SimpleQueue[ClipEvent | None] = queue.SimpleQueue()
        self.stopping, self.finished = threading.Event(), threading.Event()
        self.broken: list[BaseException] = []
        self.recorder = threading.Thread(target=self._record, name="scoretool-manifest", daemon=True)
        self.workers: list[threading.Thread] = []

    def start(self, workers: int) -> None:
        self.recorder.start()
        self.workers = [threading.Thread(target=self._work, name=f"{WORKER_PREFIX}{i}", daemon=True) for i in range(workers)]
        for t in self.workers:
            t.start()

    def serve_models(self) -> None:
        """Run model calls on this thread until every clip is recorded; re-raise a recorder failure."""
        while not self.finished.is_set():
            if not self.engine.server.serve(timeout=0.1) and not any(t.is_alive() for t in self.workers):
                self.events.put(None)  # every worker is gone: nothing more will come
                break
        if self.broken:
            raise self.broken[0]

    def join_workers(self) -> None:
        for t in self.workers:
            t.join()

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                clip = self.work.get_nowait()
            except queue.Empty:
                return
            self.events.put(ClipStarted(clip))
            event: ClipEvent = ClipAborted(clip)
            try:
                result = run_clip(clip, self.settings, self.engine, ClipReporter(self.display, clip.rel))
                # A clip that failed while the batch was stopping was cut short by that, not by its own fault.
                if not (self.stopping.is_set() and isinstance(result, ClipFailed)):
                    event = ClipFinished(clip, result)
            except Aborted:
                return
            except BaseException as exc:  # noqa: BLE001 - never leave the batch waiting for this clip
                event = ClipFinished(clip, failure(exc))
            finally:
                self.events.put(event)

    def _record(self) -> None:
        left = len(self.todo)
        try:
            while left:
                event = self.events.get()
                if event is None:
                    return
                left -= not isinstance(event, ClipStarted)
                self.emit(event)
        except BaseException as exc:  # noqa: BLE001 - e.g. the manifest cannot be written: stop the batch
            self.broken.append(exc)
            self.stopping.set()
        finally:
            self.finished.set()

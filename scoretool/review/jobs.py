"""Renders from the page: `scoretool.api.render` in a worker thread, its progress kept for the
page to poll, and exports of what was rendered (stems, an editor's timeline)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time

from .. import api
from ..cache import Cache
from ..errors import OutputError, PlanError, ScoreToolError
from ..files import first_line
from ..music import load_music_generator
from ..progress import Reporter
from ..specs import Loaded
from .session import Session

log = logging.getLogger("scoretool")
MAX_LINES = 200


class Cancelled(BaseException):
    """The session is closing: the render stops at its next step (a BaseException, like Ctrl-C, so
    that nothing on the way takes it for a failure to recover from; temp files go as on Ctrl-C)."""


class Progress(Reporter):
    """A Reporter that keeps the stage, its steps and the notes for the page, and stops a render
    at its next step once the renderer is told to."""

    def __init__(self, renderer: Renderer):
        super().__init__()
        self.renderer = renderer

    def note(self, message: str) -> None:
        self.renderer.update(line=message)

    def _begin(self, name: str, total: int | None):
        self.renderer.update(stage=name, done=0, total=total, line=f"{name}...")

    def _advance(self, handle, n: int) -> None:
        if self.renderer.stopping.is_set():
            raise Cancelled()
        self.renderer.update(advance=n)


class Renderer:
    """One render at a time for a session; the music model stays loaded between renders."""

    def __init__(self, session: Session):
        self.session = session
        self.generators = Loaded(load_music_generator)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status = {"running": False, "stage": None, "done": 0, "total": None, "lines": [], "error": None, "runs": 0}

    def status(self) -> dict:
        with self._lock:
            return {**self._status, "lines": list(self._status["lines"])}

    def update(self, *, stage=None, done=None, total=None, advance=0, line=None) -> None:
        with self._lock:
            s = self._status
            if stage is not None:
                s["stage"], s["done"], s["total"] = stage, done, total
            s["done"] += advance
            if line:
                s["lines"] = (s["lines"] + [line])[-MAX_LINES:]

    def start(self) -> None:
        """Render the plan as it is now; refused while a render runs (`session.Busy`)."""
        the_plan = self.session.begin_render()
        with self._lock:
            self._status.update(running=True, stage=None, done=0, total=None, lines=[], error=None)
        self._thread = threading.Thread(target=self._run, args=(the_plan,), name="scoretool-review-render", daemon=True)
        self._thread.start()

    def _run(self, the_plan) -> None:
        started, result, error = time.perf_counter(), None, None
        try:
            cache = Cache(self.session.cache_dir, enabled=self.session.use_cache)  # fresh counts per render
            result = api.render(the_plan, self.session.output, reporter=Progress(self), generators=self.generators,
                                stems=self.session.stems, cache=cache)  # fmt: skip
        except Cancelled:
            error = "cancelled"
        except ScoreToolError as exc:
            error = str(exc)
        except Exception as exc:  # the page shows one line; the log has the rest
            log.exception("render failed")
            error = f"render failed: {first_line(exc)}"
        try:
            self.session.end_render(result)
        except Exception as exc:
            log.exception("after the render")
            error = error or f"render failed: {first_line(exc)}"
        done = f"rendered {self.session.output} in {time.perf_counter() - started:.1f} s" if not error else None
        with self._lock:
            self._status.update(running=False, error=error, runs=self._status["runs"] + 1)
            self._status["lines"] = (self._status["lines"] + [done or error])[-MAX_LINES:]

    def wait(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop a running render at its next step and wait for it; settle model loads still running."""
        self.stopping.set()
        self.wait(timeout)
        self.generators.settle()


def export(session: Session, kind: str) -> list[str]:
    """Write what was rendered beside the output: `stems` (a folder) or a timeline (.otio .fcpxml
    .xml .edl, its media beside it). Refused unless the plan is the one rendered."""
    state = session.state()
    if not state["up_to_date"]:
        raise PlanError("the plan has changed since the last render: press Render first")
    stem = os.path.splitext(session.output)[0]
    if kind == "stems":
        return [_export_stems(session.stems, f"{stem}_stems")]
    if kind in ("otio", "fcpxml", "xml", "edl"):
        from ..timeline import export_from_cache

        with session.lock:
            the_plan = session.plan
        cache = Cache(session.cache_dir, enabled=session.use_cache)
        return export_from_cache(the_plan, f"{stem}.{kind}", cache=cache)
    raise PlanError(f"cannot export '{str(kind)[:20]}': choose stems, otio, fcpxml, xml or edl")


def _export_stems(source: str, target: str) -> str:
    """A copy of the stems folder, published whole: built beside the target, then renamed into place."""
    if os.path.exists(target) and not os.path.isfile(os.path.join(target, "plan.json")):
        raise PlanError(f"{target} is there and is not a stems folder scoretool wrote: move it away")
    folder = os.path.dirname(target)
    staging = tempfile.mkdtemp(prefix=".stems-", dir=folder)
    old = None
    try:
        shutil.copytree(source, os.path.join(staging, "new"))
        if os.path.exists(target):
            old = os.path.join(staging, "old")
            os.replace(target, old)
        try:
            os.replace(os.path.join(staging, "new"), target)
        except OSError:
            if old:
                os.replace(old, target)  # the previous export stays as it was
            raise
    except OSError as exc:
        raise OutputError(f"Cannot write {target}: {exc.strerror or exc}.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target

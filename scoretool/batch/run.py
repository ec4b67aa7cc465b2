"""`scoretool batch`: score every video (and photo) in a folder, resumably, loading the models once.

    find clips ─► manifest (skip what is done and intact) ─► per clip, in worker threads:
        probe, scenes, frames (CPU) ─► captions* ─► bridge ─► music* ─► mix, mux (CPU) ─► rename ─► "done"
    * run by one model thread that owns the models and gathers the requests of several clips into
      one captioner / one MusicGen call.

At most `jobs` threads do CPU work at once; a clip waiting for the model thread gives its CPU slot to
the next clip, so probing and scene detection of the next clips overlap the model work for the
current ones, and a clip whose music is ready goes ahead of clips not yet started.

Every output is rendered to a hidden partial file beside its final name and renamed into place;
only then is "done" (with the output's SHA-256) recorded in the manifest,
`OUT_DIR/.scoretool-batch.json`, itself written atomically. `--ray` runs the same per-clip code in
Ray actors (`scoretool.batch.ray`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable
from typing import Protocol

from ..plans import Settings
from .clips import BatchError, Clip, find_clips
from .display import BatchDisplay
from .events import ClipAborted, ClipDone, ClipEvent, ClipFinished, ClipStarted, Emit
from .local import LocalExecutor
from .manifest import Manifest, locked, remove_leftovers, settings_digest
from .report import BatchReport, Row
from .server import Loader, load_model


class Executor(Protocol):
    calls: list[tuple[str, int, int]]  # (kind, clips, items) per model call

    def run(self, todo: list[Clip], settings: Settings, emit: Emit, display: BatchDisplay) -> None: ...


def run_batch(
    in_dir: str,
    out_dir: str,
    settings: Settings | None = None,
    *,
    recursive: bool = False,
    globs: Iterable[str] = (),
    images: bool = False,
    fmt: str = "same",
    jobs: int | None = None,
    force: bool = False,
    ray: str | None = None,
    music_batch: int = 8,
    display: BatchDisplay | None = None,
    cache_dir: str | None = None,
    use_cache: bool = True,
    loader: Loader = load_model,
) -> BatchReport:
    """Score the folder `in_dir` into `out_dir`; see the module docstring. Ctrl-C returns a report
    with `interrupted` set (re-running resumes). `ray`: a Ray address ("auto", "local", host:port).
    The content-addressed cache (`scoretool.cache`) is used as `score` uses it, unless `use_cache`
    is false. `loader` loads the models of a local batch (kind "caption"/"music", spec)."""
    settings = settings or Settings()
    display = display or BatchDisplay()
    jobs = jobs or min(4, os.cpu_count() or 1)
    started = time.perf_counter()
    clips = find_clips(in_dir, out_dir, recursive=recursive, globs=globs, images=images, fmt=fmt)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise BatchError(f"cannot create the output folder {out_dir}: {e.strerror or e}") from None
    report = BatchReport(input_dir=in_dir, output_dir=out_dir, ray=ray)
    with locked(out_dir):
        remove_leftovers(out_dir)
        ledger = Ledger(Manifest.open(out_dir, in_dir, settings, fmt, force), display)
        todo = ledger.triage(clips, settings, force)
        report.rows = [ledger.rows[c.rel] for c in clips]
        display.begin(len(clips), report.counts["skipped"], len(todo), ray)
        executor = _executor(ray, jobs, music_batch, cache_dir, use_cache, loader)
        try:
            if todo:
                executor.run(todo, settings, ledger.record, display)
        except KeyboardInterrupt:
            report.interrupted = True
        except BaseException:
            ledger.manifest.unmark_running()  # a fatal error (models, Ray): the clips it cut short are not at fault
            ledger.manifest.save()
            raise
        finally:
            report.seconds = time.perf_counter() - started
            report.model_calls = list(executor.calls)
            display.end(report)
    return report


def _executor(ray: str | None, jobs: int, music_batch: int, cache_dir: str | None, use_cache: bool,
              loader: Loader) -> Executor:
    if ray is not None:
        from .ray import RayExecutor

        return RayExecutor(ray, jobs, music_batch=music_batch,
                           cache=(os.path.abspath(cache_dir) if cache_dir else None, use_cache))
    from ..cache import Cache

    return LocalExecutor(jobs, music_batch=music_batch, cache=Cache(cache_dir, enabled=use_cache), loader=loader)


class Ledger:
    """The manifest and the report's rows, kept up to date as clip events come in (from one thread)."""

    def __init__(self, manifest: Manifest, display: BatchDisplay):
        self.manifest, self.display = manifest, display
        self.rows: dict[str, Row] = {}
        self.digests: dict[str, str] = {}
        self.input_stats: dict[str, tuple[int | None, int | None]] = {}

    def triage(self, clips: list[Clip], settings: Settings, force: bool) -> list[Clip]:
        """Record what each clip is to be (failed at once, skipped, pending) and return those to score."""
        todo = []
        for clip in clips:
            if clip.error:
                self.rows[clip.rel] = Row(clip.rel, clip.out_rel, "failed", "new", error=clip.error)
                self.manifest.mark_unusable(clip)
                continue
            self.digests[clip.rel] = settings_digest(clip, settings)
            skip, why = (False, "forced") if force else self.manifest.verdict(clip, self.digests[clip.rel])
            entry = self.manifest.clips.get(clip.rel, {})
            if skip:
                self.rows[clip.rel] = Row(clip.rel, clip.out_rel, "skipped", why, entry.get("scenes"), entry.get("duration"), 0.0)
            else:
                self.rows[clip.rel] = Row(clip.rel, clip.out_rel, "pending", why)
                self.manifest.mark_pending(clip)
                todo.append(clip)
        self.manifest.save()
        return todo

    def record(self, event: ClipEvent) -> None:
        if isinstance(event, ClipAborted):
            return  # stays "running": the next run redoes it as interrupted
        clip = event.clip
        if isinstance(event, ClipStarted):
            with contextlib.suppress(OSError):
                st = os.stat(clip.src)
                self.input_stats[clip.rel] = (st.st_size, st.st_mtime_ns)
            self.manifest.mark_running(clip)
            self.display.clip_started(clip.rel)
        elif isinstance(event, ClipFinished):
            self._finished(clip, event)
        self.manifest.save()

    def _finished(self, clip: Clip, event: ClipFinished) -> None:
        row, result = self.rows[clip.rel], event.result
        if isinstance(result, ClipDone):
            self.manifest.mark_done(clip, result, self.digests[clip.rel], self.input_stats.get(clip.rel, (None, None)))
            row.status, row.scenes, row.duration, row.seconds = "done", result.scenes, result.duration, result.seconds
        else:
            self.manifest.mark_failed(clip, result)
            row.status, row.error, row.seconds = "failed", result.error, result.seconds
        self.display.clip_finished(row)


def check_report_path(report_path: str | None) -> None:
    """Refuse a `--report` file whose folder does not exist, before any work."""
    if report_path and not os.path.isdir(os.path.dirname(os.path.abspath(report_path))):
        raise BatchError(f"the folder for --report {report_path} does not exist")


def exit_now(code: int) -> None:
    """End the process without the interpreter's shutdown. A worker thread still inside a native
    library (OpenCV, PyAV...) when Python finalizes makes the process abort with "terminate called
    without an active exception" (pytorch/pytorch#38228); their partial files are removed by the
    next run. Everything of value (manifest, outputs, report) is on disk by now."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)

"""What a person sees of a batch: a live view (a terminal), one line per clip (a log), or nothing;
then the summary table, the JSON report or both."""

from __future__ import annotations

import sys
import threading
from collections import Counter

from ..progress import Reporter
from .report import BatchReport, Row, json_text


class BatchDisplay:
    """Quiet: shows nothing. Subclasses draw; every method may be called from worker threads."""

    def begin(self, clips: int, skipped: int, todo: int, ray: str | None) -> None: ...

    def clip_started(self, clip: str) -> None: ...

    def clip_stage(self, clip: str, stage: str) -> None: ...

    def clip_finished(self, row: Row) -> None: ...

    def model_status(self, text: str) -> None: ...

    def end(self, report: BatchReport) -> None: ...


class ClipReporter(Reporter):
    """A clip's stage timings (as `score` keeps them), with each stage shown by the batch display."""

    def __init__(self, display: BatchDisplay, clip: str):
        super().__init__()
        self.display, self.clip = display, clip

    def _begin(self, name: str, total: int | None):
        self.display.clip_stage(self.clip, name)


def describe(row: Row) -> str:
    if row.status == "failed":
        return f"failed  {row.clip}: {row.error}"
    return f"{row.status:<7} {row.clip} → {row.output} ({row.scenes} scene(s), {row.duration or 0:.1f} s) in {row.seconds or 0:.1f} s"


def _heading(clips: int, skipped: int, todo: int, ray: str | None) -> str:
    where = f" on Ray ({ray})" if ray else ""
    return f"{clips} clip(s): {skipped} already done, {todo} to score{where}"


class LineDisplay(BatchDisplay):
    """One line per finished clip on stderr: for logs and pipes."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()
        self.finished = 0
        self.todo = 0

    def _print(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def begin(self, clips, skipped, todo, ray):
        self.todo = todo
        self._print(_heading(clips, skipped, todo, ray))

    def clip_finished(self, row):
        self.finished += 1
        self._print(f"[{self.finished}/{self.todo}] {describe(row)}")


class RichBatchDisplay(BatchDisplay):
    """A live view on a terminal: overall progress, each clip in flight with its stage, the model thread."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.lock = threading.Lock()
        self.tasks: dict[str, int] = {}
        self.counts = Counter()
        self.overall = self.model = None

    def begin(self, clips, skipped, todo, ray):
        self.console.print(_escape(_heading(clips, skipped, todo, ray)), highlight=False)
        if not todo:
            return
        self.progress.start()
        self.overall = self.progress.add_task("clips", total=todo)
        self.model = self.progress.add_task("[dim]models: loading", total=None)

    def _title(self) -> str:
        failed = f", [red]{self.counts['failed']} failed[/red]" if self.counts["failed"] else ""
        return f"clips: {self.counts['done']} done{failed}"

    def clip_started(self, clip):
        with self.lock:
            self.tasks[clip] = self.progress.add_task(f"  {_escape(clip)} [dim]queued", total=None)

    def clip_stage(self, clip, stage):
        with self.lock:
            if clip in self.tasks:
                self.progress.update(self.tasks[clip], description=f"  {_escape(clip)} [dim]{stage}")

    def clip_finished(self, row):
        with self.lock:
            task = self.tasks.pop(row.clip, None)
            if task is not None:
                self.progress.remove_task(task)
            self.counts[row.status] += 1
            if self.overall is not None:
                self.progress.update(self.overall, advance=1, description=self._title())
            colour = "red" if row.status == "failed" else "green"
            self.progress.console.print(f"[{colour}]{_escape(describe(row))}[/{colour}]", highlight=False)

    def model_status(self, text):
        if self.model is not None:
            self.progress.update(self.model, description=f"[dim]models: {_escape(text)}")

    def end(self, report):
        self.progress.stop()


def summary_table(report: BatchReport):
    """The table printed at the end: clip, scenes, duration, status (and why), time."""
    from rich.table import Table

    counts = report.counts
    title = (f"{len(report.rows)} clip(s): {counts['done']} scored, {counts['skipped']} skipped, "
             f"{counts['failed']} failed" + (f", {counts['pending']} not done (interrupted)" if counts["pending"] else "")
             + f" in {report.seconds:.1f} s")
    table = Table(title=title, title_justify="left")
    for column, justify in (("clip", "left"), ("scenes", "right"), ("duration", "right"), ("status", "left"), ("time", "right")):
        table.add_column(column, justify=justify, overflow="fold")
    colours = {"done": "green", "skipped": "dim", "failed": "red", "pending": "yellow"}
    for r in report.rows:
        status = r.status if r.status != "failed" else f"failed: {r.error}"
        if r.status in ("done", "skipped") and r.reason not in ("new", "done before"):
            status += f" ({r.reason})"
        table.add_row(
            r.clip, "" if r.scenes is None else str(r.scenes), "" if r.duration is None else f"{r.duration:.1f} s",
            f"[{colours[r.status]}]{_escape(status)}[/]", "" if r.seconds is None else f"{r.seconds:.1f} s",
        )
    return table


def show_report(report: BatchReport, *, report_path: str | None = None, as_json: bool = False, quiet: bool = False,
                images: bool = False, recursive: bool = False) -> None:
    """The end of `scoretool batch`: the report to `report_path`, the JSON report on stdout or the
    summary table on stderr (and a word when the folder held no clip), then how to resume an
    interrupted batch. `images` and `recursive` are the batch's options (for that word)."""
    if report_path:
        report.write(report_path)
    if as_json:
        sys.stdout.write(json_text(report.to_dict()))
        sys.stdout.flush()
    elif not quiet:
        from rich.console import Console

        Console(stderr=True).print(summary_table(report))
        if not report.rows:
            print(f"no {'videos or photos' if images else 'videos'} found in {report.input_dir}"
                  f"{'' if recursive else ' (add --recursive for subfolders)'}", file=sys.stderr)
    if report.interrupted:
        print(f"interrupted: {report.counts['done']} clip(s) scored this time; run the same command again to resume",
              file=sys.stderr)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)

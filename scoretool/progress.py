"""Stage timing and progress display.

The pipeline reports through a `Reporter`: `with reporter.stage("captions", total=n) as advance:`
times the stage and lets it tick. The base class only keeps timings (quiet, scripts, tests);
`RichReporter` also draws a progress bar per stage on a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import interrupts


class Reporter:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        interrupts.raise_if_requested()  # no new stage after a Ctrl-C whose exception went astray
        started = time.perf_counter()
        handle = self._begin(name, total)
        try:
            yield lambda n=1: self._advance(handle, n)
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
            self._end(handle)

    def note(self, message: str) -> None:
        """A one-line remark for a person (which backend was chosen, a fallback...)."""

    # Hooks for subclasses.
    def _begin(self, name: str, total: int | None):
        return None

    def _advance(self, handle, n: int) -> None:
        pass

    def _end(self, handle) -> None:
        pass


class LineReporter(Reporter):
    """No bars (stderr is a log, not a terminal), but the remarks a person should see, one a line,
    printed when the run has succeeded (a failure stays the one line that says why)."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)

    def close(self) -> None:
        import sys

        for message in self.notes:
            print(message, file=sys.stderr, flush=True)


class RichReporter(Reporter):
    """One progress line per stage, on stderr, so stdout stays clean for `--json`."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()

    def close(self) -> None:
        self.progress.stop()

    def note(self, message: str) -> None:
        self.progress.console.print(f"[dim]{message}[/dim]", highlight=False)

    def _begin(self, name: str, total: int | None):
        return self.progress.add_task(name, total=total)

    def _advance(self, handle, n: int) -> None:
        self.progress.advance(handle, n)

    def _end(self, handle) -> None:
        task = self.progress.tasks[handle]
        if task.total is None:
            self.progress.update(handle, total=1, completed=1)
        else:
            self.progress.update(handle, completed=task.total)

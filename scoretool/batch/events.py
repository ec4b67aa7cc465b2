"""What a batch's executors tell the bookkeeping: a clip started, finished (done or failed), or
was cut short by the batch stopping. Executors run anywhere (threads, Ray actors); the events and
results are plain dataclasses, so they travel between processes as they are."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ScoreToolError
from ..files import first_line
from .clips import Clip


@dataclass(frozen=True)
class ClipDone:
    """A clip scored: its output is in place under its final name."""

    sha256: str
    size: int
    scenes: int
    duration: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipFailed:
    """A clip that could not be scored: one line for people, a traceback for unexpected errors."""

    error: str
    detail: str | None = None
    seconds: float | None = None


ClipResult = ClipDone | ClipFailed


@dataclass(frozen=True)
class ClipStarted:
    clip: Clip


@dataclass(frozen=True)
class ClipFinished:
    clip: Clip
    result: ClipResult


@dataclass(frozen=True)
class ClipAborted:
    """Cut short by the batch stopping (Ctrl-C, a fatal error): not the clip's fault, so its record
    stays "running" and the next run redoes it as interrupted."""

    clip: Clip


ClipEvent = ClipStarted | ClipFinished | ClipAborted
Emit = Callable[[ClipEvent], None]


def failure(exc: BaseException, seconds: float | None = None) -> ClipFailed:
    """A failed clip's result: the error's first line, and the traceback when it was unexpected."""
    if isinstance(exc, ScoreToolError):
        return ClipFailed(first_line(exc), None, _rounded(seconds))
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    message = first_line(str(exc))
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return ClipFailed(text, detail, _rounded(seconds))


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)

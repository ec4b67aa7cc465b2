"""Ctrl-C and SIGTERM in the command line: one line, exit 130 / 143, every cleanup run.

SIGTERM is what `timeout`, `docker stop` and CI runners send; to the user it means what Ctrl-C
means. So the CLI treats both alike, in three phases:

- `install()`, the first thing the CLI does (before its heavy imports): until the command's work
  starts, a signal ends the process at once with its line. Nothing has been written yet, so
  there is nothing to clean up, and no import can swallow it or print a traceback.
- `handled(work)`, the command's work: SIGINT raises KeyboardInterrupt and SIGTERM raises
  `Terminated`, so the `finally` blocks and context managers that clean up after an error (ffmpeg
  children killed and waited on, temp files and folders removed) run for both. Then the line is
  printed and the process exits without waiting for worker threads (a model still loading, a
  bridge call in flight). A second signal during that cleanup ends the process at once; what it
  left is swept by the next run (see `scoretool.files`).
- after the work, `install()`'s behaviour again.

Only the CLI calls these: a library must not take over the process's signals.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it
MESSAGES = {signal.SIGINT: "Interrupted (Ctrl-C).", signal.SIGTERM: "Terminated (SIGTERM)."}


class Terminated(BaseException):
    """SIGTERM arrived. Like KeyboardInterrupt, a BaseException: `except Exception` lets it through."""


_received: list[int] = []  # the signals that arrived while the work was running
_held: list[int] = []  # ...and one whose exception waits for the end of a `deferred()` block
_deferring = 0  # how deep the main thread is in `deferred()` blocks


def install() -> None:
    """From now on a signal ends the process at once, with its line (until `handled()`)."""
    for signum in EXIT_CODES:
        signal.signal(signum, _exit_now)


def requested() -> bool:
    """Whether an interrupt is on its way out: a cleanup step may then skip a long wait."""
    return bool(_received)


def raise_if_requested() -> None:
    """Raise again a signal that arrived but whose exception went nowhere: swallowed by a library's
    bare `except`, or lost inside an import (which can also leave that module's import lock held, so
    a thread importing it waits for ever). Called where the main thread waits or starts new work.
    Outside the CLI's `handled()` nothing is ever recorded and this does nothing."""
    if _received and not _held:
        raise _exception(_received[0])


@contextmanager
def deferred() -> Iterator[None]:
    """A step a signal must not cut in two (a child process started, but not yet held by anyone
    who would stop it): in the main thread, a signal's exception waits for the end of the block."""
    global _deferring
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are raised in the main thread only
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and _held:
        raise _exception(_held.pop())


def handled(work: Callable[[], T]) -> T:
    """`work()` with signals raised as exceptions; on one, exit with its line and code."""
    for signum in EXIT_CODES:
        signal.signal(signum, _raise)
    stopped = None
    try:
        result = work()
    except BaseException as e:
        # Whatever the cleanup raised on the way out (a killed ffmpeg's error, say), the signal wins.
        stopped = _received[0] if _received else _SIGNALS.get(type(e))
        if stopped is None:
            raise
    finally:
        install()
    stopped = stopped or (_received[0] if _received else None)  # raised, but something swallowed it
    if stopped is not None:
        # Out of the `except` block the traceback is gone, and with it the frames of the work: what
        # cleans up when collected (a TemporaryDirectory no `with` closed) does so now.
        gc.collect()
        leave(stopped)
    return result


_SIGNALS = {KeyboardInterrupt: signal.SIGINT, Terminated: signal.SIGTERM}


def leave(signum: int) -> None:
    """Print the signal's line, flush what was printed and end the process with its code."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    # os.write, not print: a signal handler may run while sys.stderr is in the middle of a write.
    try:
        os.write(2, f"{MESSAGES[signum]}\n".encode())
    except OSError:
        pass
    # No interpreter shutdown: it would wait for worker threads (a model load, an HTTP call) to finish.
    os._exit(EXIT_CODES[signum])


def _exit_now(signum, frame) -> None:
    leave(signum)


def _raise(signum, frame) -> None:
    if frame is not None and _unsafe_to_raise_in(frame.f_code):
        threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()  # again in a moment, elsewhere
        return
    _received.append(signum)
    install()  # a second signal, during the cleanup, ends the process at once
    if _deferring:
        _held.append(signum)
        return
    raise _exception(signum)


def _unsafe_to_raise_in(code) -> bool:
    """Where an exception must not be raised: a finalizer, where it is lost (Python prints "Exception
    ignored in ...", a traceback, and goes on), and the import machinery, where it can also be lost
    (its module-lock weakref callback) and can leave an import lock held, so that another thread's
    import (a model loading) then waits for ever."""
    return code.co_name == "__del__" or code.co_filename.startswith("<frozen importlib")


def _exception(signum: int) -> BaseException:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

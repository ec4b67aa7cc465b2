"""Writing files so that they appear whole or not at all, temp files a killed run can't strand,
and one-line error text.

Every file scoretool writes for a person (outputs, plans, manifests, reports, cache entries) goes
through `write_atomic`: the content is written to a hidden temp file beside the target and renamed
into place, so an interrupted or failed run never leaves a half-written file at the target path.

A run that is killed outright (SIGKILL, a power cut) runs no cleanup, so every temp name says
who wrote it: ".NAME.tmp-w<pid>-<start>-<host>-XXXXXXXX.EXT" beside the target, and
"scoretool-KIND-w<pid>-<start>-<host>-XXXXXXXX" for the folders in the system temp folder, where
<start> is when that process started (so a reused pid is not mistaken for it) and <host> stands for
this kernel boot and pid namespace (a pid means nothing elsewhere). The next write into the same
folder removes the ones whose writer is gone; a live run's files are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from .errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error (or its class name): what a person is shown."""
    text = str(error).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__ if isinstance(error, BaseException) else ""


def write_atomic(output_path: str, writer: Callable[[str], None], *, fsync: bool = False) -> None:
    """Call writer(temp_path) for a temp file beside `output_path`, then rename it into place.

    The temp name keeps the real extension (tools pick the format from it). On any failure,
    KeyboardInterrupt included, the temp file is removed and `output_path` is untouched. A write
    the system refused (disk full, no permission, file too large), from Python or from libsndfile,
    becomes one `OutputError` naming `output_path` and the reason. `fsync`: make the content and the
    rename durable before returning (manifests, which must survive a power cut).
    """
    folder = os.path.dirname(os.path.abspath(output_path))
    stem, ext = os.path.splitext(os.path.basename(output_path))
    sweep(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.tmp-{_writer()}-", suffix=ext, dir=folder)
    except OSError as e:
        raise OutputError(f"Cannot write {output_path}: {e.strerror or e}.") from None
    try:
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the output should look normal
        writer(tmp)
        if os.path.getsize(tmp) == 0:
            raise OutputError(f"Nothing was written to {output_path}.")
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, output_path)
        if fsync:
            fsync_dir(folder)
    except BaseException as e:
        reason = _refusal(e, tmp)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if reason:
            raise OutputError(f"Cannot write {output_path}: {reason}.") from None
        if isinstance(e, OutputError):  # the writer's own sentence (ffmpeg's error): say which file it was
            message = str(e).replace(tmp, output_path)
            raise OutputError(message if output_path in message else f"Cannot write {output_path}: {message}") from None
        raise


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """`with writing(path): ...write path...`: a write the system refuses there (disk full, no
    permission, file too large) becomes one `OutputError` naming `path` and the reason. For a run's
    own temp files, written in place rather than through `write_atomic`: to find the reason, what
    is at `path` may be appended to, so it must be a file that is thrown away on an error."""
    try:
        yield
    except (OSError, *_sound_errors()) as e:
        raise OutputError(f"Cannot write {path}: {_refusal(e, path)}.") from None


def _refusal(error: BaseException, path: str) -> str | None:
    """Why the system refused a write to `path`, when `error` is such a refusal; None for anything else."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if not isinstance(error, (OSError, *_sound_errors())):
        return None
    # libsndfile says only "System error.", numpy's tofile "N requested and M written": neither
    # says why. The condition that stopped them (a full disk, RLIMIT_FSIZE) stops the same write
    # from Python, which does.
    try:
        with open(path, "ab") as f:
            f.write(bytes(_PROBE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return e.strerror or first_line(e)
    return first_line(error)


def _sound_errors() -> tuple[type[BaseException], ...]:
    """soundfile's error class, where soundfile is in use (never imported here for it)."""
    soundfile = sys.modules.get("soundfile")
    return (soundfile.SoundFileError,) if soundfile is not None else ()


_PROBE_BYTES = 1 << 20  # more than a file system's partly used last block can take


def write_bytes_atomic(path: str, data: bytes) -> None:
    """`write_atomic` of a bytes value."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    write_atomic(path, write)


def fsync_dir(folder: str) -> None:
    """Make a rename in `folder` durable (a no-op where the platform cannot)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def temp_folder(kind: str) -> Iterator[str]:
    """`with temp_folder("mux") as path:` a new folder in the system temp folder, removed on every
    way out; one left by a killed run is removed by a later one (see the module docstring)."""
    path = make_temp_folder(kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_temp_folder(kind: str) -> str:
    """A new folder "scoretool-KIND-w..." in the system temp folder; the caller removes it."""
    root = tempfile.gettempdir()
    sweep(root)
    return tempfile.mkdtemp(prefix=f"scoretool-{kind}-{_writer()}-", dir=root)


def sweep(folder: str) -> list[str]:
    """Remove the temp files and folders in `folder` whose writer is gone; returns their paths.

    Only names this module makes are looked at. One from another boot or pid namespace (its pid
    can't be checked from here) is removed once it has not changed for STALE_AFTER seconds."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None or not _writer_gone(entry, int(match["pid"]), int(match["start"]), match["host"]):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.path)
    return removed


STALE_AFTER = 24 * 3600

_TEMP_NAME = re.compile(
    r"(?:\..*\.tmp-|scoretool-[a-z]+-)w(?P<pid>\d+)-(?P<start>\d+)-(?P<host>[0-9a-f]{8})-[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?"
)


def _writer_gone(entry: os.DirEntry, pid: int, start: int, host: str) -> bool:
    if host != _HOST:
        with contextlib.suppress(OSError):
            return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER
        return False
    return _process_start(pid) != start


def _process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot, from /proc), None if there is no such
    process. Without /proc (macOS), 0 for any live process: the pid alone then says who wrote."""
    if not _HAS_PROC:
        if os.name == "nt":
            return 0  # os.kill would end the process there: never judge one gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass  # EPERM: it exists, another user's
        return 0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])  # field 22, counted after the "(comm)" field


def _writer() -> str:
    """Who writes this process's temp files (computed each time: a forked child is someone else)."""
    pid = os.getpid()
    return f"w{pid}-{_process_start(pid) or 0}-{_HOST}"


def _host() -> str:
    """This kernel boot and pid namespace, in 8 hex digits: where a pid and a start time mean something."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # no /proc: the machine's name stands for both
        boot, namespace = platform.node(), ""
    return hashlib.sha256(f"{boot}|{namespace}".encode()).hexdigest()[:8]


_HAS_PROC = os.path.isdir("/proc/self")
_HOST = _host()

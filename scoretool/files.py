"""Writing files so that they appear whole or not at all, and one-line error text.

Every file scoretool writes for a person (outputs, plans, manifests, reports, cache entries) goes
through `write_atomic`: the content is written to a hidden temp file beside the target and renamed
into place, so an interrupted or failed run never leaves a half-written file at the target path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable

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
    KeyboardInterrupt included, the temp file is removed and `output_path` is untouched; an OSError
    (disk full, folder gone...) becomes one `OutputError` sentence. `fsync`: make the content and
    the rename durable before returning (manifests, which must survive a power cut).
    """
    folder = os.path.dirname(os.path.abspath(output_path))
    stem, ext = os.path.splitext(os.path.basename(output_path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.tmp-", suffix=ext, dir=folder)
    except OSError as e:
        raise OutputError(f"Cannot write {output_path}: {e.strerror or e}.") from None
    os.close(fd)
    try:
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
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"Cannot write {output_path}: {e.strerror or e}.") from None
        raise


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

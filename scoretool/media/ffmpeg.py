"""Find and run the ffmpeg binary (argument lists only, never a shell)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from scoretool import interrupts
from scoretool.errors import OutputError, ScoreToolError


@functools.cache
def ffmpeg_exe() -> str:
    """ffmpeg on PATH if there is one, else the static build shipped in the imageio-ffmpeg wheel."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ScoreToolError(
            "ffmpeg was not found: install ffmpeg or run `pip install imageio-ffmpeg`."
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def start(cmd: list[str], **popen_args) -> subprocess.Popen:
    """Start an ffmpeg (or ffprobe) child in its own process group.

    A terminal's Ctrl-C goes to its whole foreground process group; ffmpeg would take it as "stop
    and finish the file", and end a decode early or close an output as if it were whole, while this
    process decides what an interrupt means. So only this process gets it, and whoever starts a
    child kills and waits on it on every way out (`run_ffmpeg`, `AnalysisPass.close`).
    """
    proc = None
    try:
        with interrupts.deferred():  # a signal inside Popen would leave a child that nobody holds
            proc = subprocess.Popen(cmd, process_group=0, **popen_args)
    except BaseException:
        if proc is not None:
            proc.kill()
            proc.wait()
        raise
    return proc


def run_ffmpeg(args: list[str]) -> None:
    """Run ffmpeg quietly with `args`; on failure raise OutputError quoting ffmpeg's last error line.

    On any exception while it runs (KeyboardInterrupt, `interrupts.Terminated`), the child is
    killed and waited on before the exception goes on, so it never writes on behind our back."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", *map(str, args)]
    try:
        proc = start(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     text=True, errors="replace")
    except OSError as e:
        raise ScoreToolError(f"Could not run ffmpeg ({cmd[0]}): {e.strerror or e}.") from None
    try:
        stderr = proc.stderr.read()  # the only pipe: read to its end, then reap
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stderr.close()
    if proc.returncode != 0:
        raise OutputError(f"ffmpeg failed: {last_error(stderr, proc.returncode)}")


def last_error(stderr: str, returncode: int) -> str:
    """ffmpeg's last line is often generic ("Error opening input files: ..."); the one before
    it names the file or the codec. Keep both, on one line, without the "[mp4 @ 0x...]" tags."""
    lines = [_TAG.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return f"exit status {returncode}"
    last_two = list(dict.fromkeys(lines[-2:]))
    return " ".join(line if line.endswith(".") else line + "." for line in last_two)


_TAG = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*")

"""Find and run the ffmpeg binary (argument lists only, never a shell)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

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


def run_ffmpeg(args: list[str]) -> None:
    """Run ffmpeg quietly with `args`; on failure raise OutputError quoting ffmpeg's last error line."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", *map(str, args)]
    try:
        # On any exception (KeyboardInterrupt included) subprocess.run kills the child first.
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
        )
    except OSError as e:
        raise ScoreToolError(f"Could not run ffmpeg ({cmd[0]}): {e.strerror or e}.") from None
    if proc.returncode != 0:
        raise OutputError(f"ffmpeg failed: {last_error(proc.stderr, proc.returncode)}")


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

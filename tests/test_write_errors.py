"""A write the system refuses (disk full, file too large, read-only) is one line naming the file
and the reason, never a traceback, and leaves nothing behind; a cache that cannot be written is
a warning and the run goes on.

A full disk is a small tmpfs where this machine lets the test mount one (root with mount
rights); "file too large" is RLIMIT_FSIZE, set in the child process with SIGXFSZ ignored so the
write returns EFBIG instead of killing it.
"""

from __future__ import annotations

import os
import resource
import signal
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SAMPLES

IMAGE = SAMPLES / "coffee.png"


def run(args, *, cwd: Path, file_size_limit: int | None = None):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not death by signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(cwd)}
    return subprocess.run([sys.executable, "-m", "scoretool", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, preexec_fn=limit if file_size_limit else None)


def one_line(proc) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def models(tiny_models) -> list:
    return ["--caption-model", tiny_models["blip"], "--music-model", tiny_models["musicgen"], "--no-cache"]


def mounted_tmpfs(folder: Path, options: str):
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"this machine does not let the test mount a tmpfs: {proc.stderr.strip()}")
    return folder


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system: the output's first few blocks fit, the rest do not."""
    folder = mounted_tmpfs(tmp_path / "disk", "size=64k")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def read_only_folder(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    folder = mounted_tmpfs(tmp_path / "locked", "ro,size=64k")  # root ignores permissions, not a read-only mount
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_wav_output_on_a_full_disk(tiny_models, tmp_path, full_disk):
    output = full_disk / "out.wav"
    line = one_line(run(["score", IMAGE, "-o", output, "--duration", "2", *models(tiny_models)], cwd=tmp_path))
    assert line == f"Error: Cannot write {output}: No space left on device."
    assert os.listdir(full_disk) == []


def test_video_output_on_a_full_disk(tiny_models, tmp_path, full_disk):
    output = full_disk / "out.mp4"
    line = one_line(run(["score", IMAGE, "-o", output, "--duration", "2", *models(tiny_models)], cwd=tmp_path))
    assert line.startswith(f"Error: Cannot write {output}: ffmpeg failed:") and "No space left on device" in line, line
    assert os.listdir(full_disk) == []


def test_plan_over_the_file_size_limit(tiny_models, tmp_path):
    (tmp_path / "out").mkdir()
    output = tmp_path / "out" / "coffee.plan.json"
    line = one_line(run(["plan", IMAGE, "-o", output, *models(tiny_models)], cwd=tmp_path, file_size_limit=1000))
    assert line == f"Error: Cannot write {output}: File too large."
    assert os.listdir(tmp_path / "out") == []


def test_soundfile_write_over_the_file_size_limit(tmp_path):
    """libsndfile reports only "System error."; write_atomic finds and names the reason."""
    code = (
        "import numpy, soundfile\n"
        "from scoretool.errors import OutputError\n"
        "from scoretool.files import write_atomic\n"
        "try:\n"
        "    write_atomic('music.wav', lambda tmp: soundfile.write(tmp, numpy.zeros((96000, 2)), 48000, subtype='PCM_24'))\n"
        "except OutputError as e:\n"
        "    print(e)\n"
    )

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, preexec_fn=limit)
    assert proc.stdout.strip() == "Cannot write music.wav: File too large.", proc.stderr
    assert os.listdir(tmp_path) == []


def test_the_mix_temp_files_over_the_file_size_limit(tiny_models, tmp_path):
    output = tmp_path / "out.mp4"
    line = one_line(run(["score", IMAGE, "-o", output, "--duration", "2", *models(tiny_models)], cwd=tmp_path,
                        file_size_limit=200_000))
    assert line.startswith(f"Error: Cannot write {tmp_path}/") and line.endswith(": File too large."), line


def test_an_unwritable_cache_is_a_warning_and_the_run_goes_on(tiny_models, tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    cache = tmp_path / "a-file" / "cache"  # mkdir fails here, root or not
    output = tmp_path / "out.wav"
    proc = run(["score", IMAGE, "-o", output, "--duration", "2", "--caption-model", tiny_models["blip"],
                "--music-model", tiny_models["musicgen"], "--cache-dir", cache], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert output.stat().st_size > 0
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, proc.stderr  # once, not once per entry
    assert f"Cannot write {cache}/" in warnings[0] and "Not a directory" in warnings[0]
    assert "Traceback" not in proc.stderr


def test_a_read_only_output_folder_is_one_line(tiny_models, tmp_path, read_only_folder):
    line = one_line(run(["score", IMAGE, "-o", read_only_folder / "out.wav", *models(tiny_models)], cwd=tmp_path))
    assert line == f"Error: The output folder {read_only_folder} is not writable."
    stems = read_only_folder / "stems"
    line = one_line(run(["score", IMAGE, "-o", tmp_path / "out.wav", "--duration", "2", "--stems", stems,
                         *models(tiny_models)], cwd=tmp_path))
    assert str(stems) in line and ("Read-only file system" in line or "Permission denied" in line), line
    assert not (tmp_path / "out.wav").exists()

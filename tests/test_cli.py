"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

import json
import re
import os
import subprocess
import sys

import pytest

from .conftest import SAMPLES
from .helpers import file_md5, make_clip


def run(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "scoretool", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)


def assert_one_line_error(proc, pattern):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("this is not a video\n")
    good = make_clip(d / "good.mp4", colours=("red", "blue"), seconds=2)
    (d / "truncated.mp4").write_bytes(good.read_bytes()[:3000])
    from scoretool.media.ffmpeg import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=2", str(d / "sound.m4a")], check=True)
    return d


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("missing.mp4", r"(?i)not found|does not exist|no such"),
        ("empty.mp4", r"(?i)empty|zero"),
        ("notes.mp4", r"(?i)not a (video|media)|cannot read|unreadable|not recogni[sz]ed"),
        ("truncated.mp4", r"(?i)corrupt|cannot read|unreadable|damaged|truncated"),
        ("sound.m4a", r"(?i)no video"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_output(bad_inputs, tmp_path, name, pattern):
    src = bad_inputs / name
    before = file_md5(src) if src.exists() else None
    out = tmp_path / "out.mp4"
    proc = run("score", src, "-o", out)
    assert_one_line_error(proc, pattern)
    assert not out.exists() and not any(tmp_path.iterdir())
    assert (file_md5(src) if src.exists() else None) == before


def test_output_equal_to_input_is_refused(bad_inputs):
    src = bad_inputs / "good.mp4"
    before = file_md5(src)
    assert_one_line_error(run("score", src, "-o", src), r"(?i)is the input")
    assert file_md5(src) == before


def test_unwritable_output_folder(bad_inputs, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores permissions: use a folder the kernel refuses
        folder = "/sys"
    proc = run("score", bad_inputs / "good.mp4", "-o", f"{folder}/out.mp4")
    assert_one_line_error(proc, r"(?i)not writable|cannot write|permission")


def test_missing_output_folder_and_unknown_extension(bad_inputs, tmp_path):
    assert_one_line_error(run("score", bad_inputs / "good.mp4", "-o", tmp_path / "nope" / "out.mp4"), r"(?i)does not exist")
    assert_one_line_error(run("score", bad_inputs / "good.mp4", "-o", tmp_path / "out.xyz"), r"(?i)\.xyz")


def test_model_not_available_offline_is_one_line(bad_inputs, tmp_path):
    proc = run("score", bad_inputs / "good.mp4", "-o", tmp_path / "out.mp4", "--caption-model", "nobody/none")
    assert_one_line_error(proc, r"nobody/none.*(cache|hub)")
    assert not (tmp_path / "out.mp4").exists()


def test_score_json_and_plan_render_round_trip(tiny_models, tmp_path):
    models = ["--caption-model", tiny_models["blip"], "--music-model", tiny_models["musicgen"]]
    src = SAMPLES / "tears_of_steel.mp4"
    proc = run("score", src, "-o", tmp_path / "scored.mp4", "--json", "--save-plan", tmp_path / "p.json", *models)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["output"].endswith("scored.mp4") and len(summary["scenes"]) == 3
    assert all(s["prompt"] for s in summary["scenes"]) and summary["timings"]["music"] > 0

    proc = run("plan", src, "-o", tmp_path / "again.json", "--quiet", *models)
    assert proc.returncode == 0 and proc.stdout == ""
    saved, planned = json.loads((tmp_path / "p.json").read_text()), json.loads((tmp_path / "again.json").read_text())
    assert saved["scenes"] == planned["scenes"]  # same input and settings: the same plan

    proc = run("render", tmp_path / "again.json", "-o", tmp_path / "rendered.wav", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rendered.wav").stat().st_size > 0


def test_a_plan_saved_elsewhere_still_finds_a_relatively_named_input(tiny_models, tmp_path):
    """`plan clip.mp4 -o plans/p.json` run in the clip's folder, then `render` from anywhere: the plan
    names its input relative to where the plan file is."""
    make_clip(tmp_path / "clip.mp4", colours=("red", "blue"), seconds=2.5)
    (tmp_path / "plans").mkdir()
    models = ["--caption-model", tiny_models["blip"], "--music-model", tiny_models["musicgen"]]
    proc = run("plan", "clip.mp4", "-o", "plans/p.json", "--quiet", *models, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "plans" / "p.json").read_text())["input"]["path"] == os.path.join("..", "clip.mp4")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run("render", tmp_path / "plans" / "p.json", "-o", "music.wav", "--quiet", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "music.wav").stat().st_size > 0


def test_broken_plan_is_a_clear_error(tmp_path):
    (tmp_path / "p.json").write_text('{"version": 1, "scenes": []}')
    assert_one_line_error(run("render", tmp_path / "p.json", "-o", tmp_path / "o.mp4"), r"(?i)plan")
    (tmp_path / "q.json").write_text("{not json")
    assert_one_line_error(run("render", tmp_path / "q.json", "-o", tmp_path / "o.mp4"), r"(?i)cannot read plan")


def test_help_explains_the_commands():
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("score", "plan", "render", "models"):
        assert command in proc.stdout
    assert "--min-scene" in run("score", "--help").stdout

"""`scoretool batch`: a folder in, outputs under the same relative paths, resumable, fault-isolated.

The CLI tests run real subprocesses with tiny random models; the model-thread tests use fakes.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from scoretool import batch
from scoretool.batch import BatchError, Clip, CpuSlots, ModelServer, find_clips, prepare_output

from .conftest import SAMPLES, SHARED_MEDIA
from .helpers import audio_and_video_seconds, make_clip, video_packets_md5


def scoretool(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "scoretool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def model_args(tiny_models, cache):
    return ["--caption-model", tiny_models["blip"], "--music-model", tiny_models["musicgen"], "--cache-dir", cache]


def manifest(out):
    return json.loads((out / batch.MANIFEST_NAME).read_text())


def states(out):
    return {k: v["state"] for k, v in manifest(out)["clips"].items()}


def leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.startswith((".scoretool-partial-", "..scoretool-"))]


def assert_bit_exact(src, out):
    assert video_packets_md5(out) == video_packets_md5(src), out


# --------------------------------------------------------------------------- finding clips, paths


def test_find_clips_paths_formats_and_what_is_left_out(tmp_path):
    src = tmp_path / "in"
    for rel in ["a.mp4", ".hidden.mp4", "notes.txt", "old.avi", "photo.jpg", "photo.mp4", "sub/b c ü.mov",
                "sub/deeper/d.webm", ".git/x.mp4", "scored/a.mp4"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.mp4").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", src / "linked")  # links to folders are not followed

    out = src / "scored"  # the output folder inside the input folder is never scanned
    flat = find_clips(str(src), str(out))
    assert [c.rel for c in flat] == ["a.mp4", "old.avi", "photo.mp4"]
    every = {c.rel: c.out_rel for c in find_clips(str(src), str(out), recursive=True, images=True)}
    assert every == {
        "a.mp4": "a.mp4", "old.avi": "old.mkv", "photo.jpg": "photo.jpg.mp4", "photo.mp4": "photo.mp4",
        "sub/b c ü.mov": "sub/b c ü.mov", "sub/deeper/d.webm": "sub/deeper/d.webm",
    }
    as_mp4 = {c.rel: c.out_rel for c in find_clips(str(src), str(out), recursive=True, fmt="mp4")}
    assert as_mp4["sub/b c ü.mov"] == "sub/b c ü.mp4" and as_mp4["old.avi"] == "old.mp4"
    assert [c.rel for c in find_clips(str(src), str(out), recursive=True, globs=["*.mov", "deeper/*"])] == ["sub/b c ü.mov"]
    assert [c.rel for c in find_clips(str(src), str(out), recursive=True, globs=["sub/deeper/*"])] == ["sub/deeper/d.webm"]
    with pytest.raises(BatchError, match="is the input folder"):
        find_clips(str(src), str(src) + "/")
    with pytest.raises(BatchError, match="does not exist"):
        find_clips(str(tmp_path / "nope"), str(out))


def test_outputs_never_leave_the_output_folder(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    for bad in ["../x.mp4", "/etc/x.mp4", "a/../../x.mp4", "a//x.mp4", ""]:
        assert batch.unsafe_output_reason(bad), bad
    assert batch.unsafe_output_reason("..x.mp4") is None and batch.unsafe_output_reason("a/é b.mp4") is None

    os.symlink(outside, out / "sub")  # a folder link leading out of OUT_DIR
    clip = Clip(rel="sub/a.mp4", src="in/sub/a.mp4", out_rel="sub/a.mp4", out_root=str(out), kind="video")
    with pytest.raises(BatchError, match="leads out of the output folder"):
        prepare_output(clip)
    (out / "inner").mkdir()
    os.symlink(out / "inner", out / "alias")  # a link that stays inside is fine
    ok = Clip(rel="alias/n/a.mp4", src="x", out_rel="alias/n/a.mp4", out_root=str(out), kind="video")
    assert prepare_output(ok) == str(out / "alias" / "n" / "a.mp4") and (out / "inner" / "n").is_dir()
    os.symlink(outside / "target.mp4", out / "planted.mp4")  # a link at the output name is removed, not followed
    planted = Clip(rel="planted.mp4", src="x", out_rel="planted.mp4", out_root=str(out), kind="video")
    prepare_output(planted)
    assert not os.path.lexists(out / "planted.mp4") and not list(outside.iterdir())


# --------------------------------------------------------------------------- the model thread


class FakeGenerator:
    name, sample_rate = "fake", 100

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()

    def generate(self, prompts, durations, seeds, on_step=None):
        self.calls.append(list(prompts))
        self.gate.wait(10)
        if "boom" in prompts:
            raise RuntimeError("boom")
        return [np.full((round(d * self.sample_rate), 1), s, np.float32) for d, s in zip(durations, seeds)]


def test_the_model_thread_batches_clips_together_and_isolates_a_failing_one():
    server = ModelServer(CpuSlots(2), music_batch=8, linger=0)
    fake = server._models[("music", "m")] = FakeGenerator()
    results = {}

    def clip(name, prompts):
        try:
            results[name] = server.call("music", ("music", "m"), (prompts, [0.5] * len(prompts), list(range(len(prompts)))),
                                        size=len(prompts))
        except Exception as exc:  # noqa: BLE001
            results[name] = exc

    first = threading.Thread(target=clip, args=("first", ["a"]))
    first.start()
    while not fake.calls:  # the model thread is busy with the first clip...
        time.sleep(0.01)
    others = [threading.Thread(target=clip, args=(n, p)) for n, p in
              [("two", ["b", "c"]), ("bad", ["boom"]), ("three", ["d", "e", "f"])]]
    for t in others:
        t.start()
    time.sleep(0.3)  # ...while the other three clips queue up
    fake.gate.set()
    for t in [first, *others]:
        t.join(10)
    # One call for the first clip, one for the three that queued together; the failing batch is then
    # retried clip by clip, so only the bad clip fails.
    assert fake.calls[:2] == [["a"], ["b", "c", "boom", "d", "e", "f"]]
    assert [c for c in fake.calls[2:]] == [["b", "c"], ["boom"], ["d", "e", "f"]]
    assert isinstance(results["bad"], RuntimeError)
    assert [r.shape for r in results["three"]] == [(50, 1)] * 3 and results["three"][2][0, 0] == 2
    assert len(results["two"]) == 2 and len(results["first"]) == 1
    server.stop()


def test_other_generator_methods_run_on_the_model_thread():
    class Continuing(FakeGenerator):
        def continue_from(self, prompt, audio, duration, seed, on_step=None):
            return threading.current_thread().name, prompt, len(audio), duration, seed

    server = ModelServer(CpuSlots(1), linger=0)
    server._models[("music", "m")] = Continuing()
    shared = batch.SharedGenerator(server, ("music", "m"))
    assert shared.sample_rate == 100 and shared.name == "fake"
    assert shared.continue_from("piano", np.zeros(5), 2.0, 7) == ("scoretool-models", "piano", 5, 2.0, 7)
    assert ("continue_from", 1, 1) in server.calls
    with pytest.raises(AttributeError):
        shared.no_such_method
    server.stop()


def test_cpu_slots_let_finishing_clips_go_first():
    slots = CpuSlots(1)
    slots.acquire()
    order = []

    def take(name, urgent):
        slots.acquire(urgent=urgent)
        order.append(name)
        time.sleep(0.05)
        slots.release()

    new = threading.Thread(target=take, args=("new clip", False))
    new.start()
    time.sleep(0.1)
    finishing = threading.Thread(target=take, args=("finishing clip", True))
    finishing.start()
    time.sleep(0.1)
    slots.release()
    new.join(5)
    finishing.join(5)
    assert order == ["finishing clip", "new clip"]


# --------------------------------------------------------------------------- whole batches


@pytest.fixture
def folder(tmp_path):
    """Shared clips when available, a synthetic clip with sound and a non-ASCII name, a photo, a corrupt file."""
    src = tmp_path / "clips"
    (src / "sub").mkdir(parents=True)
    names = []
    if (SHARED_MEDIA / "clip_01_tears_of_steel.mp4").is_file():
        shutil.copy(SHARED_MEDIA / "clip_01_tears_of_steel.mp4", src / "tears of steel.mp4")
        names.append("tears of steel.mp4")
    make_clip(src / "sub" / "ça va – été.mp4", colours=("red", "blue"), seconds=2.5, audio=True)
    make_clip(src / "a.mp4", colours=("green",), seconds=2)
    good = make_clip(tmp_path / "good.mp4", colours=("red", "blue"), seconds=2)
    (src / "broken.mp4").write_bytes(good.read_bytes()[:3000])
    shutil.copy(SAMPLES / "coffee.png", src / "coffee.png")
    return src, names + ["a.mp4", "sub/ça va – été.mp4"]


def test_batch_folder_with_a_corrupt_file_then_resume_checks_every_output(tiny_models, folder, tmp_path):
    src, videos = folder
    out, report = tmp_path / "scored", tmp_path / "report.json"
    command = ["batch", src, "-o", out, "-r", "--images", "--duration", "3", "-j", "2", "--report", report,
               *model_args(tiny_models, tmp_path / "cache")]
    proc = scoretool(*command)
    assert proc.returncode == batch.EXIT_SOME_FAILED, proc.stderr
    data = json.loads(report.read_text())
    rows = {r["clip"]: r for r in data["clips"]}
    assert data["totals"] == {"clips": len(videos) + 2, "done": len(videos) + 1, "skipped": 0, "failed": 1, "pending": 0}
    assert rows["broken.mp4"]["status"] == "failed"
    assert re.search(r"broken\.mp4 .*(damaged|corrupt|cannot read)", rows["broken.mp4"]["error"])
    assert "\n" not in rows["broken.mp4"]["error"] and "Traceback" not in proc.stderr
    assert "broken.mp4" in proc.stderr and "ça va – été.mp4" in proc.stderr  # the summary table
    for rel in videos:
        assert rows[rel]["status"] == "done" and rows[rel]["scenes"] >= 1
        assert_bit_exact(src / rel, out / rel)
    assert rows["coffee.png"]["output"] == "coffee.mp4"
    audio, video = audio_and_video_seconds(out / "coffee.mp4")
    assert video == pytest.approx(3.0, abs=0.05) and audio == pytest.approx(video, abs=0.05)
    recorded = manifest(out)["clips"]
    assert states(out) == {**{rel: "done" for rel in videos}, "coffee.png": "done", "broken.mp4": "failed"}
    assert recorded["sub/ça va – été.mp4"]["sha256"] == batch.file_sha256(out / "sub" / "ça va – été.mp4")
    assert not leftovers(out) and not (out / "broken.mp4").exists()

    # Damage one output, delete another, give a third a sidecar: only those are redone; the rest
    # are checked against their recorded SHA-256 and skipped.
    (out / "coffee.mp4").write_bytes(b"not what was recorded")
    (out / "a.mp4").unlink()
    (src / "sub" / "ça va – été.scoretool.toml").write_text('[scenes.1]\nprompt = "solo piano, tender"\n')
    again = scoretool(*command, "--json")
    assert again.returncode == batch.EXIT_SOME_FAILED, again.stderr
    rows = {r["clip"]: r for r in json.loads(again.stdout)["clips"]}
    reasons = {k: (r["status"], r["reason"]) for k, r in rows.items()}
    assert reasons["coffee.png"] == ("done", "output changed")
    assert reasons["a.mp4"] == ("done", "output missing")
    assert reasons["sub/ça va – été.mp4"] == ("done", "settings changed")
    assert reasons["broken.mp4"] == ("failed", "failed before")
    for rel in videos[:-2]:  # the shared clip
        assert reasons[rel] == ("skipped", "done before")
    for rel in videos:
        assert_bit_exact(src / rel, out / rel)

    # Other settings over the same output folder: refused (nothing touched) unless --force.
    changed = scoretool(*command, "--seed", "7")
    assert changed.returncode == 1
    assert re.fullmatch(r"Error: .*other settings \(seed 0 → 7\).*--force.*\n", changed.stderr), changed.stderr


def test_kill_9_mid_batch_then_the_same_command_resumes(tiny_models, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    palette = ["red", "green", "blue", "white", "black", "yellow", "purple", "orange"]
    clips = [make_clip(src / f"clip {i}.mp4", colours=(palette[i], palette[i - 1]), seconds=2.5) for i in range(8)]
    command = [sys.executable, "-m", "scoretool", "batch", src, "-o", out, "-j", "1", "-q", *model_args(tiny_models, tmp_path / "cache")]
    proc = subprocess.Popen(list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    at_kill = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            at_kill = states(out)
        except (FileNotFoundError, json.JSONDecodeError):  # not written yet (it is never half-written)
            pass
        if "done" in at_kill.values():
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, f"the batch ended before it could be killed: {proc.stderr.read()}"
    at_kill = states(out)  # what the killed run had recorded
    done = sorted(k for k, v in at_kill.items() if v == "done")
    assert done and len(done) < len(clips), at_kill
    for clip in clips:  # whatever is under a final name is complete
        if (out / clip.name).exists():
            assert_bit_exact(clip, out / clip.name)

    rerun = subprocess.run(list(map(str, [*command, "--json"])), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    rows = {r["clip"]: r for r in json.loads(rerun.stdout)["clips"]}
    assert sorted(k for k, r in rows.items() if r["status"] == "skipped") == done
    redone = {k: r["reason"] for k, r in rows.items() if r["status"] == "done"}
    assert set(redone) == {c.name for c in clips} - set(done)
    assert {at_kill[k] for k in redone} <= {"running", "pending"}
    assert {redone[k] for k in redone} <= {"interrupted", "not started"}
    for clip in clips:
        assert_bit_exact(clip, out / clip.name)
    assert not leftovers(out) and states(out) == {c.name: "done" for c in clips}


def _ray_available():
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _ray_available(), reason="Ray is not installed (pip install 'scoretool[ray]')")
def test_ray_batch_on_a_local_cluster_same_manifest_and_outputs(tiny_models, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    clips = [make_clip(src / "a.mp4", colours=("red", "blue"), seconds=2.5),
             make_clip(src / "sub" / "b é.mp4", colours=("white", "black", "green"), seconds=2)]
    (src / "broken.mp4").write_bytes(b"\0" * 5000)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    # Token auth off on both sides: Ray turns it on when ~/.ray/auth_token exists (left by any earlier
    # `ray.init()`), and a driver without RAY_AUTH_MODE=token would then be refused.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block", "--port", "0",
         "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        address = None
        for line in head.stdout:
            m = re.search(r"ray start --address='([^']+)'", line)
            if m:
                address = m.group(1)
                break
        assert address, "ray start did not report its address"
        threading.Thread(target=head.stdout.read, daemon=True).start()  # keep its pipe drained
        command = ["batch", src, "-o", out, "-r", "--json", *model_args(tiny_models, tmp_path / "cache")]
        proc = scoretool(*command, "--ray", address, env=env)
        assert proc.returncode == batch.EXIT_SOME_FAILED, proc.stderr
        report = json.loads(proc.stdout)
        assert report["ray"] == address and report["totals"]["done"] == 2 and report["totals"]["failed"] == 1
        for clip in clips:
            assert_bit_exact(clip, out / clip.relative_to(src))
        assert states(out) == {"a.mp4": "done", "sub/b é.mp4": "done", "broken.mp4": "failed"}
        # The same manifest serves a local run: finished clips are skipped.
        local = scoretool(*command)
        rows = {r["clip"]: r["status"] for r in json.loads(local.stdout)["clips"]}
        assert rows == {"a.mp4": "skipped", "sub/b é.mp4": "skipped", "broken.mp4": "failed"}
    finally:
        head.terminate()
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(temp, ignore_errors=True)

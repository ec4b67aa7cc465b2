"""`scoretool batch`: a folder in, outputs under the same relative paths, resumable, fault-isolated.

The CLI tests run real subprocesses with tiny random models; the model-server tests run the same
tiny models in this process, loaded through the server's injectable loader (which counts them).
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile
from PIL import Image

from scoretool import batch
from scoretool.batch import (
    BatchError, Clip, ClipDone, ClipFailed, ClipFinished, ClipStarted, CpuSlots, LocalExecutor, ModelServer,
    SharedCaptioner, SharedGenerator, find_clips, load_model, prepare_output,
)
from scoretool.batch.server import MusicWork
from scoretool.plans import Settings
from scoretool.specs import ModelSpec, Sampling

from .conftest import ROOT, SAMPLES, SHARED_MEDIA
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


def preset_toml(name, guidance):
    return (f'name = "{name}"\ndescription = "for a test"\ngenre = "ambient"\nmood = "calm"\n'
            f'instruments = ["piano"]\ntempo = "slow"\n\n[generation]\nguidance_scale = {guidance}\n')


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


# --------------------------------------------------------------------------- the import graph


def test_batch_is_in_no_import_cycle_and_only_the_cli_imports_it():
    from tools.import_graph import cycles, graph

    edges = graph()
    assert [c for c in cycles(edges) if any(m.startswith("scoretool.batch") for m in c)] == []
    importers = {m for m, targets in edges.items() if not m.startswith("scoretool.batch")
                 and any(t == "scoretool.batch" or t.startswith("scoretool.batch.") for t in targets)}
    assert importers == {"scoretool.cli.batch"}
    assert not (ROOT / "scoretool" / "batch.py").exists() and not (ROOT / "scoretool" / "batch_ray.py").exists()


# --------------------------------------------------------------------------- the model server


def eventually(condition, seconds=30):
    """Wait for another thread to reach a state the test can observe (bounded)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def counting_loader():
    """The default loader, counting what it loads."""
    loads = Counter()

    def loader(kind, spec):
        loads[kind, spec] += 1
        return load_model(kind, spec)

    return loader, loads


@pytest.fixture
def specs(tiny_models):
    return {kind: ModelSpec(str(tiny_models[name]), "cpu", "fp32") for kind, name in (("music", "musicgen"), ("caption", "blip"))}


def queue_up(server, pool, calls):
    """Submit each (function, *args) from a worker thread, in order, each queued before the next."""
    futures = []
    for call in calls:
        futures.append(pool.submit(*call))
        eventually(lambda: server.waiting() == len(futures))
    return futures


def test_the_model_server_gathers_clips_and_isolates_a_failing_one(specs):
    loader, loads = counting_loader()
    server = ModelServer(CpuSlots(2), music_batch=8, linger=0, inline=True, loader=loader)
    spec, sampling = specs["music"], Sampling()
    model = server.generator(spec)  # this thread serves: it loads at once
    two, three = MusicWork(["rain", "drums"], [0.4, 0.4], [1, 2]), MusicWork(["piano", "bass", "harp"], [0.3] * 3, [3, 4, 5])
    bad = MusicWork(["x", "y"], [0.4], [6])  # one duration for two prompts: the real generate refuses it
    with ThreadPoolExecutor(3) as pool:
        futures = queue_up(server, pool, [(server.generate, spec, sampling, w) for w in (two, bad, three)])
        assert server.serve(timeout=0)
        # One gathered call for the three clips; it fails, so each is retried alone and only the bad one fails.
        assert server.calls == [("music", 3, 7), ("music", 1, 2), ("music", 1, 2), ("music", 1, 3)]
        with pytest.raises(ValueError, match="same length"):
            futures[1].result()
        assert [c.shape[0] for c in futures[2].result()] == [round(0.3 * model.sample_rate)] * 3
        assert len(futures[0].result()) == 2

        # Gathered into one call, each clip's music is what it would be alone (the same tokens; the
        # batched float arithmetic may differ in the last bits).
        server.calls.clear()
        futures = queue_up(server, pool, [(server.generate, spec, sampling, w) for w in (two, three)])
        assert server.serve(timeout=0) and server.calls == [("music", 2, 5)]
        for future, work in zip(futures, (two, three)):
            alone = model.generate(work.prompts, work.durations, work.seeds, sampling)
            assert all(np.allclose(a, b, rtol=0, atol=1e-5) for a, b in zip(future.result(), alone))
    assert loads == {("music", spec): 1}
    server.stop()


def test_one_generator_per_spec_and_music_gathered_only_with_equal_sampling(specs):
    loader, loads = counting_loader()
    server = ModelServer(CpuSlots(2), linger=0, inline=True, loader=loader)
    spec, usual, strong = specs["music"], Sampling(), Sampling(guidance_scale=12.0)
    shared = [SharedGenerator(server, spec) for _ in range(3)]  # three clips, one loaded model
    model = server.generator(spec)
    assert shared[0].sample_rate == model.sample_rate and shared[0].spec == spec and shared[0].steps([1.0]) is None
    work = MusicWork(["calm piano"], [0.4], [7])
    with ThreadPoolExecutor(3) as pool:
        futures = queue_up(server, pool, [(g.generate, work.prompts, work.durations, work.seeds, s)
                                          for g, s in zip(shared, (usual, strong, usual))])
        assert server.serve(timeout=0) and server.serve(timeout=0)
    assert server.calls == [("music", 2, 2), ("music", 1, 1)]  # the two at 3.0 together, then the one at 12.0
    assert loads == {("music", spec): 1}
    first, strongest, last = (f.result()[0] for f in futures)
    assert np.array_equal(first, last) and not np.array_equal(first, strongest)
    assert np.array_equal(strongest, model.generate(work.prompts, work.durations, work.seeds, strong)[0])
    server.stop()


def test_continue_from_and_captions_run_on_the_model_thread(specs):
    loader, loads = counting_loader()
    server = ModelServer(CpuSlots(2), linger=0, inline=True, loader=loader)
    generator, captioner = SharedGenerator(server, specs["music"]), SharedCaptioner(server, specs["caption"])
    rate = generator.sample_rate
    start = np.zeros((rate // 10, 1), np.float32)
    images = [Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")]
    with ThreadPoolExecutor(3) as pool:
        joined = queue_up(server, pool, [(generator.continue_from, "piano", start, 0.5, 3, Sampling())])[0]
        assert not joined.done()  # queued for the model thread, not run by the clip's thread
        assert server.serve(timeout=0) and server.calls == [("continue", 1, 1)]
        assert joined.result().shape == (rate // 10 + rate // 2, 1)

        server.calls.clear()
        pending = queue_up(server, pool, [(captioner.caption, images[:1]), (captioner.caption, images[1:])])
        assert server.serve(timeout=0) and server.calls == [("caption", 2, 3)]
        assert pending[0].result() + pending[1].result() == server.captioner(specs["caption"]).caption(images)
    assert loads == {("music", specs["music"]): 1, ("caption", specs["caption"]): 1}
    server.stop()


def test_cpu_slots_let_finishing_clips_go_first():
    slots = CpuSlots(1)
    slots.acquire()
    order = []

    def take(name, urgent):
        slots.acquire(urgent=urgent)
        order.append(name)
        slots.release()

    new = threading.Thread(target=take, args=("new clip", False))
    new.start()
    eventually(lambda: slots.waiting() == 1)
    finishing = threading.Thread(target=take, args=("finishing clip", True))
    finishing.start()
    eventually(lambda: slots.waiting() == 2)
    slots.release()
    new.join(10)
    finishing.join(10)
    assert order == ["finishing clip", "new clip"]


# --------------------------------------------------------------------------- a batch in this process


def test_presets_differing_only_in_guidance_share_one_generator_and_events_are_typed(tiny_models, tmp_path):
    presets, src, out = tmp_path / "presets", tmp_path / "in", tmp_path / "out"
    for folder in (presets, src, out):
        folder.mkdir()
    for name, guidance in (("soft", 2.0), ("hard", 9.0)):
        (presets / f"{name}.toml").write_text(preset_toml(name, guidance))
        make_clip(src / f"{name}.mp4", colours=("red", "blue"), seconds=2.5)
        (src / f"{name}.scoretool.toml").write_text(f'preset = "{name}"\n')
    (src / "broken.mp4").write_bytes(b"\0" * 4000)
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]),
                        bridge="offline", presets_dir=str(presets))
    loader, loads = counting_loader()
    executor = LocalExecutor(2, loader=loader)
    events = []
    executor.run(find_clips(str(src), str(out), fmt="wav"), settings, events.append, batch.BatchDisplay())

    assert sorted(kind for kind, _spec in loads.elements()) == ["caption", "music"]  # one of each, for both presets
    assert [clips for kind, clips, _ in executor.calls if kind == "music"] == [1, 1]  # never gathered
    by_clip = {}
    for event in events:
        by_clip.setdefault(event.clip.rel, []).append(event)
    assert {rel: [type(e) for e in es] for rel, es in by_clip.items()} == {
        rel: [ClipStarted, ClipFinished] for rel in ("broken.mp4", "hard.mp4", "soft.mp4")}
    for rel in ("hard.mp4", "soft.mp4"):
        done = by_clip[rel][1].result
        assert isinstance(done, ClipDone) and done.scenes >= 1
        assert done.sha256 == batch.file_sha256(out / rel.replace(".mp4", ".wav"))
    failed = by_clip["broken.mp4"][1].result
    assert isinstance(failed, ClipFailed) and "broken.mp4" in failed.error and "\n" not in failed.error
    assert failed.detail is None  # a user-facing error: no traceback
    soft, hard = (soundfile.read(out / f"{n}.wav")[0] for n in ("soft", "hard"))
    assert not np.array_equal(soft, hard)


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


def test_batch_with_a_preset_setting_guidance_makes_what_score_makes(tiny_models, tmp_path):
    """A preset's [generation] guidance reaches the music a batch makes (it used to generate at the
    batch's 3.0 while the plan and the clip cache recorded the preset's value, so a later `score
    --preset` got the batch's clip from the cache)."""
    presets, src = tmp_path / "presets", tmp_path / "in"
    presets.mkdir()
    src.mkdir()
    (presets / "wide-guidance.toml").write_text(preset_toml("wide-guidance", 12.0))
    clip = make_clip(src / "a.mp4", colours=("red", "blue"), seconds=2)
    common = ["--preset", "wide-guidance", "--presets-dir", presets, "-q",
              "--caption-model", tiny_models["blip"], "--music-model", tiny_models["musicgen"]]
    cache = tmp_path / "cache"
    done = scoretool("batch", src, "-o", tmp_path / "out", "--format", "wav", "--cache-dir", cache, *common)
    assert done.returncode == 0, done.stderr
    fresh = scoretool("score", clip, "-o", tmp_path / "fresh.wav", "--no-cache", *common)
    assert fresh.returncode == 0, fresh.stderr
    from_cache = scoretool("score", clip, "-o", tmp_path / "cached.wav", "--cache-dir", cache, *common)
    assert from_cache.returncode == 0, from_cache.stderr
    expected = soundfile.read(tmp_path / "fresh.wav")[0]
    assert np.array_equal(soundfile.read(tmp_path / "out" / "a.wav")[0], expected)
    assert np.array_equal(soundfile.read(tmp_path / "cached.wav")[0], expected)


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

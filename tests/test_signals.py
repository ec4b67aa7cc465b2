"""Ctrl-C and SIGTERM at each stage of `score`, `plan` and `render`, sent to the real command.

Each run waits until its stage has begun (the ffmpeg child of that stage is running, or the stage's
row is on the progress display of a terminal), then sends the signal, and checks: exit 130 / 143,
one line and no traceback, no output, no temp file in the output folder, no temp folder in the
TMPDIR it was given, no ffmpeg child still alive, the input unchanged. A run killed outright
(SIGKILL) leaves its temp files; the next run into the same folder removes them.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import SHARED_MEDIA, needs_shared_media
from .helpers import file_md5

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches the processes through /proc")

CLIP = SHARED_MEDIA / "clip_01_tears_of_steel.mp4"  # 10 s, 3 scenes
LINES = {signal.SIGINT: "Interrupted (Ctrl-C).", signal.SIGTERM: "Terminated (SIGTERM)."}
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
TORCH_CACHE = "torchinductor_"  # torch's own persistent cache folder, made in TMPDIR by any run
STAGE_TIMEOUT = 120  # seconds; only reached if the run never gets to its stage (a failure)


class Run:
    """`python -m scoretool ARGS` in `work` (its own TMPDIR), stderr on a pipe or on a pseudo-terminal."""

    def __init__(self, work: Path, args: list, *, terminal: bool = False):
        self.work, self.tmpdir = work, work / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmpdir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "120",
               "PYTHONFAULTHANDLER": "1"}  # a run that hangs shows its threads' stacks when aborted (finish)
        self.text, self._reader = "", None
        if terminal:  # a person's terminal: scoretool draws one progress row per stage
            master, slave = pty.openpty()
            self.proc = subprocess.Popen(self._cmd(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                                         env=env, cwd=work)
            os.close(slave)
            self._reader = threading.Thread(target=self._read_terminal, args=(master,), daemon=True)
            self._reader.start()
        else:
            self.proc = subprocess.Popen(self._cmd(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=env, cwd=work)

    @staticmethod
    def _cmd(args):
        return [sys.executable, "-m", "scoretool", *map(str, args)]

    def _read_terminal(self, master: int) -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            self.text += data.decode("utf-8", "replace")
        os.close(master)

    def shown(self) -> str:
        """What the terminal shows so far, without its control sequences."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.text).replace("\r", "\n")

    def wait_until(self, ready, what: str) -> None:
        deadline = time.monotonic() + STAGE_TIMEOUT
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended (exit {self.proc.returncode}) before {what}:\n{self.finish()[1]}")
            assert time.monotonic() < deadline, f"no {what} after {STAGE_TIMEOUT} s"
            time.sleep(0.01)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """(exit status, stderr) once the run has ended; a run still going after `timeout` is aborted
        and the test fails with where its threads were."""
        try:
            _, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            _, stderr = self.proc.communicate(timeout=30)
            stacks = self.shown() if self._reader else stderr.decode("utf-8", "replace")
            pytest.fail(f"the run did not end {timeout} s after the signal; it was at:\n{stacks[-6000:]}")
        if self._reader:
            self._reader.join(timeout=10)
            return self.proc.returncode, self.shown()
        return self.proc.returncode, stderr.decode("utf-8", "replace")


def ffmpeg_children(marker: str) -> dict[int, bytes]:
    """Live ffmpeg processes whose command line contains `marker` (a path only this test uses): pid -> command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = b" ".join(argv)
        if os.path.basename(argv[0]).startswith(b"ffmpeg") and marker.encode() in command:
            found[int(entry)] = command
    return found


def decoding(run: Run):
    """The analysis decode's ffmpeg is running (it pipes frames to scene detection)."""
    return lambda: any(b"yuv4mpegpipe" in command for command in ffmpeg_children(str(run.tmpdir)).values())


def muxing(output: Path):
    """ffmpeg is writing the output's temp file."""
    return lambda: bool(ffmpeg_children(f"{output.parent}/.{output.stem}.tmp-"))


def handles_sigterm(run: Run):
    """scoretool's own signal handling is installed (the kernel lists SIGTERM as caught)."""

    def ready() -> bool:
        try:
            status = Path(f"/proc/{run.proc.pid}/status").read_text()
        except OSError:
            return False
        caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status)[1], 16)
        return bool(caught & (1 << (signal.SIGTERM - 1)))

    return ready


def on_display(run: Run, stage: str):
    """The stage's row is on the progress display."""
    return lambda: re.search(rf"(?m)^\W*{re.escape(stage)}\s{{2,}}", run.shown()) is not None


def leftovers(folder: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep and not p.name.startswith(TORCH_CACHE))


def assert_stopped_clean(run: Run, signum: int, output: Path, keep=()) -> None:
    code, stderr = run.finish()
    assert code == CODES[signum], stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1] == LINES[signum], stderr
    if run._reader is None:  # on a pipe there is no progress display: the line is all there is
        assert lines == [LINES[signum]], stderr
    assert not output.exists()
    assert leftovers(output.parent, *keep) == [], "temp files left beside the output"
    assert leftovers(run.tmpdir) == [], "temp folders left in TMPDIR"
    assert not ffmpeg_children(str(run.work)), "an ffmpeg child outlived the run"


@pytest.fixture(scope="module")
def rendered(tiny_models, tmp_path_factory):
    """A plan of the clip, and a cache holding its captions and music (so `render` goes straight to the mix)."""
    work = tmp_path_factory.mktemp("rendered")
    models = ["--caption-model", tiny_models["blip"], "--music-model", tiny_models["musicgen"]]
    cache = work / "cache"
    for args in (["plan", CLIP, "-o", work / "clip.plan.json", *models, "--cache-dir", cache],
                 ["render", work / "clip.plan.json", "-o", work / "warm.mkv", "--cache-dir", cache]):
        code, stderr = Run(work, args).finish(timeout=300)
        assert code == 0, stderr
    shutil.rmtree(work / "tmp")
    return {"plan": work / "clip.plan.json", "cache": cache, "models": models}


def _fresh(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


@needs_shared_media
@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("command", ["score", "plan"])
def test_signal_during_the_analysis_decode(rendered, tmp_path, command, signum):
    output = _fresh(tmp_path) / ("out.mp4" if command == "score" else "out.plan.json")
    before = file_md5(CLIP)
    run = Run(tmp_path, [command, CLIP, "-o", output, *rendered["models"], "--no-cache"])
    run.wait_until(decoding(run), "the decode's ffmpeg")
    run.proc.send_signal(signum)
    assert_stopped_clean(run, signum, output)
    assert file_md5(CLIP) == before


@needs_shared_media
@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("stage", ["captions", "music"])
def test_signal_during_a_model_stage(rendered, tmp_path, signum, stage):
    """captions: `score` of the clip; music: `render` of its plan (its progress row shows the stage)."""
    output = _fresh(tmp_path) / ("out.mp4" if stage == "captions" else "out.mkv")
    if stage == "captions":
        args = ["score", CLIP, "-o", output, *rendered["models"], "--no-cache"]
    else:
        args = ["render", rendered["plan"], "-o", output, "--no-cache"]
    run = Run(tmp_path, args, terminal=True)
    run.wait_until(on_display(run, stage), f"the {stage} stage")
    run.proc.send_signal(signum)
    assert_stopped_clean(run, signum, output)


@needs_shared_media
@pytest.mark.parametrize("signum", SIGNALS)
def test_signal_during_the_mux(rendered, tmp_path, signum):
    output = _fresh(tmp_path) / "out.mkv"
    run = Run(tmp_path, ["render", rendered["plan"], "-o", output, "--cache-dir", rendered["cache"]])
    run.wait_until(muxing(output), "the mux's ffmpeg")
    run.proc.send_signal(signum)
    assert_stopped_clean(run, signum, output)


@needs_shared_media
@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_signal_while_starting(tiny_models, tmp_path, signum, delay):
    """From the moment scoretool's handlers are in (milliseconds after start), through the imports
    of the pipeline (half a second or more): one line all the same. (Before that, in Python's own
    start-up, SIGTERM ends the process as the kernel does and Ctrl-C is Python's.)"""
    output = _fresh(tmp_path) / "out.mp4"
    run = Run(tmp_path, ["score", CLIP, "-o", output, "--caption-model", tiny_models["blip"],
                         "--music-model", tiny_models["musicgen"], "--no-cache"])
    run.wait_until(handles_sigterm(run), "scoretool's signal handlers")
    time.sleep(delay)
    run.proc.send_signal(signum)
    assert_stopped_clean(run, signum, output)


@needs_shared_media
def test_a_killed_runs_leftovers_are_removed_by_the_next_run(rendered, tmp_path):
    folder = _fresh(tmp_path)
    output = folder / "out.mkv"
    args = ["render", rendered["plan"], "-o", output, "--cache-dir", rendered["cache"]]
    run = Run(tmp_path, args)
    run.wait_until(muxing(output), "the mux's ffmpeg")
    run.proc.kill()  # no cleanup at all
    run.finish()
    stranded = leftovers(folder)
    assert stranded and all(name.startswith(".out.tmp-w") for name in stranded)
    for pid in ffmpeg_children(str(tmp_path)):  # the orphaned ffmpeg may still be writing; it is ours to stop
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    code, stderr = Run(tmp_path, args).finish(timeout=300)
    assert code == 0, stderr
    assert leftovers(folder) == ["out.mkv"]


@needs_shared_media
def test_a_killed_decodes_frames_folder_is_removed_by_the_next_run(rendered, tmp_path):
    output = _fresh(tmp_path) / "out.plan.json"
    args = ["plan", CLIP, "-o", output, *rendered["models"], "--cache-dir", rendered["cache"]]
    run = Run(tmp_path, args)
    run.wait_until(decoding(run), "the decode's ffmpeg")
    run.proc.kill()
    run.finish()
    deadline = time.monotonic() + 30
    while ffmpeg_children(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the orphan ends on its own: nobody reads its pipe any more
    assert [n for n in leftovers(run.tmpdir) if n.startswith("scoretool-frames-w")]

    code, stderr = Run(tmp_path, args).finish(timeout=300)
    assert code == 0, stderr
    assert leftovers(run.tmpdir) == []


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("ending", ["swallowed", "another error in the cleanup"])
def test_an_interrupt_is_never_lost(tmp_path, ending):
    """A KeyboardInterrupt some code swallows, or one a cleanup's own error replaces, still ends the
    command with 130; a temp folder only the garbage collector would remove is removed first."""
    handler = "pass" if ending == "swallowed" else "raise RuntimeError('ffmpeg was killed')"
    code = f"""
import os, signal, tempfile, time
from scoretool import interrupts

def work():
    folder = tempfile.TemporaryDirectory(prefix="held-")  # closed by no `with`: collected on the way out
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:
        {handler}
    print("went on", flush=True)

interrupts.handled(work)
print("not reached")
"""
    proc = _python(code, tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "Interrupted (Ctrl-C).\n"
    assert "not reached" not in proc.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("held-")]


def test_the_sweep_removes_only_what_dead_writers_left(tmp_path):
    """Names carry pid, start time and host: a live writer's file (this process's, or a sleeping
    child's) stays; one whose writer has exited goes; one from another host stays until stale."""
    from scoretool import files

    sleeper = subprocess.Popen(["sleep", "60"])
    finished = subprocess.Popen(["true"])
    finished.wait()
    try:
        def name(pid: int, start: int | None, host: str = files._HOST, rand: str = "abcd1234") -> str:
            return f".out.tmp-w{pid}-{start or 0}-{host}-{rand}.mp4"

        live = [name(os.getpid(), files._process_start(os.getpid())),
                name(sleeper.pid, files._process_start(sleeper.pid))]
        dead = [name(finished.pid, 12345), name(sleeper.pid, 1, rand="reusedpi")]  # gone; a reused pid
        foreign, stale = name(1, 1, host="0" * 8), name(1, 1, host="0" * 8, rand="stale000")
        other = ".out.tmp-somebody-elses.mp4"
        for n in [*live, *dead, foreign, stale, other]:
            (tmp_path / n).write_bytes(b"x")
        os.utime(tmp_path / stale, (0, 0))
        (tmp_path / f"scoretool-frames-w{finished.pid}-7-{files._HOST}-abcd1234").mkdir()

        removed = files.sweep(str(tmp_path))
        assert sorted(os.path.basename(p) for p in removed) == sorted(
            [*dead, stale, f"scoretool-frames-w{finished.pid}-7-{files._HOST}-abcd1234"])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*live, foreign, other])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_signal_waits_for_the_end_of_a_deferred_step(tmp_path):
    """Starting a child is one step: a signal during it is raised once the child is held."""
    code = """
import os, signal, time
from scoretool import interrupts

def work():
    with interrupts.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        print("step finished", flush=True)
    print("not reached", flush=True)

interrupts.handled(work)
"""
    proc = _python(code, tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (143, "step finished\n", "Terminated (SIGTERM).\n")


def test_a_signal_that_lands_in_a_finalizer_still_stops_the_work(tmp_path):
    """An exception raised inside `__del__` is lost (printed as "Exception ignored"): the signal is
    delivered again outside it, so the work stops, cleans up and prints only its line."""
    marker = tmp_path / "finished"
    script = f"""
import os, signal, time
from scoretool import interrupts
interrupts.install()

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(200000):  # the handler runs here, inside the finalizer
            pass

def work():
    Finalized()
    time.sleep(3)
    open({str(marker)!r}, "w").write("done")

interrupts.handled(work)
"""
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=root)
    assert run.returncode == 143, run.stderr
    assert run.stderr.strip() == "Terminated (SIGTERM).", run.stderr
    assert not marker.exists()


def test_a_signal_that_lands_in_the_import_machinery_waits_until_it_is_out(tmp_path):
    """Raised inside importlib, the exception can be lost (its module-lock callback) and leave an
    import lock held, which a model-loading thread then waits on for ever (seen: `plan` + SIGINT
    during the analysis decode, once in 36 runs). The signal is delivered again once out of it."""
    marker = tmp_path / "finished"
    script = f"""
import os, signal, sys, time
from scoretool import interrupts
interrupts.install()

class Finder:
    def find_spec(self, name, path, target=None):
        if name == "no_such_module_here":  # the handler, as if the signal landed in importlib's frame
            interrupts._raise(signal.SIGTERM, sys._getframe(1))
        return None

def work():
    sys.meta_path.insert(0, Finder())
    try:
        import no_such_module_here
    except ImportError:
        print("import ran to its end")
    time.sleep(3)
    open({str(marker)!r}, "w").write("done")

interrupts.handled(work)
"""
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=root)
    assert (run.returncode, run.stdout, run.stderr) == (143, "import ran to its end\n", "Terminated (SIGTERM).\n")
    assert not marker.exists()


def test_a_lost_interrupt_ends_the_wait_for_a_model_and_any_new_stage(monkeypatch):
    """A Ctrl-C whose KeyboardInterrupt went astray (a bare `except` in a library, an import it cut in
    two, which can leave that module's import lock held while a loading thread waits on it) must not
    leave the main thread waiting for that load for ever, nor starting new stages."""
    from scoretool import interrupts
    from scoretool.progress import Reporter
    from scoretool.specs import Loaded, ModelSpec

    never = threading.Event()
    loads = Loaded(lambda spec: never.wait())
    spec = ModelSpec("m", "cpu")
    loads.preload(spec)
    interrupts.raise_if_requested()  # nothing received: nothing raised
    with Reporter().stage("captions"):
        pass
    monkeypatch.setattr(interrupts, "_received", [signal.SIGINT])
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        loads(spec)
    assert time.monotonic() - started < 5
    monkeypatch.setattr(interrupts, "_received", [signal.SIGTERM])
    with pytest.raises(interrupts.Terminated), Reporter().stage("music"):
        pass
    never.set()

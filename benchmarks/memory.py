"""Peak memory by video length: `scoretool score` on synthetic long videos with the tiny models.

    .venv/bin/python benchmarks/memory.py [--minutes 1 10 60] [--json memory.json]
    .venv/bin/python benchmarks/memory.py --code /tmp/old-checkout --minutes 1 10   # another tree's code

Each input is made with ffmpeg: a tiny still picture (64x36, 1 fps, H.264) and mono sound (a sine
over noise, AAC), so decoding and scene detection cost little and the audio stages dominate. The
picture never changes, so the scenes are the `--max-scene` splits, `--scene` seconds (7.5 by
default: a 1-minute video is 8 scenes, one MusicGen call of 8 as every call of a longer video is,
so the runs differ in length only; with 60 s scenes the 1-minute video is one scene generated
alone, while longer ones decode 8 at once, which costs more memory but no more with length). Each `score` runs in its own subprocess (tiny random models from
scoretool.testing, offline bridge, no cache, the default ducking under the original sound); its
peak RSS is the child's `ru_maxrss` from wait4. Prints a table, the ratio of the longest to the
shortest and a linear projection to 2 hours; `--json` writes the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoretool.media.ffmpeg import ffmpeg_exe  # noqa: E402



def make_input(path: Path, minutes: float) -> Path:
    """A still 64x36 picture at 1 fps with a 440 Hz sine over quiet noise, mono 44.1 kHz AAC."""
    if path.is_file():
        return path
    seconds = f"{minutes * 60:g}"
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    subprocess.run([
        ffmpeg_exe(), "-v", "error", "-y",
        "-f", "lavfi", "-i", f"color=c=gray:s=64x36:r=1:d={seconds}",
        "-f", "lavfi", "-i", f"sine=f=440:r=44100:d={seconds}",
        "-f", "lavfi", "-i", f"anoisesrc=r=44100:a=0.02:d={seconds}",
        "-filter_complex", "[1:a][2:a]amix=inputs=2:normalize=0[a]",
        "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-g", "600",
        "-c:a", "aac", "-b:a", "64k", "-ac", "1", "-t", seconds, str(tmp),
    ], check=True)  # fmt: skip
    os.replace(tmp, path)
    return path


def run_one(video: Path, out: Path, tiny: Path, code: Path, scene: float) -> dict:
    """One `score` in a subprocess: its peak RSS (wait4's ru_maxrss) and wall time.

    A child started by vfork/exec starts its ru_maxrss at its parent's high-water mark, so this
    process stays small (12 MB: no torch here; the tiny models are built by a subprocess)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(code))
    args = [sys.executable, "-m", "scoretool", "score", str(video), "-o", str(out),
            "--caption-model", str(tiny / "blip"), "--music-model", str(tiny / "musicgen"),
            "--bridge", "offline", "--no-cache", "--max-scene", f"{scene:g}", "-q", "--json"]  # fmt: skip
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        # cwd is the tree run: `python -m` puts the working folder first on sys.path.
        child = subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr, cwd=str(code))
        _, status, usage = os.wait4(child.pid, 0)  # reaped here, so the child's own rusage is ours
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"score failed on {video.name}: {stderr.read().decode()[-2000:]}")
        summary = json.loads(stdout.read())
    return {"wall_s": round(wall, 1), "scenes": len(summary["scenes"]), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "timings": summary.get("timings", {})}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--code", type=Path, default=ROOT, help="the scoretool tree to run (default: this one)")
    parser.add_argument("--work", type=Path, help="where inputs and tiny models are kept (default: a temp folder)")
    parser.add_argument("--scene", type=float, default=7.5, help="seconds per scene (--max-scene)")
    parser.add_argument("--json", type=Path, help="write the results here")
    options = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="scoretool-memory-") as tmp:
        work = options.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        tiny = work / "tiny"
        if not (tiny / "musicgen").is_dir():  # in a subprocess: see run_one
            subprocess.run([sys.executable, "-m", "scoretool.testing", "make-tiny", str(tiny)], check=True, cwd=ROOT)
        rows = []
        for minutes in options.minutes:
            video = make_input(work / f"long_{minutes:g}min.mp4", minutes)
            out = Path(tmp) / f"scored_{minutes:g}min.mp4"
            row = {"minutes": minutes, **run_one(video, out, tiny, options.code.resolve(), options.scene)}
            out.unlink(missing_ok=True)
            rows.append(row)
            print(f"{minutes:6g} min  {row['scenes']:4d} scenes  peak RSS {row['peak_rss_mb']:8.1f} MB  {row['wall_s']:7.1f} s",
                  flush=True)
    report = {"code": str(options.code.resolve()), "scene_seconds": options.scene, "rows": rows}
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        slope = (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["minutes"] - first["minutes"])
        report["ratio_longest_to_shortest"] = round(last["peak_rss_mb"] / first["peak_rss_mb"], 3)
        report["projected_120min_mb"] = round(last["peak_rss_mb"] + slope * (120 - last["minutes"]), 1)
        print(f"ratio {last['minutes']:g}/{first['minutes']:g} min: {report['ratio_longest_to_shortest']:.2f}x; "
              f"2 hours projected (linear): {report['projected_120min_mb']:.0f} MB")
    if options.json:
        options.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

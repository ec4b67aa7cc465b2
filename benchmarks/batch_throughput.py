"""Throughput of `scoretool batch` against `scoretool score` run once per clip, in one run.

    .venv/bin/python benchmarks/batch_throughput.py [--repeat 2] [--jobs 2] [--ray]

Six clips (the three shared MP4 clips when ../shared/media is there, plus synthetic ones with hard
cuts), tiny random models (scoretool.testing), every command a real subprocess. The two ways
alternate `--repeat` times so that a noisy machine hurts both alike. Prints the wall times, the ratio,
and checks every output's video stream is bit-identical to its input's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import make_clip, video_packets_md5  # noqa: E402

SHARED = Path(os.environ.get("SCORETOOL_SHARED_MEDIA", ROOT.parent / "shared" / "media"))


def clips(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("clip_01_tears_of_steel.mp4", "clip_02_caminandes.mp4", "bigbuckbunny.mp4"):
        if (SHARED / name).is_file():
            shutil.copy(SHARED / name, folder / name)
            out.append(folder / name)
    palettes = [("red", "green", "blue"), ("white", "black"), ("yellow", "purple", "orange"), ("gray", "navy"),
                ("pink", "teal", "olive"), ("cyan", "maroon")]
    for i, colours in enumerate(palettes[: 6 - len(out)]):
        out.append(make_clip(folder / f"synthetic {i + 1}.mp4", colours=colours, seconds=2.5, size="320x240"))
    return out


def run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scoretool", *args], check=False, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also time the batch on a local Ray cluster (ray start)")
    options = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from scoretool.testing import make_tiny

    work = Path(tempfile.mkdtemp(prefix="scoretool-bench-"))
    models = make_tiny(work / "tiny")
    # No cache: each way must compute everything (the cache would serve the second from the first).
    model_args = ["--caption-model", str(models["blip"]), "--music-model", str(models["musicgen"]), "-q", "--no-cache"]
    inputs = clips(work / "in")
    print(f"{len(inputs)} clips: {', '.join(p.name for p in inputs)}; cpus {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    one_by_one, batched, ray_times = [], [], []
    for r in range(options.repeat):
        single = work / f"single{r}"
        single.mkdir()
        one_by_one.append(sum(run(["score", str(p), "-o", str(single / p.name), *model_args]) for p in inputs))
        batched.append(run(["batch", str(work / "in"), "-o", str(work / f"batch{r}"), "-j", str(options.jobs),
                            "--report", str(work / f"batch{r}.json"), *model_args]))
        print(f"round {r + 1}: one by one {one_by_one[-1]:.1f} s, batch {batched[-1]:.1f} s, "
              f"ratio {one_by_one[-1] / batched[-1]:.2f}x", flush=True)
        for p in inputs:
            for out in (single / p.name, work / f"batch{r}" / p.name):
                assert video_packets_md5(out) == video_packets_md5(p), out
    if options.ray:
        ray_bin = Path(sys.executable).parent / "ray"
        temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        os.environ["RAY_AUTH_MODE"] = "disabled"  # for the cluster and the driver alike (a local throwaway cluster)
        head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--port", "0", "--num-cpus", "2",
                                 "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            address = _wait_for_address(head)
            ray_times.append(run(["batch", str(work / "in"), "-o", str(work / "ray"), "--ray", address,
                                  "-j", str(options.jobs), "--report", str(work / "ray.json"), *model_args]))
            report = json.loads((work / "ray.json").read_text())
            print(f"ray ({address}): {ray_times[-1]:.1f} s, totals {report['totals']}", flush=True)
        finally:
            head.terminate()
            head.wait(60)
            shutil.rmtree(temp, ignore_errors=True)
    total_single, total_batch = sum(one_by_one), sum(batched)
    report = json.loads((work / "batch0.json").read_text())
    print(json.dumps({
        "clips": len(inputs), "jobs": options.jobs, "one_by_one_s": [round(t, 1) for t in one_by_one],
        "batch_s": [round(t, 1) for t in batched], "ratio": round(total_single / total_batch, 2),
        "ray_s": [round(t, 1) for t in ray_times], "batch_totals": report["totals"],
    }))
    shutil.rmtree(work, ignore_errors=True)


def _wait_for_address(head: subprocess.Popen, timeout: float = 120) -> str:
    import re

    deadline = time.monotonic() + timeout
    for line in head.stdout:
        m = re.search(r"ray start --address='([^']+)'", line)
        if m:
            return m.group(1)
        if time.monotonic() > deadline:
            break
    raise RuntimeError("ray start did not print its address")


if __name__ == "__main__":
    main()

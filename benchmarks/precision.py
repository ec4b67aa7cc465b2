#!/usr/bin/env python3
"""The whole pipeline at each `--precision`, with real-shape models, in one run.

    python benchmarks/precision.py --out bench-out/precision.json            # ~10 min on 2 CPU cores
    python benchmarks/precision.py --quick --out bench-out/precision-quick.json

Runs `scoretool score INPUT --prompt ... --bridge offline --no-cache --json --caption-model BLIP
--music-model MUSICGEN --precision P` for each P (fp32, bf16, int8, auto, and `int8-fbgemm`: int8
with SCORETOOL_INT8_KERNEL=0, fbgemm's kernels only), each in a subprocess of its own, with the musicgen-small- and blip-base-shaped random-weight folders of benchmarks/shapes.py
(built once, then reused). Per run: the stage timings `--json` reports (models loading, captions,
music, ...), the whole run's wall time, peak RSS (the child's own `ru_maxrss`, from `os.wait4`),
and which precision each model really ran in (and why). Ratios are fp32's time over each
precision's, from the same run. With `--reps N` the precisions run interleaved N times and each
stage keeps its best time: the machine is shared, so ratios from one run are what to compare.

`--quick`: the first 4 s of the input, one rep.
The runs share one scoretool cache folder that starts empty (`--no-cache` leaves captions and clips
out of it, not the int8 store): the first run in int8 quantizes the models and keeps their int8
layers ("cold"), later ones load them ("warm"), as a user's first and later runs do.
The parts that cannot run yet (a precision the CLI refuses, say) are recorded with their error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from shapes import DEFAULT_CACHE, build_folders  # noqa: E402
from scoretool.media.ffmpeg import ffmpeg_exe  # noqa: E402

PRECISIONS = ("fp32", "bf16", "int8", "int8-fbgemm", "auto")
# Runs that are a precision with something turned off: name -> (--precision, environment)
VARIANTS = {"int8-fbgemm": ("int8", {"SCORETOOL_INT8_KERNEL": "0"})}  # int8 without the few-row int8 kernel
PROMPT = "warm cinematic strings, 90 BPM"
WHOLE = "whole run"  # the wall time of the subprocess, next to --json's own stage timings
QUICK_SECONDS = 4.0


def scoretool_command(input_path: Path, output: Path, folders: dict[str, Path], precision: str) -> list[str]:
    return [
        sys.executable, "-m", "scoretool", "score", str(input_path), "-o", str(output),
        "--prompt", PROMPT, "--bridge", "offline", "--no-cache", "--json", "-q",
        "--caption-model", str(folders["blip"]), "--music-model", str(folders["musicgen"]),
        "--precision", precision,
    ]  # fmt: skip


def run_once(command: list[str], log: Path, cache_dir: Path, extra_env: dict | None = None) -> dict:
    """One scoretool run: its `--json` summary, wall time and peak RSS (MiB)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", SCORETOOL_CACHE_DIR=str(cache_dir))
    env.update(extra_env or {})
    started = time.perf_counter()
    with open(log, "wb") as err, tempfile.TemporaryFile() as out:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not every child's so far
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    entry = {"rc": child.returncode, "wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024)}
    if child.returncode != 0:
        entry["error"] = _last_line(log)
        return entry
    summary = json.loads(stdout)
    entry["timings"] = {**summary["timings"], WHOLE: round(wall, 3)}
    entry["models"] = summary.get("models", {})
    return entry


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def best(runs: list[dict]) -> dict:
    """The best time of each stage over the successful reps of one precision, the largest peak RSS."""
    ok = [r for r in runs if r["rc"] == 0]
    if not ok:
        return {"error": runs[-1].get("error", "failed"), "rc": runs[-1]["rc"]}
    stages = {stage for r in ok for stage in r["timings"]}
    return {
        "timings": {s: min(r["timings"][s] for r in ok if s in r["timings"]) for s in sorted(stages)},
        "peak_rss_mib": max(r["peak_rss_mib"] for r in ok),
        "models": ok[-1]["models"],
        "int8_store": sorted({r["int8_store"] for r in ok}),
        "reps": len(ok),
    }


def ratios(results: dict) -> dict:
    """fp32's time over each precision's, per stage (above 1: faster than fp32)."""
    reference = results.get("fp32", {}).get("timings")
    if not reference:
        return {}
    out = {}
    for precision, entry in results.items():
        if precision == "fp32" or "timings" not in entry:
            continue
        mine = entry["timings"]
        out[precision] = {s: round(reference[s] / mine[s], 2) for s in reference if mine.get(s)}
    return out


def cut_clip(source: Path, seconds: float, folder: Path) -> Path:
    """The first `seconds` of `source`, re-encoded so the cut is exact."""
    clip = folder / f"first-{seconds:g}s{source.suffix}"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-t", f"{seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def table(data: dict) -> str:
    results, rel = data["results"], data["ratios"]
    stages = sorted({s for e in results.values() for s in e.get("timings", {})}, key=lambda s: (s == WHOLE, s))
    head = f"{'precision':<10} {'ran (caption / music)':<32} " + " ".join(f"{s[:18]:>18}" for s in stages) + f" {'peak RSS':>9}"
    lines = [head, "-" * len(head)]
    for precision, entry in results.items():
        if "timings" not in entry:
            lines.append(f"{precision:<10} failed: {entry.get('error')}")
            continue
        models = entry["models"]
        ran = f"{models.get('caption', {}).get('precision', '?')} / {models.get('music', {}).get('precision', '?')}"
        if "int8" in ran:
            ran += f" ({'/'.join(entry['int8_store'])})"
        cells = []
        for s in stages:
            t, ratio = entry["timings"].get(s), rel.get(precision, {}).get(s)
            cells.append(("-" if t is None else f"{t:.1f}s") + (f" ({ratio:.2f}x)" if ratio else ""))
        lines.append(f"{precision:<10} {ran:<32} " + " ".join(f"{c:>18}" for c in cells) + f" {entry['peak_rss_mib']:>5} MiB")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=ROOT / "samples" / "tears_of_steel.mp4")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=1, help="interleaved rounds; each stage keeps its best")
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK_SECONDS:g} s of the input, one rep")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where benchmarks/shapes.py keeps its folders")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "precision.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    precisions = [p for p in args.precisions.split(",") if p]
    folders = build_folders(args.cache)
    with tempfile.TemporaryDirectory(prefix="scoretool-precision-") as tmp:
        return _run(args, precisions, folders, Path(tmp))


def _run(args, precisions, folders, work: Path) -> int:
    clip = cut_clip(args.input, QUICK_SECONDS, work) if args.quick else args.input
    reps = 1 if args.quick else args.reps
    import torch

    data = {
        "meta": {"input": str(clip), "reps": reps, "quick": args.quick, "folders": {k: str(v) for k, v in folders.items()},
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
                 "command": " ".join(scoretool_command(clip, Path("OUT.mp4"), folders, "P"))},
        "runs": {p: [] for p in precisions}, "variants": {p: VARIANTS[p] for p in precisions if p in VARIANTS},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(reps):
        for precision in precisions:
            print(f"[rep {rep + 1}/{reps}] --precision {precision} ...", flush=True)
            flag, extra_env = VARIANTS.get(precision, (precision, {}))
            command = scoretool_command(clip, work / f"out-{precision}.mp4", folders, flag)
            # The int8 store starts empty: the first int8 run quantizes (cold), later ones load it (warm).
            warm = any((work / "cache" / "int8").glob("*.safetensors"))
            entry = run_once(command, work / f"{precision}-{rep}.log", work / "cache", extra_env)
            entry["int8_store"] = "warm" if warm else "cold"
            print(f"  {entry.get('error') or entry['timings']}  peak {entry['peak_rss_mib']} MiB", flush=True)
            data["runs"][precision].append(entry)
            data["results"] = {p: best(r) for p, r in data["runs"].items() if r}
            data["ratios"] = ratios(data["results"])
            args.out.write_text(json.dumps(data, indent=2))  # a run cut short still leaves its numbers
    print(table(data))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Scene detectors on the labelled set (tests/data/scene_set.json), all in one run.

    .venv/bin/python benchmarks/detection.py --out detection.json
    .venv/bin/python benchmarks/detection.py --kinds flash,motion --no-timing   # a quick look

Each clip of the set is built (tests/scene_clips.py, cached) and decoded once, by scoretool's own
analysis pass (frames at 256 px, as the pipeline sees them); every detector in
`scoretool.media.scenes.DETECTORS` then runs on those same frames. A found boundary matches a
label within +-2 frames (`--tolerance`; each label and each boundary at most once, nearest
first). The tables give, per detector and per kind of clip, precision, recall and F1 (precision is
1 where a detector found nothing); flash and motion clips have no labels, so there the number of
(false) boundaries is the score. One table for the whole set, one for its tuning clips (those the
combined detector's thresholds were chosen on) and one for the held-out ones. `--fps 30` or
`--fps 60` rebuilds the synthetic clips at that rate, as long in seconds.

Cost: the CPU time of each detector alone on the decoded frames (ms per frame), and, on a 1080p
H.264 clip made from real footage, `ffmpeg -i clip -f null -` (the bare decode) against
scoretool's whole analysis pass (one decode: 256 px frames to the detector, the caption grid to
disk) with each detector, interleaved, best of `--reps`: the ratios analysis / bare decode in wall
time and in CPU time (this process and ffmpeg), measured in the same run. On a shared, busy
machine the wall ratios are mostly noise; the CPU ratios much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scoretool.media.scenes import DEFAULT_DETECTOR, DETECTORS, cuts_in  # noqa: E402
from tests.scene_clips import at_rate, available, build, load_set  # noqa: E402

TOLERANCE = 2  # frames
NO_LABEL_KINDS = ("flash", "motion")


# ------------------------------------------------------------------------------------ frames


def decoded_frames(path: Path):
    """Every frame of `path` as the analysis pass gives it to scene detection, and the rate."""
    from scoretool.media.decode import AnalysisPass
    from scoretool.media.probe import probe

    frames = []
    with AnalysisPass(str(path), probe(str(path))) as decoded:
        while (frame := decoded.video.read()) is not False:
            frames.append(frame)
        return frames, decoded.fps


def frame_list_stream(frames: list, fps):
    """A PySceneDetect VideoStream over frames already in memory: every detector sees the same ones."""
    from scenedetect.common import FrameTimecode
    from scenedetect.video_stream import VideoStream

    class FrameList(VideoStream):
        BACKEND_NAME = "frame-list"

        def __init__(self) -> None:
            self._next = 0

        path = property(lambda self: "frames")
        name = property(lambda self: "frames")
        is_seekable = property(lambda self: False)
        frame_rate = property(lambda self: fps)
        aspect_ratio = property(lambda self: 1.0)
        frame_number = property(lambda self: self._next)
        position = property(lambda self: FrameTimecode(max(0, self._next - 1), fps=fps))
        position_ms = property(lambda self: max(0, self._next - 1) * 1000.0 / float(fps))
        duration = property(lambda self: FrameTimecode(len(frames), fps=fps))
        frame_size = property(lambda self: (frames[0].shape[1], frames[0].shape[0]))

        def read(self, decode: bool = True):
            if self._next >= len(frames):
                return False
            self._next += 1
            return frames[self._next - 1] if decode else True

        def reset(self) -> None:
            self._next = 0

        def seek(self, target) -> None:
            raise NotImplementedError

    return FrameList()


# ---------------------------------------------------------------------------------- matching


def match(found: list[int], labels: list[int], tolerance: int = TOLERANCE) -> tuple[list[int], list[int], list[int]]:
    """(matched labels, unmatched labels, unmatched boundaries): pairs within `tolerance`, nearest first."""
    pairs = sorted((abs(f - g), i, j) for i, f in enumerate(found) for j, g in enumerate(labels) if abs(f - g) <= tolerance)
    used_f, used_g = set(), set()
    for _d, i, j in pairs:
        if i not in used_f and j not in used_g:
            used_f.add(i)
            used_g.add(j)
    hit = [g for j, g in enumerate(labels) if j in used_g]
    missed = [g for j, g in enumerate(labels) if j not in used_g]
    extra = [f for i, f in enumerate(found) if i not in used_f]
    return hit, missed, extra


def scores(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def evaluate(scene_set: dict, clips: list[dict], detectors: list[str], cache: Path, tolerance: int = TOLERANCE) -> list[dict]:
    """Per clip and detector, the boundaries found and how they match the labels."""
    rows = []
    for clip in clips:
        t = time.perf_counter()
        frames, fps = decoded_frames(build(scene_set, clip, cache))
        labels = [label["frame"] for label in clip.get("labels", [])]
        row = {"name": clip["name"], "kind": clip["kind"], "split": clip.get("split", "tuning"), "frames": len(frames),
               "labels": labels, "found": {}}  # fmt: skip
        for name in detectors:
            t_detect = time.process_time()  # CPU: the detector alone, on frames already decoded
            cuts = cuts_in(frame_list_stream(frames, fps), detector=name)
            seconds = time.process_time() - t_detect
            found = sorted({round(s * float(fps)) for s in cuts})
            hit, missed, extra = match(found, labels, tolerance)
            row["found"][name] = {"frames": found, "hit": len(hit), "missed": missed, "extra": extra, "cpu_s": seconds}
        rows.append(row)
        wrong = {n: (f["missed"], f["extra"]) for n, f in row["found"].items() if f["missed"] or f["extra"]}
        print(f"  {clip['name']:<24} {len(frames):4d} frames {time.perf_counter() - t:5.1f} s  missed/extra: {wrong}", flush=True)
    return rows


def tabulate(rows: list[dict], detectors: list[str]) -> dict:
    """detector -> kind of clip (and "all") -> scores."""
    table = {}
    for name in detectors:
        counts = defaultdict(lambda: [0, 0, 0])
        for row in rows:
            found = row["found"][name]
            for kind in (row["kind"], "all"):
                c = counts[kind]
                c[0], c[1], c[2] = c[0] + found["hit"], c[1] + len(found["extra"]), c[2] + len(found["missed"])
        table[name] = {kind: scores(*c) for kind, c in counts.items()}
        frames = sum(row["frames"] for row in rows)
        table[name]["all"]["cpu_ms_per_frame"] = round(1000 * sum(row["found"][name]["cpu_s"] for row in rows) / max(1, frames), 3)
    return table


# ------------------------------------------------------------------------------------ timing


def timing_clip(scene_set: dict, seconds: float, cache: Path) -> Path:
    """A 1080p H.264 clip from the shared Big Buck Bunny footage (real picture, real cuts)."""
    from scoretool.media.ffmpeg import ffmpeg_exe
    from tests.scene_clips import source_path

    out = cache / f"timing_1080p_{seconds:g}s.mp4"
    if not out.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part.mp4")
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(source_path(scene_set, "bbb")),
               "-t", str(seconds), "-an", "-vf", "scale=1920:1080:flags=bicubic", "-c:v", "libx264", "-preset", "veryfast",
               "-crf", "20", "-pix_fmt", "yuv420p", str(part)]  # fmt: skip
        try:
            subprocess.run(cmd, check=True)
            part.replace(out)
        finally:
            part.unlink(missing_ok=True)
    return out


def time_analysis(clip: Path, detectors: list[str], reps: int) -> dict:
    from scoretool.media.decode import AnalysisPass
    from scoretool.media.ffmpeg import ffmpeg_exe
    from scoretool.media.probe import probe

    info = probe(str(clip))

    def bare() -> None:
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(clip), "-f", "null", "-"], check=True)

    def analysis(name: str):
        def run() -> None:
            with AnalysisPass(str(clip), info) as decoded:
                cuts_in(decoded.video, detector=name)

        return run

    runs = {"ffmpeg_decode": bare, **{name: analysis(name) for name in detectors}}
    wall = {name: float("inf") for name in runs}
    cpu = {name: float("inf") for name in runs}
    for _ in range(reps):  # interleaved: a busy moment on the machine hurts every entry alike
        for name, run in runs.items():
            t, c = time.perf_counter(), _cpu_seconds()
            run()
            wall[name] = min(wall[name], time.perf_counter() - t)
            cpu[name] = min(cpu[name], _cpu_seconds() - c)
    decode, decode_cpu = wall.pop("ffmpeg_decode"), cpu.pop("ffmpeg_decode")
    print(f"  bare decode {decode:.2f} s wall, {decode_cpu:.2f} s CPU", flush=True)
    return {"clip": str(clip), "reps": reps, "ffmpeg_decode_s": round(decode, 3), "ffmpeg_decode_cpu_s": round(decode_cpu, 3),
            "analysis_s": {n: round(t, 3) for n, t in wall.items()},
            "analysis_cpu_s": {n: round(t, 3) for n, t in cpu.items()},
            "ratio": {n: round(t / decode, 3) for n, t in wall.items()},
            "cpu_ratio": {n: round(t / decode_cpu, 3) for n, t in cpu.items()}}  # fmt: skip


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (ffmpeg): load on the machine from
    others barely changes it, unlike wall time."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ------------------------------------------------------------------------------------- table


def markdown(table: dict, timing: dict, detectors: list[str]) -> str:
    ratio, cpu = timing.get("ratio", {}), timing.get("cpu_ratio", {})
    kinds = [k for k in ("cut", "dissolve", "fade", "real") if any(k in table[d] for d in detectors)]
    quiet = [k for k in NO_LABEL_KINDS if any(k in table[d] for d in detectors)]
    head = ["detector"] + [f"{k} P / R / F1" for k in kinds] + [f"{k}: false" for k in quiet] + ["all P / R / F1", "detector ms/frame (CPU)", "analysis / bare decode (wall, CPU)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in detectors:
        row = table[name]
        cell = lambda s: f"{s['precision']:.2f} / {s['recall']:.2f} / {s['f1']:.2f}"  # noqa: E731
        cells = [f"**{name}**" if name == DEFAULT_DETECTOR else name]
        cells += [cell(row[k]) if k in row else "-" for k in kinds]
        cells += [str(row[k]["fp"]) if k in row else "-" for k in quiet]
        cells += [cell(row["all"]), f"{row['all']['cpu_ms_per_frame']:.2f}"]
        cells += [f"{ratio[name]:.2f}x, {cpu[name]:.2f}x" if name in ratio else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--kinds", help="only these kinds of clip (comma-separated: cut,dissolve,fade,flash,motion,real)")
    parser.add_argument("--detectors", help=f"only these detectors (default: all of {', '.join(DETECTORS)})")
    parser.add_argument("--no-timing", action="store_true", help="skip the analysis-time measurement")
    parser.add_argument("--timing-seconds", type=float, default=20.0, help="length of the 1080p timing clip")
    parser.add_argument("--reps", type=int, default=3, help="timing repetitions (best of)")
    parser.add_argument("--fps", type=int, help="build the synthetic clips at this rate (as long in seconds) instead of the set's")
    parser.add_argument("--tolerance", type=int, default=TOLERANCE, help="frames a boundary may be off its label")
    parser.add_argument("--cache", type=Path, help="where built clips are kept (default: tests/scene_clips.py's)")
    args = parser.parse_args(argv)

    from tests.scene_clips import CACHE

    scene_set, cache = load_set(), args.cache or CACHE
    if args.fps:  # the real clips keep their own rate
        scene_set = at_rate(scene_set, args.fps)
    detectors = args.detectors.split(",") if args.detectors else list(DETECTORS)
    kinds = set(args.kinds.split(",")) if args.kinds else None
    clips = [c for c in scene_set["clips"] if (kinds is None or c["kind"] in kinds)]
    missing = [c["name"] for c in clips if not available(scene_set, c)]
    clips = [c for c in clips if c["name"] not in missing]
    print(f"{len(clips)} clips, detectors {', '.join(detectors)}" + (f"; sources missing for {missing}" if missing else ""))
    rows = evaluate(scene_set, clips, detectors, cache, args.tolerance)
    result = {"tolerance_frames": args.tolerance, "fps": scene_set["fps"], "default": DEFAULT_DETECTOR, "missing": missing, "clips": rows,
              "table": tabulate(rows, detectors)}  # fmt: skip
    by_split = {split: [r for r in rows if r["split"] == split] for split in ("tuning", "holdout")}
    result["by_split"] = {split: tabulate(chosen, detectors) for split, chosen in by_split.items() if chosen}
    if not args.no_timing:
        print("timing: bare decode vs the analysis pass with each detector", flush=True)
        result["timing"] = time_analysis(timing_clip(scene_set, args.timing_seconds, cache), detectors, args.reps)
    result["markdown"] = markdown(result["table"], result.get("timing", {}), detectors)
    print(f"\nAll {len(rows)} clips (F1 at +-{args.tolerance} frames; flash, motion: false boundaries found):\n{result['markdown']}")
    for split, table in result["by_split"].items():
        n = sum(r["split"] == split for r in rows)
        print(f"\n{split} clips only ({n}):\n{markdown(table, {}, detectors)}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

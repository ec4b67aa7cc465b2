"""The labelled scene-boundary set (tests/data/scene_set.json): load it and build its clips.

Synthetic clips are cut, cross-faded, flashed and panned from real footage by one ffmpeg run
each (`build`), at the set's size and frame rate, and cached by the hash of their recipe in a
folder outside the repo. 'real' clips are the shared sample files as they are. Used by
tests/test_detection.py and benchmarks/detection.py.
"""

from __future__ import annotations

import hashlib
import copy
import json
import math
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET_FILE = ROOT / "tests" / "data" / "scene_set.json"
SHARED_MEDIA = Path(os.environ.get("SCORETOOL_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
# Built clips are kept between runs (a benchmark rebuilds nothing): in the user cache, not the temp folder.
CACHE = Path(os.environ.get("SCORETOOL_SCENE_CACHE", Path.home() / ".cache" / "scoretool-bench" / "scene-set"))
_BUILDER_VERSION = 4  # bump when the way recipes become ffmpeg graphs changes


def load_set(path: Path = SET_FILE) -> dict:
    return json.loads(Path(path).read_text())


def source_path(scene_set: dict, key: str) -> Path:
    where = scene_set["sources"][key]
    return SHARED_MEDIA / where[len("shared:"):] if where.startswith("shared:") else ROOT / where


def sources_of(scene_set: dict, clip: dict) -> list[Path]:
    keys = [clip["file"]] if "file" in clip else [shot["src"] for shot in clip["shots"]]
    return [source_path(scene_set, key) for key in keys]


def available(scene_set: dict, clip: dict) -> bool:
    return all(p.is_file() for p in sources_of(scene_set, clip))


def label_kind(transition: str) -> str:
    return "fade" if transition in ("fadeblack", "fadewhite") else "dissolve"


def implied_labels(clip: dict) -> list[dict]:
    """The labels a synthetic clip's recipe implies: a cut at the new shot's first frame, a
    gradual transition at its middle frame."""
    length = clip["shots"][0]["frames"]
    labels = []
    for join, shot in zip(clip.get("joins", []), clip["shots"][1:]):
        if join["type"] == "cut":
            labels.append({"frame": length, "kind": "cut"})
        elif join["type"] == "xfade":
            labels.append({"frame": length - join["frames"] + join["frames"] // 2, "kind": label_kind(join["transition"])})
            length -= join["frames"]
        else:  # dip: fade out, hold, fade in
            span = join["out"] + join["hold"] + join["in"]
            labels.append({"frame": length - join["out"] + span // 2, "kind": "fade"})
            length += join["hold"]
        length += shot["frames"]
    return labels


def first_frame(frame_24: int, fps: int) -> int:
    """The first frame at `fps` that shows frame `frame_24` of 24 fps footage: ffmpeg's `fps` filter
    rounds each source frame's time to its own ticks (halves up) and repeats it until the next."""
    return math.floor(frame_24 * fps / 24 + 0.5)


def at_rate(scene_set: dict, fps: int) -> dict:
    """The set at `fps`, its synthetic clips as long in seconds as at the set's own rate: every
    frame count scaled (a flash stays one frame), the labels recomputed; real clips as they are."""
    r = fps / scene_set["fps"]  # the set is at 24 fps, as its shots' `from`
    scale = lambda n: max(1, round(n * r))  # noqa: E731
    out = copy.deepcopy(scene_set)
    out["fps"] = fps
    for clip in out["clips"]:
        if "shots" not in clip:
            continue
        for shot in clip["shots"]:  # footage: the same source frames; a photo: as long
            start = shot.get("from")
            shot["frames"] = scale(shot["frames"]) if start is None else (
                first_frame(start + shot["frames"], fps) - first_frame(start, fps))
            if "at" in shot.get("move", {}):
                shot["move"]["at"] = [round(a * r) for a in shot["move"]["at"]]
        for join in clip.get("joins", []):
            for key in ("frames", "out", "hold", "in"):
                if key in join:
                    join[key] = scale(join[key])
        for effect in clip.get("flashes", []) + clip.get("sweeps", []):
            effect["frame"] = round(effect["frame"] * r)
            if "frames" in effect:
                effect["frames"] = scale(effect["frames"])
        clip["labels"] = implied_labels(clip)
    return out


def clip_frames(clip: dict) -> int:
    total = sum(shot["frames"] for shot in clip["shots"])
    for join in clip.get("joins", []):
        total += {"cut": 0, "xfade": -join.get("frames", 0), "dip": join.get("hold", 0)}[join["type"]]
    return total


def build(scene_set: dict, clip: dict, cache: Path = CACHE) -> Path:
    """The clip's file: the shared file itself for a 'real' clip, else built once and cached."""
    if "file" in clip:
        return source_path(scene_set, clip["file"])
    recipe = json.dumps([_BUILDER_VERSION, scene_set["fps"], scene_set["size"], clip], sort_keys=True)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    out = Path(cache) / f"{clip['name']}-{digest}.mp4"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    from scoretool.media.ffmpeg import ffmpeg_exe

    inputs, graph = _graph(scene_set, clip)
    part = out.with_suffix(".part.mp4")
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *inputs,
           "-filter_complex", graph, "-map", "[out]", "-frames:v", str(clip_frames(clip)),
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(part)]  # fmt: skip
    try:
        subprocess.run(cmd, check=True)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)  # a failed build leaves nothing half-made behind
    return out


# ---------------------------------------------------------------------------------------- graphs


def _graph(scene_set: dict, clip: dict) -> tuple[list[str], str]:
    fps, (width, height) = scene_set["fps"], scene_set["size"]
    inputs, chains = [], []
    for i, shot in enumerate(clip["shots"]):
        inputs += ["-i", str(source_path(scene_set, shot["src"]))]
        chains.append(f"[{i}:v]{_shot_filters(shot, fps, width, height)},setsar=1,format=yuv420p[s{i}]")
    current, length = "s0", clip["shots"][0]["frames"]
    for i, (join, shot) in enumerate(zip(clip.get("joins", []), clip["shots"][1:]), start=1):
        chain, length = _join(current, f"s{i}", join, length, shot["frames"], fps, width, height, i)
        chains.append(chain)
        current = f"j{i}"
    effects = [_flash(f) for f in clip.get("flashes", [])]
    for k, sweep in enumerate(clip.get("sweeps", [])):
        box_w = round(width * sweep["width"])
        chains.append(f"color=c={sweep['colour']}:s={box_w}x{height}:r={fps}[box{k}]")
        x = f"-w+(main_w+w)*(n-{sweep['frame']})/{sweep['frames'] - 1}"
        end = sweep["frame"] + sweep["frames"] - 1
        chains.append(f"[{current}][box{k}]overlay=x='{x}':y=0:shortest=1:enable='between(n,{sweep['frame']},{end})'[w{k}]")
        current = f"w{k}"
    chains.append(f"[{current}]{','.join(effects) or 'null'},format=yuv420p[out]")
    return inputs, ";".join(chains)


def _shot_filters(shot: dict, fps: int, width: int, height: int) -> str:
    if "from" not in shot:  # a still photo: its largest 16:9 part, panned or zoomed
        frames = shot["frames"]
        head = "crop=w='min(iw,ih*16/9)':h='min(ih,iw*9/16)',scale=1280:720"
        return f"{head},{_zoompan(shot.get('move'), frames, frames, fps, width, height)}"
    start = first_frame(shot["from"], fps)
    end = start + shot["frames"]
    head = f"setpts=PTS-STARTPTS,fps={fps},trim=start_frame={start}:end_frame={end},setpts=PTS-STARTPTS"
    if "move" in shot:
        return f"{head},scale=1280:720,{_zoompan(shot['move'], 1, shot['frames'], fps, width, height)}"
    if "crop" in shot:
        x, y, w = shot["crop"]
        head += f",crop=w=iw*{w}:h=ih*{w}:x=iw*{x}:y=ih*{y}"
    if "dim" in shot:  # a darker picture: every channel scaled down
        head += ",colorchannelmixer=rr={0}:gg={0}:bb={0}".format(shot["dim"])
    return f"{head},scale={width}:{height}:flags=bicubic"


def _zoompan(move: dict | None, per_input: int, frames: int, fps: int, width: int, height: int) -> str:
    """zoompan along a window path: [x, y, w] fractions from `from` to `to` over frames `at`."""
    move = move or {"from": [0, 0, 1], "to": [0, 0, 1]}
    a, b = move.get("at", [0, frames - 1])
    ease = move.get("ease", "linear")
    p = f"clip((on-{a})/{max(1, b - a)},0,1)"
    if ease == "smooth":
        e = f"({p})*({p})*(3-2*({p}))"
    elif ease.startswith("shake:"):
        e = f"(0.5-0.5*cos(2*PI*{float(ease[6:])}*on/{fps}))"
    else:
        e = p
    (x0, y0, w0), (x1, y1, w1) = move["from"], move["to"]
    lerp = lambda u, v: f"({u}+({v - u})*{e})"  # noqa: E731
    return (f"zoompan=z='1/{lerp(w0, w1)}':x='iw*{lerp(x0, x1)}':y='ih*{lerp(y0, y1)}'"
            f":d={per_input}:s={width}x{height}:fps={fps}")  # fmt: skip


def _join(a: str, b: str, join: dict, length: int, frames: int, fps: int, width: int, height: int, i: int):
    """Filters joining stream a (length frames) and b; returns (chain, new length)."""
    out = f"j{i}"
    if join["type"] == "cut":
        return f"[{a}][{b}]concat=n=2:v=1:a=0[{out}]", length + frames
    if join["type"] == "xfade":
        d = join["frames"]
        return (f"[{a}][{b}]xfade=transition={join['transition']}:duration={d / fps}:offset={(length - d) / fps}[{out}]",
                length + frames - d)  # fmt: skip
    colour, fade_out, hold, fade_in = join["colour"], join["out"], join["hold"], join["in"]
    chain = (f"[{a}]fade=t=out:start_frame={length - fade_out}:nb_frames={fade_out}:color={colour}[fo{i}];"
             f"color=c={colour}:s={width}x{height}:r={fps},trim=end_frame={hold},format=yuv420p,setsar=1[hold{i}];"
             f"[{b}]fade=t=in:start_frame=0:nb_frames={fade_in}:color={colour}[fi{i}];"
             f"[fo{i}][hold{i}][fi{i}]concat=n=3:v=1:a=0[{out}]")  # fmt: skip
    return chain, length + hold + frames


def _flash(flash: dict) -> str:
    when = f"enable='eq(n,{flash['frame']})'"
    if flash["look"] == "white":
        return f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:{when}"
    return f"eq=brightness=0.45:contrast=0.6:saturation=0.4:{when}"  # an over-exposed frame

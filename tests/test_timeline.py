"""Timeline export (`--timeline`, `scoretool timeline`): every format written, then read back with
OpenTimelineIO and its adapters, checked against the plan's scenes.

One NTSC (30000/1001) clip with sound whose timestamps start at 10 s, scored once with the tiny
models; every other export reuses its cached clips, as `scoretool timeline` does.
"""

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree

import numpy as np
import pytest
import soundfile

import scoretool
from scoretool import Plan, Settings
from scoretool.cache import Cache
from scoretool.errors import OutputError, PlanError

otio = pytest.importorskip("opentimelineio", reason="timeline export needs opentimelineio: pip install -e '.[test]'")
from scoretool.media.ffmpeg import ffmpeg_exe  # noqa: E402
from scoretool.timeline import export_from_cache, media_folder  # noqa: E402
from scoretool.timeline.formats import FORMATS, adapters, read_file  # noqa: E402
from scoretool.timeline.layout import video_rate  # noqa: E402

try:
    adapters()
except OutputError as e:
    pytest.skip(str(e), allow_module_level=True)

NTSC = Fraction(30000, 1001)
OFFSET = 10.0  # the source's first timestamp


@pytest.fixture(scope="module")
def scored(tiny_models, tmp_path_factory):
    """A 3-scene NTSC clip with a tone, timestamps from 10 s, scored with `timeline=` (and beats)."""
    tmp = tmp_path_factory.mktemp("timeline")
    src = tmp / "in put.mp4"  # a space: URLs are escaped
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    for colour in ("red", "green", "blue"):
        args += ["-f", "lavfi", "-i", f"color=c={colour}:s=160x120:r=30000/1001:d=2.5"]
    args += ["-f", "lavfi", "-i", "sine=f=440:d=7.5", "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]"]
    args += ["-map", "[v]", "-map", "3:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    subprocess.run(args + ["-output_ts_offset", str(OFFSET), str(src)], check=True)
    models = {"caption_model": str(tiny_models["blip"]), "music_model": str(tiny_models["musicgen"])}
    settings = Settings(**models, device="cpu", fade_out=0.5)  # the last scene's middle stays out of the fade
    cache = Cache(tmp / "cache")
    (tmp / "out").mkdir()
    result = scoretool.score(
        str(src), str(tmp / "music.wav"), settings, save_plan=str(tmp / "in.plan.json"), cache=cache,
        timeline=str(tmp / "out" / "cut.otio"), timeline_beats=True,
    )  # fmt: skip
    return {"tmp": tmp, "src": src, "plan": result.plan, "cache": cache, "master": tmp / "out" / "cut.otio"}


def _path(url: str) -> str:
    return unquote(urlparse(url).path)


def _clips(track):
    return [c for c in track if isinstance(c, otio.schema.Clip)]


def _stems(timeline):
    """The track of the scenes' clips, whatever the format named it."""
    (track,) = [t for t in timeline.tracks if any("scene_" in _path(c.media_reference.target_url) for c in _clips(t))]
    return track


def _frames(t) -> float:
    return t.value_rescaled_to(float(NTSC))


def _scene_frames(plan):
    return [(round(s.start * NTSC), round(s.end * NTSC)) for s in plan.scenes]


def _fades(timeline):
    """(frames before, frames after) the cut of each transition on the stems track."""
    track = _stems(timeline)
    return [(_frames(t.in_offset), _frames(t.out_offset)) for t in track if isinstance(t, otio.schema.Transition)]


def test_the_rate_is_the_video_rate_as_a_rational(scored):
    info = scored["plan"].input
    assert info.start_time == pytest.approx(OFFSET) and info.has_audio
    assert video_rate(info) == NTSC
    master = otio.adapters.read_from_file(str(scored["master"]))
    assert {c.source_range.duration.rate for t in master.tracks for c in _clips(t)} == {30000 / 1001}


@pytest.mark.parametrize("ext", list(FORMATS))
def test_round_trip(scored, ext):
    plan, out = scored["plan"], scored["tmp"] / "out"
    path = out / f"cut{ext}"
    if ext != ".otio":
        written = export_from_cache(plan, str(path), cache=scored["cache"], beats=True)
        assert written[0] == str(path) and all(os.path.isfile(p) for p in written)
    timeline = read_file(str(path), NTSC)
    scenes = _scene_frames(plan)
    master_fades = _fades(otio.adapters.read_from_file(str(scored["master"])))
    assert len(master_fades) == len(scenes) - 1  # the crossfades of the mix, in frames
    assert len(timeline.tracks) == (1 if ext == ".edl" else 4)  # video, music, stems, original sound
    stems = _stems(timeline)
    clips = _clips(stems)
    assert len(clips) == len(scenes)
    for i, (clip, (start, end)) in enumerate(zip(clips, scenes)):
        placed = stems.range_of_child(clip)
        before = master_fades[i - 1] if i else (0, 0)  # the fades at this clip's start and end
        after = master_fades[i] if i + 1 < len(scenes) else (0, 0)
        if ext == ".edl":  # an EDL dissolve starts where the fade does: the incoming event begins there
            start, end = start - before[0], end - after[0]
        if ext == ".xml":  # FCP 7 transitions are centred on their cut: it moves to the fade's middle
            start, end = start + (before[1] - before[0]) / 2, end + (after[1] - after[0]) / 2
        assert abs(_frames(placed.start_time) - start) <= 1, (ext, i)
        assert abs(_frames(placed.duration) - (end - start)) <= 1, (ext, i)
        assert os.path.isfile(_path(clip.media_reference.target_url)), clip.media_reference.target_url
        assert Path(_path(clip.media_reference.target_url)).name == f"scene_{i + 1:02d}.wav"
    _check_fades(ext, _fades(timeline), master_fades)
    _check_scene_markers(ext, timeline, path, plan)
    for track in timeline.tracks:
        for clip in _clips(track):
            assert os.path.isfile(_path(clip.media_reference.target_url)), (ext, clip.media_reference.target_url)


def _check_fades(ext, fades, master):
    if ext == ".fcpxml":  # the FCPXML adapter drops transitions: butt cuts, the handles are in the WAVs
        assert fades == []
    elif ext == ".edl":  # a dissolve from its start: as long as the fade, both sides together
        assert [f[0] for f in fades] == [0] * len(master)
        assert [f[1] for f in fades] == pytest.approx([a + b for a, b in master], abs=1)
    else:  # where the sound changes over stays; FCP 7 XML centres the cut in it
        assert [a + b for a, b in fades] == pytest.approx([a + b for a, b in master], abs=1)
        centred = [(a + b) / 2 for a, b in master] if ext == ".xml" else [a for a, _ in master]
        assert [a for a, _ in fades] == pytest.approx(centred, abs=1)


def _check_scene_markers(ext, timeline, path, plan):
    """A marker named "Scene N" at each scene's start, with prompt and seed where the format has room."""
    scenes = _scene_frames(plan)
    if ext in (".otio", ".xml"):  # timeline markers
        found = {m.name: (_frames(m.marked_range.start_time), m) for m in timeline.tracks.markers}
    elif ext == ".fcpxml":  # on the video clip, in the source's own time (from 10 s)
        video = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video][0][0]
        first = video.source_range.start_time
        assert first.to_seconds() == pytest.approx(OFFSET)
        found = {m.name: (_frames(m.marked_range.start_time - first), m) for m in video.markers if m.name.startswith("Scene")}
    else:  # LOC lines, on each stem in its own time; the adapter's reader skips drop-frame ones (29.97): read the text
        found = {}
        for clip in _clips(_stems(timeline)):
            n = int(re.search(r"scene_(\d+)", clip.media_reference.target_url).group(1))
            loc = re.findall(rf"\* LOC: (\S+)\s+\w+\s+SCENE {n}$", path.read_text(), re.M)[0]
            at = otio.opentime.from_timecode(loc, float(NTSC)) - clip.source_range.start_time
            found[f"Scene {n}"] = (_frames(at + _stems(timeline).range_of_child(clip).start_time), clip)
    assert sorted(found) == sorted(f"Scene {s.number}" for s in plan.scenes)
    for scene, (start, _) in zip(plan.scenes, scenes):
        at, item = found[f"Scene {scene.number}"]
        assert abs(at - start) <= 1, (ext, scene.number)
        text = {".otio": lambda: item.comment, ".xml": lambda: item.metadata["fcp_xml"]["comment"]}.get(ext)
        if text:
            assert scene.prompt in text() and f"seed {scene.seed}" in text()
    if ext == ".edl":
        assert all(s.prompt in path.read_text() for s in plan.scenes)
    if ext == ".fcpxml":  # each stem's prompt and seed in its browser clip's note
        notes = [n.text for n in ElementTree.parse(path).iter("note")]
        assert [f"{s.prompt} (seed {s.seed})" for s in plan.scenes] == notes


def test_stems_sit_where_the_mix_has_them_at_its_level(scored):
    """Each stem, placed as the timeline says, is the mix's own audio there (to the sample)."""
    timeline = otio.adapters.read_from_file(str(scored["master"]))
    music, rate = soundfile.read(_path(_clips(timeline.tracks[1])[0].media_reference.target_url), dtype="float32")
    stems = _stems(timeline)
    for scene, clip in zip(scored["plan"].scenes, _clips(stems)):
        audio, _ = soundfile.read(_path(clip.media_reference.target_url), dtype="float32")
        shift = (clip.source_range.start_time - stems.range_of_child(clip).start_time).to_seconds()
        a, b = scene.start + scene.duration / 4, scene.end - scene.duration / 4  # away from the fades
        mixed = music[round(a * rate) : round(b * rate)]
        alone = audio[round((a + shift) * rate) : round((b + shift) * rate)]
        assert np.corrcoef(mixed.ravel(), alone.ravel())[0, 1] > 0.99
        assert 20 * np.log10(np.std(alone) / np.std(mixed)) == pytest.approx(0, abs=0.5)


def test_what_one_export_writes_and_the_source_stays_referenced(scored):
    master = scored["master"]
    media = Path(media_folder(str(master)))
    assert media.name == "cut_otio_media"
    names = sorted(p.name for p in media.iterdir())
    assert names == [".scoretool-timeline", "music.wav"] + [f"scene_{s.number:02d}.wav" for s in scored["plan"].scenes]
    timeline = otio.adapters.read_from_file(str(master))
    video = timeline.tracks[0][0]
    assert _path(video.media_reference.target_url) == str(scored["src"].resolve())  # referenced, not copied
    assert video.source_range.start_time.to_seconds() == pytest.approx(OFFSET)
    assert timeline.tracks[3][0].media_reference.target_url == video.media_reference.target_url  # the original sound
    beats = [m for m in timeline.tracks[1][0].markers if m.name == "Beat"]
    assert beats and all(0 <= _frames(m.marked_range.start_time) < timeline.duration().value for m in beats)
    assert not [p for p in master.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_fcpxml_at_29_97_is_on_the_frame_grid(scored):
    """Every clip time is a whole number of 1001/30000 s frames from 0, or from the source's 10 s."""
    path = scored["tmp"] / "out" / "grid.fcpxml"
    export_from_cache(scored["plan"], str(path), cache=scored["cache"])
    root = ElementTree.parse(path).getroot()
    assert [f.get("frameDuration") for f in root.iter("format")] == ["1001/30000s"]
    frame = Fraction(1001, 30000)

    def on_grid(seconds: Fraction) -> bool:
        return (seconds / frame).denominator == 1 or ((seconds - Fraction(int(OFFSET))) / frame).denominator == 1

    times = [Fraction(c.get(n)[:-1]) for c in root.iter("clip") for n in ("offset", "duration", "start") if c.get(n)]
    assert len(times) > 10 and all(on_grid(t) for t in times), times


def test_fcp7_xml_says_ntsc(scored):
    path = scored["tmp"] / "out" / "cut.xml"
    if not path.exists():
        export_from_cache(scored["plan"], str(path), cache=scored["cache"])
    rates = {(r.findtext("timebase"), r.findtext("ntsc")) for r in ElementTree.parse(path).iter("rate")}
    assert rates == {("30", "TRUE")}


@pytest.mark.skipif(not os.environ.get("SCORETOOL_FCPXML_DTD"), reason=(
    "no package ships Apple's FCPXML DTD: set SCORETOOL_FCPXML_DTD to FCPXMLv1_8.dtd (and pip install lxml) to run"
))  # fmt: skip
def test_fcpxml_validates_against_apples_dtd(scored):
    etree = pytest.importorskip("lxml.etree")
    path = scored["tmp"] / "out" / "dtd.fcpxml"
    export_from_cache(scored["plan"], str(path), cache=scored["cache"], beats=True)
    dtd = etree.DTD(os.environ["SCORETOOL_FCPXML_DTD"])
    assert dtd.validate(etree.parse(str(path))), dtd.error_log.filter_from_errors()


def test_bad_paths_are_one_line_and_write_nothing(scored, tmp_path):
    plan, cache = scored["plan"], scored["cache"]
    with pytest.raises(OutputError, match=r"'\.aaf'.*\.otio.*\.fcpxml.*\.xml.*\.edl"):
        export_from_cache(plan, str(tmp_path / "cut.aaf"), cache=cache)
    with pytest.raises(OutputError, match="does not exist"):
        export_from_cache(plan, str(tmp_path / "nope" / "cut.otio"), cache=cache)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    target = locked if not os.access(locked, os.W_OK) else Path("/sys")  # root ignores permissions
    with pytest.raises(OutputError, match="not writable"):
        export_from_cache(plan, str(target / "cut.otio"), cache=cache)
    (tmp_path / "cut_edl_media").mkdir()  # a folder of the user's where the media would go
    (tmp_path / "cut_edl_media" / "mine.txt").write_text("keep me")
    with pytest.raises(OutputError, match="scoretool did not write it"):
        export_from_cache(plan, str(tmp_path / "cut.edl"), cache=cache)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut_edl_media", "locked"]
    assert [p.name for p in (tmp_path / "cut_edl_media").iterdir()] == ["mine.txt"]


def test_clips_not_rendered_yet_is_one_line(scored, tmp_path):
    with pytest.raises(PlanError, match=r"scene\(s\) 1, 2, 3 is not rendered yet"):
        export_from_cache(scored["plan"], str(tmp_path / "cut.otio"), cache=Cache(tmp_path / "empty-cache"))
    assert not any(tmp_path.iterdir())


def test_a_failed_export_leaves_the_previous_one_whole(scored, tmp_path, monkeypatch):
    from scoretool.timeline import export

    path = tmp_path / "cut.xml"
    export_from_cache(scored["plan"], str(path), cache=scored["cache"])
    before = {p.name: p.read_bytes() for p in [path, *Path(media_folder(str(path))).iterdir()]}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    for name in ("write_string", "write_atomic"):  # before anything is in place; at the very last step
        with monkeypatch.context() as m:
            m.setattr(export, name, broken)
            with pytest.raises(OutputError, match="No space left"):
                export_from_cache(scored["plan"], str(path), cache=scored["cache"])
        after = {p.name: p.read_bytes() for p in [path, *Path(media_folder(str(path))).iterdir()]}
        assert after == before, name
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.xml", "cut_xml_media"]


def run_cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "scoretool", *map(str, args)], capture_output=True, text=True, env=env)


def test_timeline_command_and_render_option(scored, tmp_path):
    plan_path, cache_dir = scored["tmp"] / "in.plan.json", scored["cache"].root
    proc = run_cli("timeline", plan_path, "-o", tmp_path / "cut.fcpxml", "--cache-dir", cache_dir)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cut.fcpxml").is_file() and (tmp_path / "cut_fcpxml_media" / "scene_03.wav").is_file()
    proc = run_cli("timeline", plan_path, "-o", tmp_path / "other.edl", "--cache-dir", tmp_path / "no-cache")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1].endswith("with the same --cache-dir.")
    assert not (tmp_path / "other.edl").exists() and not (tmp_path / "other_edl_media").exists()
    proc = run_cli("timeline", plan_path, "-o", tmp_path / "cut.mov", "--cache-dir", cache_dir)
    assert proc.returncode != 0 and "use one of .otio" in proc.stderr
    out = tmp_path / "again.wav"
    proc = run_cli("render", plan_path, "-o", out, "--cache-dir", cache_dir, "--timeline", tmp_path / "cut.otio", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert len(_clips(_stems(otio.adapters.read_from_file(str(tmp_path / "cut.otio"))))) == len(Plan.load(plan_path).scenes)


@pytest.mark.parametrize(
    "fps, rate",
    [(30000 / 1001, NTSC), (24000 / 1001, Fraction(24000, 1001)), (25.0, 25), (29.98, NTSC), (12.5, Fraction(25, 2)), (None, 30)],
)
def test_video_rate(fps, rate):
    from scoretool.media.info import MediaInfo

    assert video_rate(MediaInfo(path="x", kind="video" if fps else "image", duration=None, fps=fps, width=1, height=1)) == rate

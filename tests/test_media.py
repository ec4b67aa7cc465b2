"""scoretool.media: probe, scenes, frames, mux.

Uses the shared sample media (../shared/media, or $SCORETOOL_SHARED_MEDIA) where present, and
small synthetic clips made here with ffmpeg. Outputs are checked independently with PyAV.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from scoretool.errors import InputError, OutputError, ScoreToolError
from scoretool.media import frames as frames_mod
from scoretool.media import mux
from scoretool.media.ffmpeg import ffmpeg_exe, run_ffmpeg
from scoretool.media.decode import AnalysisPass
from scoretool.media.frames import frame_times, scene_frames
from scoretool.media.probe import MediaInfo, probe
from scoretool.media.scenes import cuts_in, detect_cuts, merge_short, plan_scenes, spans_from_cuts, split_long

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = Path(os.environ.get("SCORETOOL_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
CHECK_OUTPUT = SHARED_MEDIA.parent / "tools" / "check_output.py"
needs_media = pytest.mark.skipif(
    not (SHARED_MEDIA / "README.md").is_file(), reason=f"shared sample media not found at {SHARED_MEDIA}"
)

WEBM = SHARED_MEDIA / "big_buck_bunny_0_30.webm"
TEARS = SHARED_MEDIA / "clip_01_tears_of_steel.mp4"
CAMINANDES = SHARED_MEDIA / "clip_02_caminandes.mp4"
BBB_MP4 = SHARED_MEDIA / "bigbuckbunny.mp4"
CHELSEA = SHARED_MEDIA / "chelsea.png"

# Synthetic clip: testsrc2 (moving) | flat red | testsrc, cut at 2.0 s and 3.5 s, 6 s at 24 fps.
SYNTH_CUTS = [2.0, 3.5]
SYNTH_GRAPH = (
    "testsrc2=s=160x96:r=24:d=2[a];color=c=red:s=160x96:r=24:d=1.5[b];"
    "testsrc=s=160x96:r=24:d=2.5[c];[a][b][c]concat=n=3:v=1:a=0[v]"
)


def ffmpeg(*args) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *map(str, args)], check=True)


# --- independent checks (PyAV only) ---------------------------------------------------------------


def packets_md5(path) -> tuple[str, int]:
    h, n = hashlib.md5(), 0
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.size:
                h.update(bytes(p))
                n += 1
    return h.hexdigest(), n


def file_sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def decoded_audio(path) -> tuple[np.ndarray, int, float]:
    """(mono samples, rate, time of the first sample)."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        parts, first = [], None
        for f in c.decode(stream):
            first = f.time if first is None else first
            x = f.to_ndarray()
            x = x if f.format.is_planar else x.reshape(-1, len(f.layout.channels)).T
            parts.append(np.atleast_2d(x).astype(np.float64).mean(axis=0))
        return np.concatenate(parts), stream.codec_context.sample_rate, first


def first_video_time(path) -> float:
    with av.open(str(path)) as c:
        return next(c.decode(c.streams.video[0])).time


def write_tone(path, seconds, rate=32000, channels=2, tone_seconds=None) -> Path:
    """A 440 Hz tone starting at sample 0 (for alignment checks), silent after `tone_seconds`."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    if tone_seconds is not None:
        x[t >= tone_seconds] = 0
    sf.write(str(path), np.repeat(x[:, None], channels, axis=1).astype(np.float32), rate)
    return Path(path)


# --- synthetic media ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("synth")
    p = {name: d / name for name in (
        "cuts.mp4", "offset.mp4", "offset.mkv", "audio.wav", "audio.m4a", "empty.mp4", "text.mp4",
        "truncated.mp4", "zero_length.mkv", "garbage.png", "vp8.mkv", "av1.mkv", "rotated.jpg", "alpha.png",
    )}
    ffmpeg("-filter_complex", SYNTH_GRAPH, "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", p["cuts.mp4"])
    # First video frame at 0.5 s; the mp4 also carries audio (so its timeline starts earlier).
    ffmpeg("-i", p["cuts.mp4"], "-f", "lavfi", "-i", "sine=d=6", "-c:v", "copy", "-c:a", "aac",
           "-output_ts_offset", "0.5", p["offset.mp4"])
    ffmpeg("-itsoffset", "0.5", "-i", p["cuts.mp4"], "-c:v", "copy", p["offset.mkv"])
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", p["audio.wav"])
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", p["audio.m4a"])
    p["empty.mp4"].write_bytes(b"")
    p["text.mp4"].write_text("this is not a video\n")
    p["garbage.png"].write_bytes(b"\x89PNG but not really" * 10)
    p["truncated.mp4"].write_bytes(p["cuts.mp4"].read_bytes()[:3000])  # moov atom at the end: gone
    # A Matroska header that promises a 6 s video stream, cut inside the first Cluster's header
    # (so not one frame is in it).
    mkv = p["offset.mkv"].read_bytes()
    p["zero_length.mkv"].write_bytes(mkv[: mkv.index(bytes.fromhex("1F43B675")) + 12])
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x96:r=10:d=1", "-c:v", "libvpx", p["vp8.mkv"])
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x64:r=10:d=0.5", "-c:v", "libaom-av1", "-cpu-used", "8", p["av1.mkv"])
    img = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(p["rotated.jpg"], exif=exif)
    Image.new("RGBA", (31, 17), (0, 255, 0, 128)).save(p["alpha.png"])
    return p


# --- probe ----------------------------------------------------------------------------------------


@needs_media
@pytest.mark.parametrize(
    "name, duration, fps, size, start, codec, frames, channels, rate",
    [
        # WebM: no frame count in the header, first timestamp 3 ms; 720 frames at 24 fps.
        ("big_buck_bunny_0_30.webm", 30.0, 24, (1280, 720), 0.003, "vp8", None, 2, 44100),
        ("clip_01_tears_of_steel.mp4", 10.0, 24, (640, 360), 0.0, "h264", 240, None, None),
        ("clip_02_caminandes.mp4", 10.0, 24, (640, 360), 0.0, "h264", 240, None, None),
        # 132 frames at 25 fps: the video lasts 5.28 s (the container's 5.31 s is the audio's).
        ("bigbuckbunny.mp4", 5.28, 25, (1280, 720), 0.0, "h264", 132, 6, 48000),
    ],
)
def test_probe_shared_videos(name, duration, fps, size, start, codec, frames, channels, rate):
    info = probe(SHARED_MEDIA / name)
    assert info.kind == "video"
    assert info.duration == pytest.approx(duration, abs=0.002)
    assert info.fps == fps
    assert (info.width, info.height) == size
    assert info.start_time == pytest.approx(start, abs=1e-6)
    assert info.video_codec == codec
    assert info.frame_count == frames
    assert info.has_audio == (channels is not None)
    assert (info.audio_channels, info.audio_rate) == (channels, rate)


@needs_media
@pytest.mark.parametrize("name, size, fmt", [
    ("chelsea.png", (451, 300), "png"), ("Wall.jpg", (1280, 960), "jpeg"), ("astronaut.png", (512, 512), "png"),
])
def test_probe_images(name, size, fmt):
    info = probe(SHARED_MEDIA / name)
    assert (info.kind, info.duration, info.fps, info.start_time, info.has_audio) == ("image", None, None, 0.0, False)
    assert (info.width, info.height, info.container) == (*size, fmt)


def test_probe_image_reports_displayed_size(synth):
    info = probe(synth["rotated.jpg"])  # stored 40x20, EXIF says rotate 90 degrees
    assert (info.width, info.height) == (20, 40)


@pytest.mark.parametrize("name", ["offset.mp4", "offset.mkv"])
def test_probe_start_offset(synth, name):
    info = probe(synth[name])
    assert info.start_time == pytest.approx(0.5, abs=1e-3)
    assert info.duration == pytest.approx(6.0, abs=1e-3)
    assert info.frame_count in (144, None)


@needs_media
def test_probe_truncated_webm(tmp_path):
    """The header still says 30 s; the duration is measured from what is really there."""
    half = tmp_path / "half.webm"
    half.write_bytes(WEBM.read_bytes()[:600_000])
    with av.open(str(half)) as c:
        frames = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    info = probe(half)
    assert info.duration == pytest.approx(frames / 24, abs=0.002)
    with AnalysisPass(str(half), info) as decoded:  # the whole of what is there decodes
        assert_cuts(cuts_in(decoded.video), [11.792])
        last_time, _image = decoded.frame_near(29.0)
    assert last_time == pytest.approx(info.duration, abs=0.3)


def test_mediainfo_round_trip(synth):
    info = probe(synth["offset.mp4"])
    data = json.loads(json.dumps(info.to_dict()))
    assert MediaInfo.from_dict(data) == info
    assert MediaInfo.from_dict({**data, "added_later": 1}) == info  # newer plans still load
    with pytest.raises(ValueError, match="duration"):
        MediaInfo.from_dict({k: v for k, v in data.items() if k != "duration"})


@pytest.mark.parametrize("name, says", [
    ("missing.mp4", "does not exist"),
    (".", "is a folder"),
    ("empty.mp4", "is empty"),
    ("text.mp4", "not a video or image we can read"),
    ("truncated.mp4", "not a video or image we can read"),
    ("garbage.png", "not an image we can read"),
    ("audio.wav", "no video stream (it is audio only)"),
    ("audio.m4a", "no video stream (it is audio only)"),
    ("zero_length.mkv", "no frames"),
])
def test_probe_rejects_bad_input(synth, name, says):
    path = synth["cuts.mp4"].parent / name
    with pytest.raises(InputError) as caught:
        probe(path)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message and message.endswith(".")


# --- scenes ---------------------------------------------------------------------------------------


def assert_cuts(found, expected, tol=0.1):
    assert len(found) == len(expected), found
    for f, e in zip(found, expected):
        assert abs(f - e) <= tol, (found, expected)


@needs_media
def test_cuts_webm():
    assert_cuts(detect_cuts(str(WEBM)), [11.792, 15.667, 22.958])


@needs_media
@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_cuts_tears_of_steel(detector):
    assert_cuts(detect_cuts(str(TEARS), detector=detector), [0.875, 2.708, 7.708])


@needs_media
def test_cuts_one_shot_videos():
    assert detect_cuts(str(BBB_MP4)) == []
    # The README's trap: cars filling the frame fool ContentDetector but not AdaptiveDetector.
    assert detect_cuts(str(CAMINANDES), detector="adaptive") == []


def test_cuts_synthetic_relative_to_first_frame(synth):
    assert_cuts(detect_cuts(str(synth["cuts.mp4"])), SYNTH_CUTS, tol=1 / 24 + 1e-6)
    # Same clip starting at 0.5 s: cut times stay relative to the first frame.
    assert_cuts(detect_cuts(str(synth["offset.mkv"]), downscale=2), SYNTH_CUTS, tol=1 / 24 + 1e-6)
    assert detect_cuts(str(synth["cuts.mp4"]), threshold=250.0) == []
    with pytest.raises(ValueError, match="unknown scene detector"):
        detect_cuts(str(synth["cuts.mp4"]), detector="magic")


@needs_media
def test_plan_scenes_shared():
    # 0.875 s first shot is too short for music: it joins the bridge shot.
    spans = plan_scenes(detect_cuts(str(TEARS)), probe(TEARS).duration, min_scene=2.0)
    assert [(round(a, 2), round(b, 2)) for a, b in spans] == [(0.0, 2.71), (2.71, 7.71), (7.71, 10.0)]
    spans = plan_scenes(detect_cuts(str(WEBM)), probe(WEBM).duration, min_scene=2.0, max_scene=10.0)
    # The 11.79 s first shot is split into two equal parts; the other three are kept.
    assert [round(b, 2) for _, b in spans] == [5.9, 11.79, 15.67, 22.96, 30.0]


def test_spans_from_cuts():
    assert spans_from_cuts([], 5.0) == [(0.0, 5.0)]
    assert spans_from_cuts([3.0, 1.0, 3.0, 0.0, 5.0, 7.0, -1.0], 5.0) == [(0.0, 1.0), (1.0, 3.0), (3.0, 5.0)]
    with pytest.raises(ValueError):
        spans_from_cuts([1.0], 0.0)


def lengths(spans):
    return [round(b - a, 6) for a, b in spans]


def check_cover(spans, start, end):
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("cuts, total, expected", [
    ([0.5], 10.0, [(0.0, 10.0)]),                                 # short first scene: into its only neighbour
    ([9.5], 10.0, [(0.0, 10.0)]),                                 # short last scene: into its only neighbour
    ([4.0, 5.0], 10.0, [(0.0, 5.0), (5.0, 10.0)]),                # middle: into the shorter neighbour (4 < 5)
    ([3.0, 4.0, 7.0], 10.0, [(0.0, 4.0), (4.0, 7.0), (7.0, 10.0)]),  # tie (3 = 3): the earlier one
    ([1.0, 1.5, 2.0, 6.0], 8.0, [(0.0, 2.0), (2.0, 6.0), (6.0, 8.0)]),  # fragments merge with each other
    ([0.5, 1.0], 1.5, [(0.0, 1.5)]),                              # a video shorter than min_len: one scene
    ([3.0, 6.0], 9.0, [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0)]),      # nothing short: unchanged
])
def test_merge_short(cuts, total, expected):
    merged = merge_short(spans_from_cuts(cuts, total), 2.0)
    assert merged == expected
    check_cover(merged, 0.0, total)


def test_merge_short_edge_cases():
    assert merge_short([], 2.0) == []
    assert merge_short([(0.0, 0.3)], 2.0) == [(0.0, 0.3)]
    assert merge_short([(0.0, 2.0), (2.0, 4.0)], 2.0) == [(0.0, 2.0), (2.0, 4.0)]  # exactly min_len stays


def test_split_long():
    assert split_long([(0.0, 30.0)], 30.0) == [(0.0, 30.0)]  # exactly max_len: not split
    parts = split_long([(0.0, 5.0), (5.0, 66.0)], 30.0)
    assert parts[0] == (0.0, 5.0) and len(parts) == 4
    assert lengths(parts[1:]) == [pytest.approx(61 / 3)] * 3
    check_cover(parts, 0.0, 66.0)
    with pytest.raises(ValueError):
        split_long([(0.0, 1.0)], 0.0)


def test_merge_then_split_keeps_every_scene_within_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        total = float(rng.uniform(2.5, 200))
        cuts = sorted(rng.uniform(0, total, rng.integers(0, 40)).tolist())
        spans = split_long(merge_short(spans_from_cuts(cuts, total), 2.0), 30.0)
        check_cover(spans, 0.0, total)
        assert all(2.0 - 1e-6 <= b - a <= 30.0 + 1e-6 for a, b in spans)


# --- frames ---------------------------------------------------------------------------------------


def test_frame_times():
    assert frame_times(0.0, 10.0) == pytest.approx([2.0, 5.0, 8.0])
    assert frame_times(10.0, 20.0, 1) == pytest.approx([15.0])
    assert frame_times(0.0, 10.0, 2) == pytest.approx([2.0, 8.0])
    assert frame_times(0.0, 10.0, 5) == pytest.approx([2.0, 3.5, 5.0, 6.5, 8.0])
    assert frame_times(0.0, 10.0, 0) == []


def all_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def read_to_end(decoded: AnalysisPass) -> int:
    n = 0
    while decoded.video.read() is not False:
        n += 1
    return n


@pytest.mark.parametrize("name", ["cuts.mp4", "offset.mkv"])
def test_analysis_pass_keeps_a_grid_of_the_right_frames(synth, name):
    """Every frame goes to detection; every 6th (4 a second at 24 fps) is kept for captioning,
    and a kept frame is the decoded frame at its time (JPEG-close, closer than any other)."""
    path = synth[name]
    expected = all_frames(path)  # 144 frames, index i shown at i/24 s after the first
    with AnalysisPass(str(path), probe(path)) as decoded:
        assert read_to_end(decoded) == 144
        assert decoded.video.frame_size == (160, 96)  # under 256 px: not enlarged
        assert decoded.grid_times() == pytest.approx([k * 0.25 for k in range(24)])
        for t, index in [(0.0, 0), (1.1, 24), (2.0 + 0.4 / 24, 48), (5.99, 138), (99.0, 138), (-1.0, 0)]:
            taken, image = decoded.frame_near(t)
            assert taken == pytest.approx(index / 24)
            assert image.mode == "RGB" and image.size == (160, 96)
            errors = [np.abs(np.asarray(image, np.int16) - frame).mean() for frame in expected]
            assert int(np.argmin(errors)) == index, (t, errors)
            assert np.median(np.abs(np.asarray(image, np.int16) - expected[index])) <= 2


def test_analysis_pass_reports_every_frame_read(synth):
    told = []
    with AnalysisPass(str(synth["cuts.mp4"]), probe(synth["cuts.mp4"]), on_frame=told.append) as decoded:
        assert decoded.frame_count == 144
        assert cuts_in(decoded.video) == pytest.approx(SYNTH_CUTS, abs=1 / 24 + 1e-6)
    assert sum(told) == 144 and len(told) <= 144 // 24 + 1


def test_frame_near_stays_inside_the_scene(synth):
    with AnalysisPass(str(synth["cuts.mp4"]), probe(synth["cuts.mp4"])) as decoded:
        read_to_end(decoded)
        # 2.0-3.5 s is flat red: the nearest kept frame to 1.9 s outside the span is at 2.0 s.
        taken, image = decoded.frame_near(1.9, (2.0, 3.5))
        assert taken == 2.0 and np.asarray(image)[48, 80, 0] > 200
        assert decoded.frame_near(3.6, (2.0, 3.5))[0] == 3.25
        # A scene between two kept frames: the nearest one overall.
        assert decoded.frame_near(2.1, (2.05, 2.15))[0] == 2.0


def test_enough_frames_are_kept_for_many_frames_per_scene(synth):
    from scoretool.media.frames import grid_fps

    assert grid_fps(3, 2.0) == 4.0  # the default grid is fine for the defaults
    assert grid_fps(8, 2.0) == pytest.approx(7 / 1.2)
    with AnalysisPass(str(synth["cuts.mp4"]), probe(synth["cuts.mp4"]), grid_fps=grid_fps(8, 1.5)) as decoded:
        read_to_end(decoded)
        taken = scene_frames(decoded, (2.0, 3.5), 8)  # the 1.5 s red scene
    assert len({t for t, _ in taken}) == 8 and all(2.0 <= t < 3.5 for t, _ in taken)


def test_scene_frames_records_the_times_taken(synth):
    with AnalysisPass(str(synth["cuts.mp4"]), probe(synth["cuts.mp4"])) as decoded:
        read_to_end(decoded)
        taken = scene_frames(decoded, (2.0, 6.0), 3)  # wanted 2.8, 4.0, 5.2
    assert [t for t, _ in taken] == [2.75, 4.0, 5.25]
    assert all(image.size == (160, 96) for _, image in taken)


def test_analysis_pass_scales_frames_and_caps_the_grid(tmp_path):
    """1080p: detection sees 256 x 144, captioning 854 x 480. A long video keeps at most
    GRID_MAX_FRAMES frames: here a 4 s clip limited to 2 frames a second."""
    clip = tmp_path / "hd.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30:d=4", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", clip)
    with AnalysisPass(str(clip), probe(clip), grid_fps=2) as decoded:
        assert read_to_end(decoded) == 120
        assert decoded.video.frame_size == (256, 144)
        assert len(decoded.grid_times()) == 8
        assert decoded.frame_near(1.0)[1].size == (854, 480)


def test_analysis_pass_shows_frames_as_displayed(synth, tmp_path):
    """A phone video stored landscape with a 90 degree display rotation is captioned upright."""
    rotated = tmp_path / "rotated.mp4"
    try:
        ffmpeg("-display_rotation", "90", "-i", synth["cuts.mp4"], "-c", "copy", rotated)
    except subprocess.CalledProcessError:
        pytest.skip("this ffmpeg has no -display_rotation")
    with AnalysisPass(str(rotated), probe(rotated)) as decoded:
        read_to_end(decoded)
        assert decoded.video.frame_size == (96, 160)
        assert decoded.frame_near(0.0)[1].size == (96, 160)


def test_analysis_pass_timing_of_a_variable_frame_rate_video(tmp_path):
    """1 s of red at 5 fps, then 1 s of blue at 30 fps: the cut is at 1.0 s, not at frame 5 of
    the average rate (17.5 fps: 0.29 s)."""
    vfr = tmp_path / "vfr.mkv"
    ffmpeg("-filter_complex", "color=c=red:s=64x64:r=5:d=1[a];color=c=blue:s=64x64:r=30:d=1[b];[a][b]concat=n=2:v=1:a=0[v]",
           "-map", "[v]", "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", vfr)
    info = probe(vfr)
    with AnalysisPass(str(vfr), info) as decoded:
        cuts = cuts_in(decoded.video)
        assert len(cuts) == 1 and abs(cuts[0] - 1.0) <= 1.5 / info.fps, (cuts, info.fps)
        assert np.asarray(decoded.frame_near(0.5)[1])[32, 32, 0] > 200  # red
        assert np.asarray(decoded.frame_near(1.5)[1])[32, 32, 2] > 200  # blue


def test_analysis_pass_reads_av1(synth):
    with AnalysisPass(str(synth["av1.mkv"]), probe(synth["av1.mkv"])) as decoded:
        assert read_to_end(decoded) == 5
        taken, image = decoded.frame_near(0.25)
    assert taken == pytest.approx(0.2) and image.size == (64, 64)
    assert np.median(np.abs(np.asarray(image, np.int16) - all_frames(synth["av1.mkv"])[2])) <= 2


def test_analysis_pass_on_an_undecodable_file_is_an_input_error(synth, tmp_path, monkeypatch):
    info = probe(synth["cuts.mp4"])  # a video's description, but the file is text
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        with pytest.raises(InputError, match="No video frame could be decoded") as caught:
            with AnalysisPass(str(synth["text.mp4"]), info) as decoded:
                read_to_end(decoded)
    finally:
        tempfile.tempdir = None
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # its frames folder went too


def test_analysis_pass_cleans_up_its_frames(synth):
    with AnalysisPass(str(synth["cuts.mp4"]), probe(synth["cuts.mp4"])) as decoded:
        folder = Path(decoded._folder)
        decoded.video.read()  # stopped early: ffmpeg is stopped and the folder still goes
        assert folder.is_dir()
    assert not folder.exists()


@needs_media
def test_scene_frames_image():
    frames = scene_frames(str(CHELSEA), (0.0, 5.0), 3)
    assert [t for t, _ in frames] == pytest.approx([1.0, 2.5, 4.0])
    images = [i for _, i in frames]
    assert len({id(i) for i in images}) == 3
    assert all(i.mode == "RGB" and i.size == (451, 300) for i in images)


def test_scene_frames_image_transposed_and_flattened(synth):
    rotated = scene_frames(str(synth["rotated.jpg"]), (0.0, 1.0), 1)[0][1]
    assert rotated.size == (20, 40) and rotated.mode == "RGB"
    flat = scene_frames(str(synth["alpha.png"]), (0.0, 1.0), 1)[0][1]
    assert flat.mode == "RGB" and flat.getpixel((0, 0)) == (0, 128, 0)  # half-transparent green on black


# --- mux: paths and containers --------------------------------------------------------------------


def test_check_output_path(tmp_path, synth, monkeypatch):
    src = str(synth["cuts.mp4"])
    for ext in (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".MP4"):
        assert mux.check_output_path(src, str(tmp_path / f"out{ext}")) == "video"
    assert mux.check_output_path(src, str(tmp_path / "out.wav")) == "audio"
    assert mux.check_output_path(src, str(tmp_path / "out.flac")) == "audio"
    assert mux.check_output_path(src, str(tmp_path / "p.json"), kinds=("plan",)) == "plan"

    def refused(out, says, **kw):
        with pytest.raises(OutputError) as caught:
            mux.check_output_path(src, str(out), **kw)
        assert says in str(caught.value) and "\n" not in str(caught.value)
        return str(caught.value)

    message = refused(tmp_path / "out.avi", "'.avi' is not an output type")
    assert ".mp4" in message and ".webm" in message and ".wav" in message
    refused(tmp_path / "out", "has no file extension")
    refused(src, "is the input file")
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    refused(link, "is the input file")
    refused(tmp_path / "nowhere" / "out.mp4", "does not exist")
    (tmp_path / "dir.mp4").mkdir()
    refused(tmp_path / "dir.mp4", "is a folder")
    refused(tmp_path / "out.mp4", "'.mp4' is not an output type", kinds=("plan",))

    def read_only(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mux.tempfile, "TemporaryFile", read_only)  # root may write anywhere: pretend
    refused(tmp_path / "out.mp4", "is not writable")


def info_with_codec(codec: str) -> MediaInfo:
    return MediaInfo(path="in.x", kind="video", duration=1.0, fps=24.0, width=16, height=16, video_codec=codec)


def test_check_container_messages():
    for ext in (".mkv", ".webm"):
        mux.check_container(info_with_codec("vp8"), "out" + ext)
    with pytest.raises(OutputError) as caught:
        mux.check_container(info_with_codec("vp8"), "out.mp4")
    assert str(caught.value) == (
        "The input's VP8 video cannot be copied into a .mp4 file (the picture is never re-encoded): "
        "use .mkv or .webm for the output instead."
    )
    with pytest.raises(OutputError, match=r"H264 .* \.webm file .*use \.mkv or \.mp4"):
        mux.check_container(info_with_codec("h264"), "out.webm")
    with pytest.raises(OutputError, match=r"PRORES .*use \.mkv or \.mov"):
        mux.check_container(info_with_codec("prores"), "out.mp4")
    for ext in (".mp4", ".m4v", ".mov", ".mkv"):
        mux.check_container(info_with_codec("h264"), "out" + ext)
    mux.check_container(MediaInfo(path="a.png", kind="image", duration=None, fps=None, width=1, height=1), "o.webm")


@pytest.mark.parametrize("codec, encoder", [("h264", "libx264"), ("vp8", "libvpx"), ("mpeg4", "mpeg4"), ("mjpeg", "mjpeg")])
def test_container_table_matches_ffmpeg(tmp_path, codec, encoder):
    """The codec table agrees with what this ffmpeg really does with -c:v copy."""
    src = tmp_path / "src.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x64:r=5:d=0.4", "-c:v", encoder, "-pix_fmt", "yuv420p"
           if codec != "mjpeg" else "yuvj420p", src)
    for ext, muxer in mux._MUXERS.items():
        out = tmp_path / f"out{ext}"
        try:
            run_ffmpeg(["-y", "-i", str(src), "-map", "0:V:0", "-c:v", "copy", "-f", muxer, str(out)])
            works = True
        except OutputError:
            works = False
        assert works == mux._takes(muxer, codec), (codec, ext)


# --- mux: writing ---------------------------------------------------------------------------------


def check_mux(src, out, info, max_gap=None):
    assert packets_md5(src) == packets_md5(out)  # the picture, bit for bit
    audio, rate, _first = decoded_audio(out)
    # AAC pads its last frame (1024 samples): allow that on top of exactness.
    assert abs(audio.size / rate - info.duration) <= (max_gap or 1 / info.fps)
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1


@needs_media
@pytest.mark.parametrize("name, ext, audio_codec", [
    ("big_buck_bunny_0_30.webm", ".webm", "opus"),
    ("clip_01_tears_of_steel.mp4", ".mp4", "aac"),
    ("bigbuckbunny.mp4", ".mov", "aac"),
])
def test_mux_video_shared(tmp_path, name, ext, audio_codec):
    src = SHARED_MEDIA / name
    before = file_sha(src)
    info = probe(src)
    wav = write_tone(tmp_path / "music.wav", info.duration + 0.5)  # longer than the video: trimmed
    out = tmp_path / f"scored{ext}"
    mux.mux_video(info, str(wav), str(out))
    check_mux(src, out, info)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == audio_codec
    assert file_sha(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music.wav", out.name]  # no temp left over
    if name.endswith(".mp4") and CHECK_OUTPUT.is_file():
        run = subprocess.run([sys.executable, str(CHECK_OUTPUT), str(src), str(out)], capture_output=True, text=True)
        assert json.loads(run.stdout)["ok"], run.stdout


@pytest.mark.parametrize("name, ext", [("offset.mp4", ".mp4"), ("offset.mkv", ".mkv"), ("offset.mkv", ".mp4")])
def test_mux_aligns_music_with_first_frame(synth, tmp_path, name, ext):
    src = synth[name]
    info = probe(src)
    wav = write_tone(tmp_path / "music.wav", info.duration - 1.0, rate=44100, channels=1, tone_seconds=1.0)
    out = tmp_path / f"out{ext}"
    mux.mux_video(info, str(wav), str(out))  # the WAV is 1 s short: padded with silence
    check_mux(src, out, info, max_gap=0.05)
    audio, rate, first = decoded_audio(out)
    onset = first + np.flatnonzero(np.abs(audio) > 0.05)[0] / rate
    assert onset == pytest.approx(first_video_time(out), abs=0.002)


def test_mux_failure_leaves_nothing(synth, tmp_path):
    info = probe(synth["cuts.mp4"])
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputError) as caught:
        mux.mux_video(info, str(tmp_path / "missing.wav"), str(out))
    assert "ffmpeg failed" in str(caught.value) and "missing.wav" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    # An existing output stays as it was.
    out.write_bytes(b"old")
    with pytest.raises(OutputError):
        mux.mux_video(info, str(tmp_path / "missing.wav"), str(out))
    assert out.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_mux_refuses_vp8_into_mp4_before_running(synth, tmp_path):
    with pytest.raises(OutputError, match=r"VP8 .* use \.mkv or \.webm"):
        mux.mux_video(probe(synth["vp8.mkv"]), "unused.wav", str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_write_atomic(tmp_path):
    from scoretool.files import write_atomic

    out = tmp_path / "plan.json"
    seen = []

    def writer(tmp):
        seen.append(tmp)
        assert tmp.endswith(".json") and os.path.dirname(tmp) == str(tmp_path)
        Path(tmp).write_text("{}")

    write_atomic(str(out), writer)
    umask = os.umask(0)
    os.umask(umask)
    assert out.read_text() == "{}" and not os.path.exists(seen[0])
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask

    def interrupted(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(tmp_path / "other.json"), interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


@needs_media
@pytest.mark.parametrize("ext, video_codec, audio_codec", [(".mp4", "h264", "aac"), (".webm", "vp9", "opus")])
def test_still_video(tmp_path, ext, video_codec, audio_codec, monkeypatch):
    import tempfile

    from scoretool import files

    wav = write_tone(tmp_path / "music.wav", 2.5)
    out = tmp_path / f"still{ext}"
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    during = []
    run = mux.run_ffmpeg
    monkeypatch.setattr(mux, "run_ffmpeg", lambda *a, **k: during.extend(os.listdir(temp)) or run(*a, **k))
    mux.still_video(str(CHELSEA), str(wav), str(out), 2.33)
    # its work folder is one a later run sweeps if this one is killed; gone when it ends
    assert during and all(files._TEMP_NAME.fullmatch(n) and n.startswith("scoretool-still-") for n in during)
    assert not os.listdir(temp)
    temp.rmdir()
    info = probe(out)
    assert (info.width, info.height) == (450, 300)  # 451 is odd: cropped by one pixel
    assert info.duration == pytest.approx(2.33, abs=0.002)
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == (video_codec, "yuv420p")
        assert a.codec_context.name == audio_codec
    audio, rate, _ = decoded_audio(out)
    assert audio.size / rate == pytest.approx(2.33, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music.wav", out.name]


def test_still_frame_rate_is_exact():
    for duration in (0.5, 2.33, 7.33, 30.0, 123.456):
        fps = mux.still_frame_rate(duration)
        frames = fps * round(duration * 1000) / 1000
        assert frames.denominator == 1 and 4 <= float(fps) <= 10


# --- ffmpeg ---------------------------------------------------------------------------------------


def test_run_ffmpeg_error_is_one_line():
    assert os.access(ffmpeg_exe(), os.X_OK)
    with pytest.raises(OutputError) as caught:
        run_ffmpeg(["-i", "/nonexistent/input.mp4", "-f", "null", "-"])
    message = str(caught.value)
    assert message.startswith("ffmpeg failed:") and "/nonexistent/input.mp4" in message
    assert "\n" not in message and "@ 0x" not in message
    assert isinstance(caught.value, ScoreToolError)

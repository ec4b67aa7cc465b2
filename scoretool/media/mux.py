"""Write the result: check the output path, then mux the music under the untouched picture.

The picture is stream-copied (`-c:v copy`), so its packets come out bit for bit. Every file is
written to a temporary name beside the target and renamed into place, so an interrupted or
failed run never leaves a half-written file at the output path.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from fractions import Fraction

from scoretool.errors import OutputError
from scoretool.files import temp_folder, write_atomic
from scoretool.media.ffmpeg import run_ffmpeg
from scoretool.media.info import MediaInfo

OUTPUT_KINDS: dict[str, tuple[str, ...]] = {
    "video": (".mp4", ".m4v", ".mov", ".mkv", ".webm"),
    "audio": (".wav", ".flac"),
    "plan": (".json",),
}

# ffmpeg muxer per video extension. .m4v goes through the mp4 muxer: ffmpeg's default for it
# ("ipod") refuses HEVC, AV1 and VP9, which the mp4 muxer takes.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}

# Which video codecs each muxer takes with -c:v copy. Checked against the ffmpeg 9 in
# imageio-ffmpeg by copying a clip of each codec into each container (see tests/test_media.py).
# None means "anything ffmpeg can decode" (Matroska stores any codec).
_COPYABLE: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "png"}),
    "mov": frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "png", "prores",
                      "h263", "theora", "rawvideo", "msmpeg4v3", "dnxhd", "dvvideo", "qtrle", "cinepak"}),
    "webm": frozenset({"vp8", "vp9", "av1"}),
    "matroska": None,
}

# Music codec per muxer: Opus is the only modern choice WebM allows; AAC plays everywhere else.
_AUDIO_ARGS = {
    "webm": ["-c:a", "libopus", "-b:a", "160k", "-ar", "48000"],
    "default": ["-c:a", "aac", "-b:a", "256k"],
}

# Sample peak the encoded sound must stay under (dBFS). Lossy encoders overshoot the peak the limiter
# set: measured up to 1.6 dB with ffmpeg's AAC at 192k on noisy music (0.1 dB at 256k), 0.7 dB with
# Opus. So the encoded file is measured, and where it goes over, `relimit` is asked for a soundtrack
# limited that much lower and the file is encoded again (before it is renamed into place).
PEAK_LIMIT_DB = -1.0
_PEAK_TRIES = 3

Relimit = Callable[[float], str]  # dB over the limit -> path of a WAV limited lower

# Still-image videos: a few frames a second is plenty for a picture that never moves, and
# stays well inside what players and editors accept (some stumble below ~1 fps).
STILL_FPS = 5
# A photo's video is 1080p at most (the shorter side at most 1080, the longer at most 1920): more
# shows nothing more on most screens, and x264 needs several hundred MB more for a 4K picture.
_STILL_SHORTER_SIDE = 1080
_STILL_LONGER_SIDE = 1920

# The process umask, for giving written files ordinary permissions (read once: os.umask can
# only be read by setting it).


def check_output_path(
    input_path: str, output_path: str, *, kinds: Iterable[str] = ("video", "audio")
) -> str:
    """Return the kind of output `output_path` names ("video", "audio", "plan"), or raise OutputError."""
    kinds = tuple(kinds)
    ext = os.path.splitext(output_path)[1].lower()
    kind = next((k for k in kinds if ext in OUTPUT_KINDS[k]), None)
    if kind is None:
        valid = "; ".join(f"{', '.join(OUTPUT_KINDS[k])} ({k})" for k in kinds)
        what = f"'{ext}' is not an output type we write" if ext else "it has no file extension"
        raise OutputError(f"Cannot write {output_path}: {what}. Use one of: {valid}.")
    if _same_file(input_path, output_path):
        raise OutputError(
            f"The output {output_path} is the input file: choose another name (the input is never overwritten)."
        )
    if os.path.isdir(output_path):
        example = os.path.join(output_path, "scored" + OUTPUT_KINDS[kind][0])
        raise OutputError(f"The output {output_path} is a folder: give a file name, e.g. {example}.")
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise OutputError(f"The output folder {folder} does not exist.")
    try:  # really try: os.access says yes to root even where the kernel will say no
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        raise OutputError(f"The output folder {folder} is not writable.") from None
    return kind


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)  # hard links
    return False


def check_container(info: MediaInfo, output_path: str) -> None:
    """Raise OutputError when the input's video codec cannot be stream-copied into `output_path`."""
    ext = os.path.splitext(output_path)[1].lower()
    muxer = _MUXERS.get(ext)
    if muxer is None or info.kind != "video" or not info.video_codec:
        return
    allowed = _COPYABLE[muxer]
    if allowed is None or info.video_codec in allowed:
        return
    fits = [e for e in (".mp4", ".mov", ".webm") if _takes(_MUXERS[e], info.video_codec)]
    suggestion = " or ".join([".mkv", *fits[:1]])
    raise OutputError(
        f"The input's {info.video_codec.upper()} video cannot be copied into a {ext} file "
        f"(the picture is never re-encoded): use {suggestion} for the output instead."
    )


def _takes(muxer: str, codec: str) -> bool:
    allowed = _COPYABLE[muxer]
    return allowed is None or codec in allowed


def mux_video(info: MediaInfo, audio_wav: str, output_path: str, relimit: Relimit | None = None) -> None:
    """Copy the input's picture bit for bit and put `audio_wav` under it as the only sound.

    The WAV's first sample is placed on the first video frame (which may not be at 0 s) and the
    track is trimmed or padded with silence to exactly the video's length. `relimit`: see PEAK_LIMIT_DB.
    """
    check_container(info, output_path)
    muxer = _MUXERS[os.path.splitext(output_path)[1].lower()]
    offset = info.start_time - _container_start(info.path)

    def write(tmp: str, audio_wav: str) -> None:
        args = ["-y", "-i", info.path]
        if offset > 0:
            args += ["-itsoffset", f"{offset:.6f}"]
        args += ["-i", audio_wav,
                 "-map", "0:V:0",  # capital V: the first real video stream, never cover art
                 "-map", "1:a:0",
                 "-c:v", "copy",
                 *_audio_args(muxer),
                 "-af", f"apad=whole_dur={info.duration:.6f},atrim=duration={info.duration:.6f}",
                 "-map_metadata", "0", "-map_chapters", "0",
                 "-f", muxer]
        run_ffmpeg([*args, *_faststart(muxer), tmp])

    write_atomic(output_path, lambda tmp: _write_under_peak(write, tmp, audio_wav, relimit))


def still_video(image_path: str, audio_wav: str, output_path: str, duration: float, relimit: Relimit | None = None) -> None:
    """A video of the still image lasting exactly `duration` seconds, with `audio_wav` as its sound.

    H.264 (or VP9 for .webm) in yuv420p, so the picture is cropped to even dimensions (by at most
    one pixel); a picture over 1080p is shrunk to it.
    """
    from scoretool.media.frames import load_image

    if duration <= 0:
        raise ValueError("duration must be positive")
    muxer = _MUXERS.get(os.path.splitext(output_path)[1].lower())
    if muxer is None:
        raise OutputError(f"Cannot write {output_path}: a video must end in {', '.join(_MUXERS)}.")
    picture = "crop=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p"  # the picture comes already shrunk
    if muxer == "webm":
        video_args = ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "32", "-deadline", "good", "-cpu-used", "8"]
    else:
        video_args = ["-c:v", "libx264", "-tune", "stillimage", "-preset", "medium", "-crf", "20"]

    fps = still_frame_rate(duration)
    with temp_folder("still") as work:
        # Pillow reads more kinds of image than ffmpeg and applies the EXIF rotation; it decodes a
        # big photo at about the size the video gets.
        png = os.path.join(work, "still.png")
        load_image(image_path, _STILL_SHORTER_SIDE, _STILL_LONGER_SIDE).save(png, compress_level=1)

        def write(tmp: str, audio_wav: str) -> None:
            run_ffmpeg([
                "-y", "-loop", "1", "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", png,
                "-i", audio_wav,
                "-map", "0:v:0", "-map", "1:a:0",
                "-vf", picture, *video_args, "-g", str(10 * STILL_FPS),
                *_audio_args(muxer),
                "-af", f"apad=whole_dur={duration:.6f},atrim=duration={duration:.6f}",
                "-t", f"{duration:.6f}",
                "-f", muxer,
                *_faststart(muxer),
                tmp,
            ])

        write_atomic(output_path, lambda tmp: _write_under_peak(write, tmp, audio_wav, relimit))


def _write_under_peak(write: Callable[[str, str], None], tmp: str, audio_wav: str, relimit: Relimit | None) -> None:
    """write(tmp, wav); while the encoded sound peaks over PEAK_LIMIT_DB, again with a WAV from `relimit`."""
    for attempt in range(_PEAK_TRIES):
        write(tmp, audio_wav)
        over = encoded_peak_db(tmp) - PEAK_LIMIT_DB
        if relimit is None or over <= 0 or attempt == _PEAK_TRIES - 1:
            return
        audio_wav = relimit(over)


def encoded_peak_db(path: str) -> float:
    """Sample peak (dBFS) of a file's first audio stream, as a player decodes it."""
    import av
    import numpy as np

    peak = 0.0
    with av.open(path) as container:
        for frame in container.decode(container.streams.audio[0]):
            peak = max(peak, float(np.abs(frame.to_ndarray()).max(initial=0.0)))
    return 20 * math.log10(peak) if peak > 0 else float("-inf")


def still_frame_rate(duration: float) -> Fraction:
    """About STILL_FPS, nudged so that a whole number of frames lasts exactly `duration`
    (to the millisecond): every frame lasts as long as the others, the last one included."""
    ms = max(1, round(duration * 1000))
    frames = max(1, math.ceil(ms * STILL_FPS / 1000))
    return Fraction(frames * 1000, ms)


def _faststart(muxer: str) -> list[str]:
    """MP4/MOV: put the index first so playback can start before the whole file is loaded."""
    return ["-movflags", "+faststart"] if muxer in ("mp4", "mov") else []


def _audio_args(muxer: str) -> list[str]:
    return _AUDIO_ARGS.get(muxer, _AUDIO_ARGS["default"])


def _container_start(path: str) -> float:
    """Where ffmpeg's timeline starts for this input: it shifts every stream by this much,
    so the first video frame lands at (video start - container start) in the output."""
    import av

    with av.open(path, metadata_errors="replace") as container:
        return (container.start_time or 0) / av.time_base

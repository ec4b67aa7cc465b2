"""Probe an input file with PyAV (videos) or Pillow (still images).

Every input we cannot score is rejected here with an InputError whose message is one sentence.
All times elsewhere in scoretool are relative to the first video frame; `start_time` records
where that frame sits in the file so the mux can line the music up with it.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import av

from scoretool.errors import InputError
from scoretool.media.info import MediaInfo

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

# PyAV opens single images too (as a one-frame "video"); these demuxers mean "it is a picture".
_IMAGE_DEMUXERS = ("image2", "_pipe")

# How far before the end to seek when measuring a duration the container does not state.
_TAIL_SECONDS = 10.0
# Packets to try before giving up on decoding the first frame (covers a broken first GOP).
_MAX_PACKETS_FOR_FIRST_FRAME = 500


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a video or still image, or raise InputError (one sentence naming the file as given)."""
    path = os.fspath(path)
    _check_file(path)
    if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
        return _probe_image(path)
    return _probe_video(path)


def _check_file(path: str) -> None:
    if not os.path.lexists(path):
        raise InputError(f"{path} does not exist.")
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a video or image file.")
    if not os.path.exists(path):
        raise InputError(f"{path} is a broken link.")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path} cannot be read (permission denied).")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is empty (0 bytes).")


def _probe_image(path: str) -> MediaInfo:
    from PIL import Image, UnidentifiedImageError

    from scoretool.media.frames import open_image

    try:
        with open_image(path) as img:
            width, height = img.size
            fmt = (img.format or "image").lower()
            # Decode now, so a truncated picture fails here, not in a later stage; a JPEG at an 8th
            # of its size (every byte is still read), so a big photo costs little memory here.
            img.draft(None, (max(1, width // 8), max(1, height // 8)))
            img.load()
            # EXIF orientations 5-8 are rotated by 90 degrees: report the size as displayed.
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InputError(f"{path} is not an image we can read (unknown format or damaged).") from None
    return MediaInfo(path=path, kind="image", duration=None, fps=None, width=width, height=height,
                     container=fmt)


def _probe_video(path: str) -> MediaInfo:
    try:
        container = av.open(path, metadata_errors="replace")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        raise InputError(f"{path} is not a video or image we can read (unknown format or damaged).") from None
    with container:
        if any(part in container.format.name for part in _IMAGE_DEMUXERS):
            return _probe_image(path)  # a picture with a video-like name
        video = main_video_stream(container)
        if video is not None and video.codec_context is None:
            raise InputError(f"{path} uses a video codec we cannot decode.")
        if video is None and container.streams.audio:
            raise InputError(f"{path} has no video stream (it is audio only); give a video or an image.")
        if video is None:
            raise InputError(f"{path} is not a video or image (it has no video stream).")
        first = _first_frame_time(container, video)
        if first is None:
            raise InputError(
                f"{path} has a video stream with no frames we can decode (zero-length or damaged)."
            )
        fps = _fps(video)
        duration = _video_duration(container, video, first, fps)
        if not duration or duration <= 0:
            raise InputError(f"{path} is a zero-length video.")
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            path=path,
            kind="video",
            duration=duration,
            fps=float(fps) if fps else None,
            width=video.codec_context.width,
            height=video.codec_context.height,
            start_time=first,
            video_codec=video.codec_context.codec.canonical_name,  # "av1", not the decoder "libdav1d"
            container=container.format.name,
            frame_count=video.frames or None,
            has_audio=audio is not None,
            audio_channels=len(audio.codec_context.layout.channels) if audio else None,
            audio_rate=audio.codec_context.sample_rate if audio else None,
        )


def main_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first video stream that is real picture, not cover art (ffmpeg's `-map 0:V:0`)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _fps(video: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (video.average_rate, video.guessed_rate, video.base_rate):
        if rate and 0 < rate < 1000:
            return Fraction(rate)
    return None


def _first_frame_time(container: av.container.InputContainer, video) -> float | None:
    """Decode until the first frame and return its time in seconds (None: nothing decodes)."""
    for n, packet in enumerate(container.demux(video)):
        if n >= _MAX_PACKETS_FOR_FIRST_FRAME:
            break
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            continue  # a damaged packet: keep trying the next ones
        for frame in frames:
            return _frame_time(frame, video)
    try:  # a decoder with delay (or a one-frame video) may only give its frame when flushed
        for frame in video.decode(None):
            return _frame_time(frame, video)
    except av.error.FFmpegError:
        pass
    return None


def _frame_time(frame, video) -> float:
    if frame.pts is not None:
        return float(frame.pts * video.time_base)
    return float(video.start_time * video.time_base) if video.start_time is not None else 0.0


def _video_duration(container, video, first: float, fps: Fraction | None) -> float | None:
    """Seconds from the first video frame to the end of the last one.

    MP4/MOV state the stream's duration and frame count in the index: trust them. Matroska/WebM
    (and some others) state neither (the header's duration is for the whole file, includes the
    first frame's offset, and is wrong for truncated files), so measure: read the timestamps
    of the last few seconds of packets.
    """
    tb = video.time_base
    if video.frames and video.duration:
        return float(video.duration * tb)
    measured = _measure_tail(container, video, first, fps)
    if measured is not None:
        return measured
    if video.duration:
        return float(video.duration * tb)
    if container.duration:
        start = container.start_time / av.time_base if container.start_time else 0.0
        return container.duration / av.time_base - max(0.0, first - start)
    return None


def _measure_tail(container, video, first: float, fps: Fraction | None) -> float | None:
    """End of the last frame, from the timestamps of the packets in the last few seconds."""
    with av.open(container.name, metadata_errors="replace") as fresh:
        stream = fresh.streams[video.index]
        if fresh.duration:
            start = (fresh.start_time or 0) / av.time_base
            target = start + fresh.duration / av.time_base - _TAIL_SECONDS
            if target > start:
                try:
                    fresh.seek(math.floor(target / video.time_base), stream=stream)
                except av.error.FFmpegError:
                    pass  # not seekable (no index): a failed seek leaves PyAV at EOF
                end = _last_frame_end(fresh, stream, first, fps)
                if end is not None and end > 0:
                    return end
                # The header promised more than the file holds (truncated): read it all.
                return _measure_tail_from_start(container.name, video.index, first, fps)
        return _last_frame_end(fresh, stream, first, fps)


def _measure_tail_from_start(path: str, index: int, first: float, fps: Fraction | None) -> float | None:
    with av.open(path, metadata_errors="replace") as fresh:
        return _last_frame_end(fresh, fresh.streams[index], first, fps)


def _last_frame_end(container, stream, first: float, fps: Fraction | None) -> float | None:
    tb = stream.time_base
    last_pts, last_dur = None, 0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size and (last_pts is None or packet.pts >= last_pts):
                last_pts, last_dur = packet.pts, packet.duration or 0
    except av.error.FFmpegError:
        pass  # a damaged tail: keep what was read before it
    if last_pts is None:
        return None
    # Prefer 1/fps to the packet's own duration: Matroska rounds both to whole milliseconds.
    frame = float(1 / fps) if fps else float(last_dur * tb)
    return float(last_pts * tb) - first + frame

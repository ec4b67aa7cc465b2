"""Small independent checks of outputs, read with PyAV (not with scoretool's own code)."""

import hashlib
import subprocess

import av
import numpy as np


def video_packets_md5(path) -> str:
    h = hashlib.md5()
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.size:
                h.update(bytes(p))
    return h.hexdigest()


def audio_and_video_seconds(path) -> tuple[float, float]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        video = float(v.duration * v.time_base) if v.duration else c.duration / 1e6
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(a))
        return samples / a.codec_context.sample_rate, video


def file_md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def make_clip(path, colours=("red", "blue"), seconds=2.0, size="160x120", rate=24, audio=False):
    """A synthetic H.264 clip of solid colours with hard cuts between them."""
    from scoretool.media.ffmpeg import ffmpeg_exe

    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    for c in colours:
        args += ["-f", "lavfi", "-i", f"color=c={c}:s={size}:r={rate}:d={seconds}"]
    n = len(colours)
    if audio:  # a mono tone under the whole clip
        args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds * n}"]
    graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    args += ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac"]
    subprocess.run(args + [str(path)], check=True)
    return path


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))


def media_info(path="x.mp4", kind="video"):
    """A probed-input record for plans built by hand in tests (no file behind it)."""
    from scoretool.media.info import MediaInfo

    return MediaInfo(path=path, kind=kind, duration=None, fps=None, width=0, height=0)

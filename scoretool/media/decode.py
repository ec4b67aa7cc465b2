"""One decode of a video feeds both scene detection and frame sampling.

H.264 at 1080p costs far more to decode than to analyse, so the video is decoded once, by one
ffmpeg process with two outputs:
- a small picture (larger side 256 px, PySceneDetect's own working size) of every frame, piped
  as YUV4MPEG to a PySceneDetect `VideoStream`, so any of its detectors can run on it;
- a caption-sized picture (shorter side at most 480 px) of every `step`-th frame, written as a
  JPEG to a temporary folder: the grid that frames for captioning are later picked from, once
  the scenes are known.
Memory stays flat whatever the video's length (a few small frames in flight; the grid is on
disk), and nothing seeks.

Times are seconds from the first video frame. The stream is resampled to the nominal frame rate
(ffmpeg's `fps` filter), so frame `n` is what is on screen at `n / fps` even for variable-rate
video; for constant-rate video that changes nothing.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import subprocess
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from scoretool.errors import InputError
from scoretool.files import make_temp_folder
from scoretool.media.ffmpeg import ffmpeg_exe, last_error, start
from scoretool.media.info import MediaInfo

log = logging.getLogger(__name__)

DETECT_SIZE = 256  # larger side of the frames scene detection sees (PySceneDetect's default)
CAPTION_SIDE = 480  # shorter side of the frames kept for captioning (BLIP looks at 384 x 384)
GRID_FPS = 4.0  # frames kept for captioning per second of video...
GRID_MAX_FRAMES = 4000  # ...but no more than this many (about 150 MB of JPEGs) for a long film
_REPORT_EVERY = 24  # frames per progress report


class AnalysisPass:
    """`with AnalysisPass(path, info) as decoded:` read `decoded.video` to the end (PySceneDetect's
    `SceneManager.detect_scenes(video=decoded.video)` does), then `decoded.frame_near(t, span)`.

    `downscale` shrinks detection frames by that factor of the full size instead of to 256 px.
    `on_frame(n)` is told of frames as they are read, a few dozen at a time (from PySceneDetect's
    decode thread).
    """

    def __init__(
        self,
        path: str,
        info: MediaInfo,
        *,
        downscale: float | None = None,
        grid_fps: float = GRID_FPS,
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        if info.kind != "video" or not info.duration:
            raise ValueError("AnalysisPass needs a video")
        self.path = path
        self.info = info
        self.fps = Fraction(info.fps or 25).limit_denominator(100_000)
        grid_fps = min(grid_fps, GRID_MAX_FRAMES / info.duration)
        self.step = max(1, round(float(self.fps) / grid_fps))  # detection frames per grid frame
        self._downscale = downscale
        self.on_frame = on_frame
        self._folder: str | None = None
        self._proc: subprocess.Popen | None = None
        self._stderr_thread: threading.Thread | None = None
        self._stderr: list[bytes] = []
        self._grid_count: int | None = None  # known once ffmpeg has finished
        self.video = None  # the PySceneDetect VideoStream, once started

    @property
    def frame_count(self) -> int:
        """About how many frames the pass will read (for progress bars)."""
        return max(1, round(self.info.duration * float(self.fps)))

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AnalysisPass:
        self._folder = make_temp_folder("frames")
        try:  # __exit__ is not called when __enter__ raises (a Ctrl-C at any point of it included)
            cmd = [
                ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
                "-i", self.path, "-filter_complex", self._graph(),
                "-map", "[detect]", "-f", "yuv4mpegpipe", "pipe:1",
                # -r at the grid's own rate (its timestamps are made regular in the graph): one file per kept
                # frame, with no ffmpeg-version-specific sync option.
                "-map", "[grid]", "-r", str(self._grid_rate), "-q:v", "2", "-start_number", "0", str(Path(self._folder) / "%07d.jpg"),
            ]  # fmt: skip
            try:
                self._proc = start(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
            except OSError as e:
                raise InputError(f"Could not run ffmpeg ({cmd[0]}) to read {self.path}: {e.strerror or e}.") from None
            # Drain stderr as it comes: a chatty decoder must not fill the pipe and stall ffmpeg.
            self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
            self._stderr_thread.start()
            self.video = _PipeStream(self)  # reads the stream header: an undecodable file fails here
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc.stdout.close()
            if self._stderr_thread is not None:
                self._stderr_thread.join(timeout=5)
            self._proc.stderr.close()
            self._proc = None
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _graph(self) -> str:
        if self._downscale:
            detect = f"scale=w='max(2,trunc(iw/{self._downscale:g}/2)*2)':h=-2"
        else:  # larger side to 256 px, never enlarged
            detect = (f"scale=w='if(gte(iw,ih),min({DETECT_SIZE},iw),-2)'"
                      f":h='if(gte(iw,ih),-2,min({DETECT_SIZE},ih))'")  # fmt: skip
        caption = (f"scale=w='if(gte(iw,ih),-2,min({CAPTION_SIDE},iw))'"
                   f":h='if(gte(iw,ih),min({CAPTION_SIDE},ih),-2)'")  # fmt: skip
        # Detection frames are point-sampled (`neighbor`, the cheapest scaler): PySceneDetect's own
        # cv2 linear shrink reads only 2 x 2 pixels per output pixel at this factor, so it is no
        # smoother, and its detectors only compare frame to frame.
        return (
            f"[0:V:0]setpts=PTS-STARTPTS,fps={self.fps},split[a][b];"
            f"[a]{detect}:flags=neighbor,format=yuv420p[detect];"
            f"[b]select='not(mod(n,{self.step}))',setpts=N/(({self._grid_rate})*TB),"
            f"{caption}:flags=bicubic,format=yuvj420p[grid]"
        )

    def _drain_stderr(self) -> None:
        for line in self._proc.stderr:
            if len(self._stderr) < 50:
                self._stderr.append(line)

    def _finish(self, frames_read: int) -> None:
        """Called at the end of the pipe: wait for ffmpeg and judge how it went."""
        code = self._proc.wait()
        self._grid_count = len(list(Path(self._folder).glob("*.jpg")))
        self._stderr_thread.join(timeout=5)
        message = b"".join(self._stderr).decode(errors="replace").strip()
        if frames_read == 0:
            raise InputError(f"No video frame could be decoded from {self.path}: {last_error(message, code)}")
        if code != 0 or message:  # a damaged tail, say: keep the frames that decoded
            log.info("ffmpeg reading %s (exit %s): %s", self.path, code, message[-500:])

    # ------------------------------------------------------------------ the caption grid
    @property
    def _grid_rate(self) -> Fraction:
        return self.fps / self.step

    @property
    def grid_spacing(self) -> float:
        """Seconds between two frames kept for captioning."""
        return self.step / float(self.fps)

    def grid_times(self) -> list[float]:
        """Times of the frames kept for captioning (once the video has been read to its end)."""
        return [k * self.grid_spacing for k in range(self._kept())]

    def _kept(self) -> int:
        if self._grid_count is None:
            raise RuntimeError("read the analysis pass's video to its end before picking frames")
        return self._grid_count

    def frame_near(self, t: float, span: tuple[float, float] | None = None) -> tuple[float, Image.Image]:
        """The kept frame nearest to `t` (inside `span` when one is), and its time."""
        count = self._kept()
        if not count:
            raise InputError(f"No video frame could be decoded from {self.path}.")
        lo, hi = 0, count - 1
        if span is not None:  # the kept frames at span[0] <= time < span[1], if there are any
            first = max(lo, math.ceil(span[0] / self.grid_spacing - 1e-9))
            last = min(hi, math.ceil(span[1] / self.grid_spacing - 1e-9) - 1)
            if first <= last:
                lo, hi = first, last
        k = min(max(round(t / self.grid_spacing), lo), hi)
        with Image.open(Path(self._folder) / f"{k:07d}.jpg") as img:
            return k * self.grid_spacing, img.convert("RGB")


class _Y4MReader:
    """Frames of a YUV4MPEG2 4:2:0 stream as BGR arrays."""

    def __init__(self, stream) -> None:
        self._stream = stream
        header = stream.readline()
        if not header.startswith(b"YUV4MPEG2"):
            raise EOFError  # ffmpeg wrote nothing: it could not open or decode the video
        fields = {f[:1]: f[1:] for f in header.split()[1:]}
        self.width, self.height = int(fields[b"W"]), int(fields[b"H"])
        chroma = math.ceil(self.width / 2) * math.ceil(self.height / 2)
        self._frame_bytes = self.width * self.height + 2 * chroma

    def read(self) -> np.ndarray | None:
        import cv2

        marker = self._stream.readline()
        if not marker.startswith(b"FRAME"):
            return None
        data = self._stream.read(self._frame_bytes)  # a buffered read: short only at the end
        if len(data) < self._frame_bytes:
            return None
        yuv = np.frombuffer(data, np.uint8).reshape(self.height * 3 // 2, self.width)
        return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)


@functools.cache
def _pipe_stream_class():
    """PySceneDetect's VideoStream base, imported when first needed (scenedetect pulls in cv2)."""
    from scenedetect.common import FrameTimecode
    from scenedetect.video_stream import VideoStream

    class PipeStream(VideoStream):
        """A forward-only VideoStream over the analysis pass's ffmpeg pipe."""

        BACKEND_NAME = "scoretool-ffmpeg-pipe"

        def __init__(self, owner: AnalysisPass) -> None:
            self._owner = owner
            self._frames_read = 0
            self._ended = False
            try:
                self._reader = _Y4MReader(owner._proc.stdout)
            except EOFError:
                self._reader = None
                self._end()

        path = property(lambda self: self._owner.path)
        name = property(lambda self: Path(self._owner.path).stem)
        is_seekable = property(lambda self: False)
        frame_rate = property(lambda self: self._owner.fps)
        aspect_ratio = property(lambda self: 1.0)
        frame_number = property(lambda self: self._frames_read)
        position = property(lambda self: FrameTimecode(max(0, self._frames_read - 1), fps=self._owner.fps))
        position_ms = property(lambda self: max(0, self._frames_read - 1) * 1000.0 / float(self._owner.fps))

        duration = property(lambda self: FrameTimecode(self._owner.frame_count, fps=self._owner.fps))

        @property
        def frame_size(self) -> tuple[int, int]:
            return (self._reader.width, self._reader.height) if self._reader else (0, 0)

        def read(self, decode: bool = True):
            if self._ended:
                return False
            frame = self._reader.read()
            if frame is None:
                self._end()
                return False
            self._frames_read += 1
            if self._frames_read % _REPORT_EVERY == 0 and self._owner.on_frame:
                self._owner.on_frame(_REPORT_EVERY)
            return frame if decode else True

        def _end(self) -> None:
            self._ended = True
            if self._owner.on_frame and self._frames_read % _REPORT_EVERY:
                self._owner.on_frame(self._frames_read % _REPORT_EVERY)
            self._owner._finish(self._frames_read)

        def reset(self) -> None:
            raise NotImplementedError("the analysis pass reads a video once, forward")

        def seek(self, target) -> None:
            raise NotImplementedError("the analysis pass reads a video once, forward")

    return PipeStream


def _PipeStream(owner: AnalysisPass):
    return _pipe_stream_class()(owner)

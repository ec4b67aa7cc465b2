"""The input's own sound: read it, and lay the music under it (`--original-audio`).

- `replace`: the music alone.
- `mix`: the original and the music together, the music at `music_level` dB.
- `duck`: like `mix`, but the music dips by `duck_depth` dB under the original's speech (found by
  Silero VAD, `speech.py`) and by at most `duck_other` dB under its other sound (effects, ambience,
  its own music), coming back up in the gaps with a look-ahead attack and a smooth release, the
  way an editor's auto-ducking under dialogue does. Where speech detection cannot run, it dips by
  `duck_depth` under all of the original's sound, as it did before speech detection.

Everything here works at one output rate in stereo: the original is resampled and downmixed by
FFmpeg's resampler (through PyAV, so 5.1 folds down with the standard matrix), the music is
resampled with a polyphase filter (no pitch change). Every track is read and written in blocks
(`tracks`), so an hour of sound never sits in memory: the original is decoded into a track as it
comes, the music resampled block by block, the ducking gain interpolated per block.
"""

from __future__ import annotations

from collections.abc import Callable
import numpy as np

from .ducking import duck_curve, duck_gain, gain_at
from .resampling import resample, resample_track
from .speech import SpeechUnavailable, find_speech
from .tracks import ArrayTrack, Track, TrackFactory, in_memory, read_padded, spans, whole

__all__ = ["MODES", "OUTPUT_RATE", "combine", "combine_track", "duck_gain", "read_original", "read_original_track",
           "resample", "resample_track", "to_stereo"]  # fmt: skip

MODES = ("replace", "mix", "duck")
OUTPUT_RATE = 48000


def read_original_track(
    path: str, video_start: float, duration: float, rate: int = OUTPUT_RATE, tracks: TrackFactory = in_memory
) -> Track:
    """The first audio stream as float32 stereo at `rate`, aligned so sample 0 is the first video
    frame, exactly `duration` seconds long (silence where the audio starts late or ends early),
    decoded into a track made by `tracks` as it comes."""
    import av

    out = tracks("original", round(duration * rate), 2)
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=rate)
    with av.open(path) as container:
        stream = container.streams.audio[0]
        position = None  # where the next resampled sample goes, in output samples
        for frame in container.decode(stream):
            if position is None:
                first = float(frame.pts * frame.time_base) if frame.pts is not None else video_start
                position = round((first - video_start) * rate)
            for resampled in resampler.resample(frame):
                position = _place(out, resampled.to_ndarray().reshape(-1, 2), position)
        if position is not None:
            for resampled in resampler.resample(None):  # flush the resampler's tail
                position = _place(out, resampled.to_ndarray().reshape(-1, 2), position)
    return out


def read_original(path: str, video_start: float, duration: float, rate: int = OUTPUT_RATE) -> np.ndarray:
    """`read_original_track` as an array (short inputs)."""
    return whole(read_original_track(path, video_start, duration, rate))


def _place(out: Track, samples: np.ndarray, position: int) -> int:
    start, end = max(position, 0), min(position + len(samples), out.frames)
    if end > start:
        out.write(start, samples[start - position : end - position])
    return position + len(samples)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    if audio.shape[1] == 2:
        return audio
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1)
    return audio[:, :2]


def combine_track(
    music: Track,
    music_rate: int,
    original: Track | None,
    mode: str,
    music_level_db: float = -6.0,
    duck_depth_db: float = 12.0,
    duck_other_db: float = 3.0,
    rate: int = OUTPUT_RATE,
    note: Callable[[str], None] | None = None,
    tracks: TrackFactory = in_memory,
) -> Track:
    """The soundtrack at `rate`, stereo: the music alone, or laid under the original.

    `note` is told once when ducking cannot find speech and follows all of the original's sound."""
    if mode not in MODES:
        raise ValueError(f"unknown original-audio mode {mode!r}")
    music = resample_track(music, music_rate, rate, tracks, "music-resampled")
    if original is None:
        mode = "replace"
    curve = None
    if mode == "duck":
        try:
            speech = find_speech(original, rate, tracks)
        except SpeechUnavailable as exc:
            speech = None
            if note:
                note(f"ducking: no speech detection ({exc}); the music dips under all of the original's sound")
        curve = duck_curve(original, rate, depth_db=duck_depth_db, other_db=duck_other_db, speech=speech)
    level = np.float32(10 ** (music_level_db / 20))
    out = tracks("soundtrack", music.frames, 2)
    for first, count in spans(music.frames):
        block = to_stereo(music.read(first, count))
        if mode != "replace":
            block = block * level
            if curve is not None:
                block *= gain_at(curve, rate, first, count)[:, None]
            block += read_padded(original, first, count)
        out.write(first, block)
    return out


def combine(music: np.ndarray, music_rate: int, original: np.ndarray | None, mode: str, music_level_db: float = -6.0,
            duck_depth_db: float = 12.0, duck_other_db: float = 3.0, rate: int = OUTPUT_RATE,
            note: Callable[[str], None] | None = None) -> np.ndarray:  # fmt: skip
    """`combine_track` of arrays."""
    source = None if original is None else ArrayTrack(original)
    return whole(combine_track(ArrayTrack(music), music_rate, source, mode, music_level_db, duck_depth_db, duck_other_db,
                               rate, note))  # fmt: skip

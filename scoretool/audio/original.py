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
resampled with a polyphase filter (no pitch change).
"""

from __future__ import annotations

from collections.abc import Callable
from math import gcd

import numpy as np

from .speech import SpeechUnavailable, find_speech

MODES = ("replace", "mix", "duck")
OUTPUT_RATE = 48000


def read_original(path: str, video_start: float, duration: float, rate: int = OUTPUT_RATE) -> np.ndarray:
    """The first audio stream as float32 stereo at `rate`, aligned so sample 0 is the first video
    frame, exactly `duration` seconds long (silence where the audio starts late or ends early)."""
    import av

    total = round(duration * rate)
    out = np.zeros((total, 2), dtype=np.float32)
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


def _place(out: np.ndarray, samples: np.ndarray, position: int) -> int:
    start, end = max(position, 0), min(position + len(samples), len(out))
    if end > start:
        out[start:end] = samples[start - position : end - position]
    return position + len(samples)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling, keeping the length exact to the sample."""
    from scipy.signal import resample_poly

    if rate_in == rate_out:
        return audio
    g = gcd(rate_in, rate_out)
    out = resample_poly(audio.astype(np.float64), rate_out // g, rate_in // g, axis=0)
    target = round(len(audio) * rate_out / rate_in)
    if len(out) < target:
        out = np.pad(out, ((0, target - len(out)), (0, 0)))
    return out[:target].astype(np.float32)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    if audio.shape[1] == 2:
        return audio
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1)
    return audio[:, :2]


FRAME_RATE = 1000  # the gain curve is worked out on a 1 ms grid and interpolated to samples


def _frame_power(original: np.ndarray, step: int) -> np.ndarray:
    """Mean square per frame of `step` samples (the last frame padded with silence), float32,
    read in blocks so no whole-track temporary is made."""
    frames = -(-len(original) // step)
    power = np.empty(frames, dtype=np.float32)
    block = 1 << 14  # frames per block
    for first in range(0, frames, block):
        chunk = original[first * step : (first + block) * step]
        whole = -(-len(chunk) // step)
        if len(chunk) < whole * step:
            chunk = np.pad(chunk, ((0, whole * step - len(chunk)), (0, 0)))
        power[first : first + whole] = np.mean(np.square(chunk).reshape(whole, -1), axis=1)
    return power


def activity(original: np.ndarray, rate: int, window: float = 0.05, threshold_db: float = -45.0) -> np.ndarray:
    """Per frame of the 1 ms grid: True where the original is sounding.

    "Sounding" is relative to the track itself: above `threshold_db` and within 30 dB of its own
    loud passages, so a noisy room tone doesn't count while a quiet voice does.
    """
    from scipy.ndimage import uniform_filter1d

    step = max(1, rate // FRAME_RATE)
    power = uniform_filter1d(_frame_power(original, step), size=max(1, round(window * rate / step)))
    level = 10 * np.log10(power + 1e-12)
    loud = np.percentile(level, 95)
    return level > max(threshold_db, loud - 30.0)


def duck_gain(
    original: np.ndarray,
    rate: int,
    depth_db: float = 12.0,
    other_db: float = 3.0,
    speech: list[tuple[float, float]] | None = None,
    attack: float = 0.08,
    release: float = 0.3,
    hold: float = 0.3,
) -> np.ndarray:
    """The music's gain curve (linear, float32 per sample).

    With `speech` (spans in seconds) the music dips by `depth_db` under speech and by `other_db`
    under the original's other sound; with None (no speech detection) by `depth_db` under all of
    the original's sound. The dip starts `attack` seconds before the sound (look-ahead: we have
    the whole track), holds through pauses shorter than `hold`, and recovers over `release`.
    """
    from scipy.ndimage import maximum_filter1d

    step = max(1, rate // FRAME_RATE)
    frame_rate = rate / step
    active = activity(original, rate)
    if speech is None:
        dip = np.where(active, np.float32(depth_db), np.float32(0))
    else:
        talking = np.zeros(len(active), dtype=bool)
        for start, end in speech:
            talking[max(0, int(start * frame_rate)) : max(0, int(np.ceil(end * frame_rate)))] = True
        dip = np.where(talking, np.float32(depth_db), np.where(active, np.float32(other_db), np.float32(0)))
    # Bridge short pauses (between words) and look ahead by the attack time.
    dip = maximum_filter1d(dip, size=max(1, round(hold * frame_rate)), origin=0)
    smoothed = _follow(-dip, frame_rate, attack, release)
    lead = round(attack * frame_rate)
    smoothed = np.concatenate([smoothed[lead:], np.full(min(lead, len(smoothed)), smoothed[-1] if len(smoothed) else 0.0)])
    return _to_samples((10 ** (smoothed / 20)).astype(np.float32), step, len(original))


def _follow(target_db: np.ndarray, frame_rate: float, attack: float, release: float) -> np.ndarray:
    """An attack/release follower, down fast and up slowly, run in dB so it sounds even.

    The target is piecewise constant, and within one stretch the follower approaches it from one
    side, so each stretch is one closed-form exponential (exactly the one-pole loop, without it)."""
    a_down = np.exp(-1 / (attack * frame_rate))
    a_up = np.exp(-1 / (release * frame_rate))
    out = np.empty(len(target_db), dtype=np.float64)
    changes = np.flatnonzero(np.diff(target_db)) + 1
    current = 0.0
    for first, end in zip(np.concatenate([[0], changes]), np.concatenate([changes, [len(target_db)]])):
        t = float(target_db[first])
        a = a_down if t < current else a_up
        out[first:end] = t + (current - t) * a ** np.arange(1, end - first + 1)
        current = out[end - 1] if end > first else current
    return out


def _to_samples(per_frame: np.ndarray, step: int, samples: int) -> np.ndarray:
    """Linear interpolation of a 1 ms-grid curve to every sample, in float32 blocks."""
    out = np.empty(samples, dtype=np.float32)
    grid = np.arange(len(per_frame)) * step
    block = 1 << 20
    for first in range(0, samples, block):
        out[first : first + block] = np.interp(np.arange(first, min(first + block, samples)), grid, per_frame)
    return out


def combine(
    music: np.ndarray,
    music_rate: int,
    original: np.ndarray | None,
    mode: str,
    music_level_db: float = -6.0,
    duck_depth_db: float = 12.0,
    duck_other_db: float = 3.0,
    rate: int = OUTPUT_RATE,
    note: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The soundtrack at `rate`, stereo: the music alone, or laid under the original.

    `note` is told once when ducking cannot find speech and follows all of the original's sound."""
    if mode not in MODES:
        raise ValueError(f"unknown original-audio mode {mode!r}")
    music = to_stereo(resample(music, music_rate, rate))
    if mode == "replace" or original is None:
        return music
    music = music * np.float32(10 ** (music_level_db / 20))  # a copy (it may be the caller's): in place from here
    if mode == "duck":
        try:
            speech = find_speech(original, rate)
        except SpeechUnavailable as exc:
            speech = None
            if note:
                note(f"ducking: no speech detection ({exc}); the music dips under all of the original's sound")
        music *= duck_gain(original, rate, depth_db=duck_depth_db, other_db=duck_other_db, speech=speech)[:, None]
    music += original
    return music.astype(np.float32, copy=False)

"""The input's own sound: read it, and lay the music under it (`--original-audio`).

- `replace`: the music alone.
- `mix`: the original and the music together, the music at `music_level` dB.
- `duck`: like `mix`, but the music dips by `duck_depth` dB wherever the original is active
  (speech, effects) and comes back up in the gaps, with smooth attack and release, the way an
  editor's auto-ducking does.

Everything here works at one output rate in stereo: the original is resampled and downmixed by
FFmpeg's resampler (through PyAV, so 5.1 folds down with the standard matrix), the music is
resampled with a polyphase filter (no pitch change).
"""

from __future__ import annotations

from math import gcd

import numpy as np

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


def activity(original: np.ndarray, rate: int, window: float = 0.05, threshold_db: float = -45.0) -> np.ndarray:
    """Per sample: 1 where the original is sounding, 0 where it is quiet.

    "Sounding" is relative to the track itself: above `threshold_db` and within 30 dB of its own
    loud passages, so a noisy room tone doesn't count as speech while a quiet voice does.
    """
    from scipy.ndimage import uniform_filter1d

    power = uniform_filter1d(np.mean(original.astype(np.float64) ** 2, axis=1), size=max(1, int(window * rate)))
    level = 10 * np.log10(power + 1e-12)
    loud = np.percentile(level, 95)
    return (level > max(threshold_db, loud - 30.0)).astype(np.float64)


def duck_gain(
    original: np.ndarray,
    rate: int,
    depth_db: float = 12.0,
    attack: float = 0.08,
    release: float = 0.3,
    hold: float = 0.3,
) -> np.ndarray:
    """The music's gain curve (linear), dipping by `depth_db` under the original's activity.

    The dip starts `attack` seconds before the sound (look-ahead, since we have the whole track),
    holds through pauses shorter than `hold`, and recovers over `release`.
    """
    from scipy.ndimage import maximum_filter1d

    active = activity(original, rate)
    # Bridge short pauses (between words) and look ahead by the attack time.
    active = maximum_filter1d(active, size=max(1, int(hold * rate)), origin=0)
    target_db = -depth_db * active
    # One-pole smoothing, down fast (attack) and up slowly (release), run in dB so it sounds even.
    smoothed = _smooth(target_db, rate, attack, release)
    lead = int(attack * rate)
    smoothed = np.concatenate([smoothed[lead:], np.full(lead, smoothed[-1] if len(smoothed) else 0.0)])
    return (10 ** (smoothed / 20)).astype(np.float32)


def _smooth(target_db: np.ndarray, rate: int, attack: float, release: float) -> np.ndarray:
    """An attack/release follower, evaluated on a 1 ms grid (fast in numpy) and interpolated back."""
    step = max(1, rate // 1000)
    coarse = target_db[::step]
    a_down = np.exp(-step / (attack * rate))
    a_up = np.exp(-step / (release * rate))
    out = np.empty_like(coarse)
    current = 0.0
    for i, t in enumerate(coarse):
        a = a_down if t < current else a_up
        current = a * current + (1 - a) * t
        out[i] = current
    return np.interp(np.arange(len(target_db)), np.arange(len(coarse)) * step, out)


def combine(
    music: np.ndarray,
    music_rate: int,
    original: np.ndarray | None,
    mode: str,
    music_level_db: float = -6.0,
    duck_depth_db: float = 12.0,
    rate: int = OUTPUT_RATE,
) -> np.ndarray:
    """The soundtrack at `rate`, stereo: the music alone, or laid under the original."""
    if mode not in MODES:
        raise ValueError(f"unknown original-audio mode {mode!r}")
    music = to_stereo(resample(music, music_rate, rate))
    if mode == "replace" or original is None:
        return music
    music = music * np.float32(10 ** (music_level_db / 20))
    if mode == "duck":
        music = music * duck_gain(original, rate, depth_db=duck_depth_db)[:, None]
    return (original + music).astype(np.float32)

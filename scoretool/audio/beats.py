"""Onsets in music, so that a crossfade can land on the outgoing music's beat.

A plain spectral-flux onset detector (the method librosa's onset_strength uses, without the
dependency): short-time spectra, the positive change in log magnitude summed over frequency,
peaks above an adaptive threshold.
"""

from __future__ import annotations

import numpy as np

HOP = 0.01  # seconds between onset-strength frames


def onset_strength(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(times in seconds, onset strength) for a mono or multichannel clip."""
    from scipy.signal import stft

    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    hop = max(1, int(HOP * rate))
    n_fft = 4 * hop
    if len(mono) < n_fft:
        return np.zeros(0), np.zeros(0)
    _, times, spec = stft(mono, fs=rate, nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False)
    log_mag = np.log1p(100 * np.abs(spec))
    flux = np.maximum(np.diff(log_mag, axis=1), 0).sum(axis=0)
    # diff between frames i and i+1 marks an onset in frame i+1; stft times are frame centres.
    return times[1:], flux


def onsets(audio: np.ndarray, rate: int, min_gap: float = 0.1) -> np.ndarray:
    """Onset times in seconds from the start of `audio`, strongest-first ties broken by time."""
    from scipy.signal import find_peaks

    times, strength = onset_strength(audio, rate)
    if strength.size < 3 or not np.any(strength > 0):
        return np.zeros(0)
    threshold = np.median(strength) + 1.5 * np.std(strength)
    peaks, _ = find_peaks(strength, height=threshold, distance=max(1, int(min_gap / HOP)))
    return times[peaks]


def beat_near(audio: np.ndarray, rate: int, target: float, reach: float) -> float | None:
    """The onset in `audio` nearest `target` (seconds from its start) within ±`reach`, if any."""
    found = onsets(audio, rate)
    found = found[np.abs(found - target) <= reach]
    if found.size == 0:
        return None
    return float(found[np.argmin(np.abs(found - target))])

"""Ducking under speech: real speech (espeak-ng), a tone burst and a noise burst in room noise.

`pytest -s tests/test_ducking.py` prints the gain curve at 10 Hz: the music's gain with speech
detection and with energy alone (what ducking falls back to where speech detection cannot run).
"""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from scoretool.audio import speech as speech_module
from scoretool.audio.original import OUTPUT_RATE, combine, duck_gain, resample
from scoretool.audio.speech import find_speech

from .helpers import rms_db

R = OUTPUT_RATE
SECONDS = 16.0
LEVEL = 0.1  # RMS of every sound laid on the room noise (about -20 dBFS)
SENTENCES = (
    (1.0, "The river rises every spring when the snow melts in the mountains"),
    (11.5, "Please hand me the map so we can find the old road home"),
)
TONE = (6.0, 8.0)  # a 440 Hz tone with its octave: sound, not speech
NOISE_BURST = (9.0, 10.5)  # broadband noise at speech level: an effect, not speech

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _spoken(text: str, path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    voice, rate = soundfile.read(path, dtype="float32", always_2d=True)
    voice = resample(voice, rate, R)[:, 0]
    voiced = np.abs(voice) > 0.01 * np.abs(voice).max()
    first, last = np.flatnonzero(voiced)[[0, -1]]
    voice = voice[first : last + 1]  # the speech from its first sound to its last
    return voice * np.float32(LEVEL / _rms(voice[np.abs(voice) > 0.01 * np.abs(voice).max()]))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The original's sound (stereo at 48 kHz) and where each kind of sound is, in seconds."""
    rng = np.random.default_rng(1)
    track = (0.003 * rng.standard_normal(int(SECONDS * R))).astype(np.float32)  # room noise, -50 dBFS
    spans = {"speech": [], "tone": [TONE], "noise burst": [NOISE_BURST]}
    for n, (start, text) in enumerate(SENTENCES):
        voice = _spoken(text, tmp_path_factory.mktemp("speech") / f"sentence{n}.wav")
        track[int(start * R) : int(start * R) + len(voice)] += voice
        spans["speech"].append((start, start + len(voice) / R))
    t = np.arange(int((TONE[1] - TONE[0]) * R)) / R
    tone = (np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 880 * t)) * np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)
    track[int(TONE[0] * R) : int(TONE[0] * R) + len(tone)] += (tone * LEVEL / _rms(tone)).astype(np.float32)
    burst = rng.standard_normal(int((NOISE_BURST[1] - NOISE_BURST[0]) * R)).astype(np.float32)
    track[int(NOISE_BURST[0] * R) : int(NOISE_BURST[0] * R) + len(burst)] += burst * np.float32(LEVEL / _rms(burst))
    return np.stack([track, track], axis=1), spans


def _between(gain_db: np.ndarray, span: tuple[float, float], margin: float = 0.0) -> np.ndarray:
    return gain_db[int((span[0] + margin) * R) : int((span[1] - margin) * R)]


def _sounding(spans: dict, t: float) -> str:
    return next((kind for kind, found in spans.items() for a, b in found if a <= t < b), "-")


@needs_espeak
def test_speech_is_found_where_it_is_and_nowhere_else(scene):
    original, spans = scene
    found = find_speech(original, R)
    assert len(found) == len(spans["speech"]), found
    for (start, end), (true_start, true_end) in zip(found, spans["speech"]):
        assert start == pytest.approx(true_start, abs=0.1) and end == pytest.approx(true_end, abs=0.3)


@needs_espeak
def test_music_ducks_by_the_depth_under_speech_and_by_at_most_duck_other_under_other_sound(scene):
    original, spans = scene
    found = find_speech(original, R)
    gain_db = 20 * np.log10(duck_gain(original, R, depth_db=12.0, other_db=3.0, speech=found))
    energy_db = 20 * np.log10(duck_gain(original, R, depth_db=12.0, speech=None))
    print("\nseconds  with speech detection  energy only  sounding")
    for k in range(int(SECONDS * 10)):
        t = k / 10
        print(f"{t:7.1f}  {gain_db[int(t * R)]:20.1f}  {energy_db[int(t * R)]:11.1f}  {_sounding(spans, t)}")

    for span in spans["speech"]:
        assert np.all(np.abs(_between(gain_db, span, margin=0.1) + 12.0) < 0.5)  # the full depth, no pumping
    for span in spans["tone"] + spans["noise burst"]:
        assert _between(gain_db, span).min() > -3.05  # never more than --duck-other
        assert np.median(_between(gain_db, span, margin=0.2)) == pytest.approx(-3.0, abs=0.1)
        assert np.median(_between(energy_db, span, margin=0.2)) == pytest.approx(-12.0, abs=0.1)  # what energy did
    quiet = (TONE[0] - 0.5, TONE[0] - 0.3)  # room noise only, 1.4 s after the speech, before the tone's look-ahead
    assert np.all(_between(gain_db, quiet) > -0.5)
    assert np.max(np.abs(np.diff(gain_db))) < 0.05  # smooth: no step anywhere

    music = np.full((int(SECONDS * 32000), 1), 0.05, np.float32)
    only_music = combine(music, 32000, original, "duck", 0.0, 12.0, 3.0) - original
    inside = spans["speech"][1]
    assert rms_db(only_music[int((inside[0] + 0.2) * R) : int((inside[1] - 0.2) * R)]) == pytest.approx(rms_db(music) - 12, abs=0.5)
    assert rms_db(only_music[int((TONE[0] + 0.3) * R) : int((TONE[1] - 0.3) * R)]) == pytest.approx(rms_db(music) - 3, abs=0.5)


def test_without_speech_detection_ducking_follows_energy_and_says_why_once(monkeypatch):
    """silero-vad made unimportable: the music ducks by the depth under any sound, with one note."""
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    speech_module._model.cache_clear()
    try:
        t = np.arange(4 * R) / R
        tone = (0.1 * np.sin(2 * np.pi * 220 * t) * (t < 2)).astype(np.float32)
        original = np.stack([tone, tone], axis=1)
        music = np.full((4 * 32000, 1), 0.05, np.float32)
        notes = []
        only_music = combine(music, 32000, original, "duck", 0.0, 12.0, 3.0, note=notes.append) - original
    finally:
        monkeypatch.undo()
        speech_module._model.cache_clear()
    assert len(notes) == 1 and "no speech detection (silero-vad" in notes[0], notes
    assert rms_db(only_music[int(0.5 * R) : int(1.6 * R)]) == pytest.approx(rms_db(music) - 12, abs=0.6)
    assert rms_db(only_music[int(3.0 * R) : int(3.9 * R)]) == pytest.approx(rms_db(music), abs=0.6)

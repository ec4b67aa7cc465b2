"""Where the original sound has speech, found by Silero VAD (`silero-vad`, MIT, weights in the wheel).

The track is heard at 16 kHz mono in 32 ms windows, the model's own framing. The model keeps a
state from window to window, so one pass over a track is one long chain of tiny calls. Instead
the track is cut into rows of 4 to 30 s, each heard from a second earlier (its state settles on
that second, whose probabilities are dropped), and up to 32 rows run side by side as one batch:
a call costs little more for 32 rows than for one. The answers are nearly those of one pass
(spans within 40 ms on 84 s of speech in noise), in a third of the time there and a smaller
share on longer tracks. The probabilities become spans with silero's own hysteresis
(`get_speech_timestamps_from_probs`: 0.5 to enter speech, 0.35 to leave, 250 ms shortest speech).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
import numpy as np

from .resampling import resample_track
from .tracks import ArrayTrack, Track, TrackFactory, in_memory, read_padded

VAD_RATE = 16000
WINDOW = 512  # samples per model call at VAD_RATE: 32 ms
ROW_WINDOWS = (125, 960)  # the shortest and longest row, in windows of its own (4 s, 30.7 s)
WARMUP_WINDOWS = 32  # windows heard before a row's own, for its state to settle (about 1 s)
ROWS_PER_BATCH = 32  # rows run at once (16 minutes of sound in 30 s rows)
READ_WINDOWS = 64  # windows of each row read from the track at a time (2 s)

_lock = threading.Lock()  # the model object carries its state between calls


class SpeechUnavailable(Exception):
    """Speech detection cannot run here (silero-vad missing or its model failing); the message says why."""


def find_speech(audio: Track | np.ndarray, rate: int, tracks: TrackFactory = in_memory) -> list[tuple[float, float]]:
    """The spans of speech in `audio` (samples × channels, float32 at `rate`), in seconds; the
    16 kHz copy the model hears is made by `tracks` (a file for a long video) and read by rows."""
    model, spans_of = _model()
    low = resample_track(ArrayTrack(audio) if isinstance(audio, np.ndarray) else audio, rate, VAD_RATE, tracks, "vad")
    with _lock, _torch_threads(1):
        probs = _probabilities(model, low)
    spans = spans_of(probs.tolist(), sampling_rate=VAD_RATE, audio_length_samples=low.frames)
    return [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in spans]


@lru_cache(maxsize=1)
def _model():
    """Silero's TorchScript model (loaded once per process) and its probabilities-to-spans step."""
    try:
        # Importing silero_vad sets torch's thread count to 1 for everyone; its loading warns of
        # deprecations (importlib's path, torch.jit.load) that are no concern of a user's.
        with _torch_threads(None), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from silero_vad import get_speech_timestamps_from_probs, load_silero_vad

            return load_silero_vad(), get_speech_timestamps_from_probs
    except ImportError as exc:  # not installed, or older than 6.2.3
        raise SpeechUnavailable(f"silero-vad >= 6.2.3 is not installed ({exc})") from exc
    except Exception as exc:  # a broken wheel or a torch without TorchScript: say so and duck by energy
        raise SpeechUnavailable(f"silero-vad could not load ({type(exc).__name__}: {exc})") from exc


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` (None: left as they are) and put back afterwards.

    One thread: the model's calls are tiny, and more threads only add contention (30 s of sound
    took 1.9 s on one thread and 34 s on two on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _probabilities(model, low: Track) -> np.ndarray:
    """Speech probability per window of `low` (16 kHz, its channels averaged), from rows of the
    track run as batches. Each row is read from the track a stretch of windows at a time, so a
    batch holds a few MB however long its rows are."""
    import torch

    windows = -(-low.frames // WINDOW)
    own = min(max(-(-windows // ROWS_PER_BATCH), ROW_WINDOWS[0]), ROW_WINDOWS[1])
    rows = -(-windows // own)
    out = np.empty((rows, own), dtype=np.float32)
    with torch.inference_mode():
        for first in range(0, rows, ROWS_PER_BATCH):
            # Row r hears windows r*own - WARMUP_WINDOWS ... (r+1)*own; silence before the track
            # (what one pass from the start would hear) and after its end.
            starts = [(r * own - WARMUP_WINDOWS) * WINDOW for r in range(first, min(first + ROWS_PER_BATCH, rows))]
            model.reset_states()
            for w in range(WARMUP_WINDOWS + own):
                if w % READ_WINDOWS == 0:
                    n = min(READ_WINDOWS, WARMUP_WINDOWS + own - w) * WINDOW
                    stretch = np.stack([read_padded(low, s + w * WINDOW, n).mean(axis=1) for s in starts]).astype(np.float32)
                    stretch = torch.from_numpy(stretch)
                k = w % READ_WINDOWS
                p = model(stretch[:, k * WINDOW : (k + 1) * WINDOW], VAD_RATE)
                if w >= WARMUP_WINDOWS:
                    out[first : first + len(starts), w - WARMUP_WINDOWS] = p[:, 0].numpy()
    return out.reshape(-1)[:windows]

"""Where everything sits on an editor's timeline, in whole frames of the video's rate.

No OpenTimelineIO here: this is the geometry (and the audio) that `build` turns into a timeline.
Scenes start and end on frames. Each scene's music clip is written as its own WAV, padded at its
head with silence to the frame before its first sample, so that the clip's media starts on a
frame and sits on the timeline exactly where the mix has it (to the sample). The crossfade at a
cut is the mix's own (beat-aware) one, rounded to frames and kept inside the overlap both clips
were generated with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..audio.assemble import CEILING_DB, Transition, clip_spans, limit
from ..media.info import MediaInfo
from ..plans import Plan

STILL_RATE = Fraction(30)  # a still image has no rate of its own
# Rates an editor's project uses; a probed average within 0.1 % of one is taken as that one
# (a phone's variable-rate 29.98 is 30000/1001), else the nearest fraction over at most 1001.
STANDARD_RATES = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120)) + tuple(
    Fraction(n) for n in (24, 25, 30, 48, 50, 60, 100, 120)
)


def video_rate(info: MediaInfo) -> Fraction:
    """The timeline's rate: the video's frame rate as a rational (29.97 is 30000/1001)."""
    if not info.fps:
        return STILL_RATE
    nearest = min(STANDARD_RATES, key=lambda r: abs(float(r) - info.fps))
    if abs(float(nearest) - info.fps) <= 0.001 * info.fps:
        return nearest
    return Fraction(info.fps).limit_denominator(1001)


@dataclass(frozen=True)
class Stem:
    """One scene's clip on the stems track: `samples` is its WAV's content (head padding included)."""

    number: int
    start: int  # timeline frame where the scene starts
    duration: int  # frames of the scene
    source_start: int  # frames into the WAV where the scene starts (the lead-in before is the crossfade's)
    samples: np.ndarray
    prompt: str
    seed: int | None


@dataclass(frozen=True)
class Fade:
    """A crossfade across the cut at the start of stem `after + 1`: frames before and after the cut."""

    after: int  # index of the outgoing stem
    before_cut: int
    after_cut: int


@dataclass(frozen=True)
class Layout:
    rate: Fraction
    duration: int  # frames of the whole timeline (the last scene's end)
    sample_rate: int
    music: np.ndarray  # the mixed music, from timeline frame 0
    stems: list[Stem]
    fades: list[Fade]
    beats: list[int]  # timeline frames of the music's beats (empty unless asked for)

    def media_frames(self, samples: np.ndarray) -> float:
        """A WAV's length in (fractional) frames."""
        return len(samples) / self.sample_rate * float(self.rate)


def lay_out(
    plan: Plan, clips: list[np.ndarray], sample_rate: int, music: np.ndarray, transitions: list[Transition],
    beats: list[float],
) -> Layout:  # fmt: skip
    """The timeline of a rendered plan: its clips, the mix made of them and the mix's transitions."""
    rate = video_rate(plan.input)
    spans = clip_spans([(s.start, s.end) for s in plan.scenes], plan.settings.crossfade)
    gain = _mix_gain(plan, clips, spans, music, sample_rate)
    stems = []
    for scene, clip, (span_start, _) in zip(plan.scenes, clips, spans):
        first = math.floor(span_start * rate)  # the frame the WAV starts on
        head = np.zeros((max(0, round((span_start - first / rate) * sample_rate)), clip.shape[1]), dtype=np.float32)
        start = round(scene.start * rate)
        stems.append(
            Stem(
                number=scene.number, start=start, duration=round(scene.end * rate) - start, source_start=start - first,
                samples=_stem_audio(np.concatenate([head, clip * gain]), sample_rate), prompt=scene.prompt or "",
                seed=scene.seed,
            )
        )  # fmt: skip
    duration = round(plan.duration * rate)
    fades = [_fade(rate, sample_rate, stems, i, t) for i, t in enumerate(transitions)]
    frames = sorted({round(b * rate) for b in beats if 0 <= round(b * rate) < duration})
    return Layout(rate, duration, sample_rate, music, stems, [f for f in fades if f], frames)


def _fade(rate: Fraction, sample_rate: int, stems: list[Stem], i: int, transition: Transition) -> Fade | None:
    """The mix's transition at cut `i` in frames, inside the media both stems have around the cut."""
    outgoing, incoming = stems[i], stems[i + 1]
    cut = incoming.start
    room_after = math.floor(len(outgoing.samples) / sample_rate * rate) - (outgoing.source_start + outgoing.duration)
    before = min(cut - round((transition.center - transition.length / 2) * rate), incoming.source_start)
    after = min(round((transition.center + transition.length / 2) * rate) - cut, room_after)
    before, after = max(before, 0), max(after, 0)
    if before + after < 2:
        return None  # a hard cut (or its de-click)
    # A fade all on one side of its cut reads as a fade from or to black in FCP 7 XML: a frame each side at least.
    if before == 0 and incoming.source_start > 0:
        before, after = 1, after - 1
    elif after == 0 and room_after > 0:
        before, after = before - 1, 1
    return Fade(i, before, after)


def _mix_gain(plan: Plan, clips: list[np.ndarray], spans, music: np.ndarray, sample_rate: int) -> np.float32:
    """The gain the mix's loudness normalisation gave the clips (RMS over the middle half of each
    scene, away from crossfades and the fades at the ends), so the stems play at their level in the mix."""
    settings = plan.settings
    mixed = raw = 0.0
    for scene, clip, (span_start, _) in zip(plan.scenes, clips, spans):
        a = max(scene.start + scene.duration / 4, settings.fade_in)
        b = min(scene.end - scene.duration / 4, plan.duration - settings.fade_out)
        if b > a:
            mixed += _energy(music, a, b, sample_rate)
            raw += _energy(clip, a - span_start, b - span_start, sample_rate)
    return np.float32(math.sqrt(mixed / raw) if raw > 0 else 1.0)


def _energy(audio: np.ndarray, start: float, end: float, sample_rate: int) -> float:
    return float(np.sum(np.square(audio[round(start * sample_rate) : round(end * sample_rate)], dtype=np.float64)))


def _stem_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Keep a stem under the mix's true-peak ceiling (the mix's limiter acted on the sum, not on it)."""
    samples = samples.astype(np.float32)
    if samples.size and float(np.max(np.abs(samples))) > 10 ** (CEILING_DB / 20):
        return limit(samples, sample_rate, CEILING_DB - 0.1)
    return samples

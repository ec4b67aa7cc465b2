import numpy as np
import pyloudnorm
import pytest

from scoretool.audio.assemble import assemble, clip_spans, normalize_loudness, true_peak_db

RATE = 32000


def test_clip_spans_overlap_half_a_crossfade_each_side_of_a_cut():
    bounds = [(0.0, 4.0), (4.0, 10.0), (10.0, 11.0)]
    spans = clip_spans(bounds, crossfade=1.0)
    assert spans[0] == (0.0, 4.5)
    assert spans[1] == (3.5, 10.5)
    assert spans[2] == (9.5, 11.0)  # last scene: no tail past the end of the video


def test_crossfade_never_longer_than_the_shorter_scene():
    spans = clip_spans([(0.0, 5.0), (5.0, 5.4), (5.4, 9.0)], crossfade=2.0)
    assert spans[1] == pytest.approx((4.8, 5.6))


def test_assembled_track_is_exactly_as_long_as_the_video_to_the_sample():
    bounds = [(0.0, 3.3331), (3.3331, 7.01), (7.01, 10.0417)]
    spans = clip_spans(bounds, 1.0)
    clips = [np.full((round((e - s) * RATE), 1), 0.5, np.float32) for s, e in spans]
    track = assemble(clips, bounds, RATE, crossfade=1.0, fade_in=0.0, fade_out=0.0)
    assert track.shape == (round(10.0417 * RATE), 1)


def test_equal_power_crossfade_keeps_power_constant_for_uncorrelated_clips():
    rng = np.random.default_rng(0)
    bounds = [(0.0, 4.0), (4.0, 8.0)]
    spans = clip_spans(bounds, 2.0)
    clips = [rng.standard_normal((round((e - s) * RATE), 1)).astype(np.float32) * 0.1 for s, e in spans]
    track = assemble(clips, bounds, RATE, crossfade=2.0, fade_in=0.0, fade_out=0.0)[:, 0]
    def rms(a, b):
        return float(np.sqrt(np.mean(track[int(a * RATE) : int(b * RATE)] ** 2)))
    before, middle = rms(1.0, 2.5), rms(3.7, 4.3)
    assert middle == pytest.approx(before, rel=0.1)


def test_fades_at_both_ends():
    bounds = [(0.0, 6.0)]
    track = assemble([np.ones((6 * RATE, 1), np.float32)], bounds, RATE, crossfade=1.0, fade_in=0.5, fade_out=2.0)
    assert track[0, 0] == 0.0 and track[-1, 0] == pytest.approx(0.0, abs=1e-6)
    assert track[RATE, 0] == 1.0
    assert 0.0 < track[-RATE, 0] < 1.0


def test_loudness_target_and_true_peak_ceiling():
    rng = np.random.default_rng(1)
    t = np.arange(10 * RATE) / RATE
    # Loud, peaky material: a normalisation by gain alone would push its peaks over the ceiling.
    music = (0.05 * rng.standard_normal(t.size) + 0.9 * (np.sin(2 * np.pi * 2 * t) > 0.995)).astype(np.float32)[:, None]
    out = normalize_loudness(music, RATE, -14.0, ceiling_db=-1.5)
    assert pyloudnorm.Meter(RATE).integrated_loudness(out.astype(np.float64)) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(out, RATE) <= -1.5 + 0.05

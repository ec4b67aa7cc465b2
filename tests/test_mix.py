"""Transitions, original-audio handling and stems, on synthetic signals with known answers."""

import numpy as np
import pytest
import soundfile

import scoretool
from scoretool import Settings
from scoretool.audio.assemble import assemble, clip_spans, normalize_loudness, plan_transitions, true_peak_db
from scoretool.audio.beats import onsets
from scoretool.audio.original import OUTPUT_RATE, combine, duck_gain, read_original, resample

from .conftest import SHARED_MEDIA, needs_shared_media
from .helpers import audio_and_video_seconds, make_clip, rms_db, video_packets_md5

RATE = 32000


def clicks(seconds: float, bpm: float, offset: float, rate: int = RATE) -> np.ndarray:
    """A click track: short decaying noise bursts every beat, starting at `offset`."""
    rng = np.random.default_rng(0)
    out = 0.005 * rng.standard_normal(int(seconds * rate))
    burst = rng.standard_normal(int(0.02 * rate)) * np.exp(-np.linspace(0, 8, int(0.02 * rate)))
    for t in np.arange(offset, seconds - 0.03, 60 / bpm):
        i = int(t * rate)
        out[i : i + len(burst)] += burst
    return out.astype(np.float32)[:, None]


def test_onsets_find_the_clicks():
    found = onsets(clicks(4.0, 120, 0.13), RATE)
    assert np.allclose(found, 0.13 + 0.5 * np.arange(len(found)), atol=0.02)
    assert len(found) == 8


def test_beat_aware_crossfade_lands_on_the_outgoing_beat_nearest_the_cut():
    bounds = [(0.0, 4.0), (4.0, 8.0)]
    spans = clip_spans(bounds, 2.0)
    # Outgoing clip covers 0..5 s with clicks at 0.07 + 0.5k: the beat nearest the cut (4.0) is 4.07.
    outgoing = clicks(spans[0][1] - spans[0][0], 120, 0.07)
    incoming = np.zeros((round((spans[1][1] - spans[1][0]) * RATE), 1), np.float32)
    (t,) = plan_transitions([outgoing, incoming], bounds, RATE, "crossfade", 2.0)
    assert t.center == pytest.approx(4.07, abs=0.02)
    assert t.length == pytest.approx(2.0 - 2 * 0.07, abs=0.04)
    # Without beats in reach, the crossfade stays centred on the cut.
    quiet = np.zeros_like(outgoing)
    (t,) = plan_transitions([quiet, incoming], bounds, RATE, "crossfade", 2.0)
    assert (t.center, t.length) == (4.0, 2.0)


def test_cut_transition_is_a_hard_change_with_a_declick():
    bounds = [(0.0, 3.0), (3.0, 6.0)]
    spans = clip_spans(bounds, 1.0)
    a = np.full((round((spans[0][1] - spans[0][0]) * RATE), 1), 0.5, np.float32)
    b = np.full((round((spans[1][1] - spans[1][0]) * RATE), 1), -0.5, np.float32)
    transitions = plan_transitions([a, b], bounds, RATE, "cut", 1.0)
    track = assemble([a, b], bounds, RATE, 1.0, 0.0, 0.0, transitions)[:, 0]
    assert np.all(track[int(2.9 * RATE) : int(2.99 * RATE)] == 0.5)
    assert np.all(track[int(3.01 * RATE) : int(3.1 * RATE)] == -0.5)
    assert np.all(np.abs(np.diff(track[int(2.98 * RATE) : int(3.02 * RATE)])) < 0.01)  # no click


def test_energy_ducking_depth_in_sound_and_gaps():
    # Original: 2 s of tone, 2 s of silence, twice. Without speech spans (no speech detection),
    # the music should dip 12 dB under the tone, and only there. (440 Hz: Silero VAD takes the
    # first 0.45 s of a bare 220 Hz sine, a voice's pitch starting hard, for speech.)
    t = np.arange(8 * OUTPUT_RATE) / OUTPUT_RATE
    tone = 0.1 * np.sin(2 * np.pi * 440 * t) * ((t % 4) < 2)
    original = np.stack([tone, tone], axis=1).astype(np.float32)
    gain_db = 20 * np.log10(duck_gain(original, OUTPUT_RATE, depth_db=12.0, speech=None))
    def mean_db(a, b):
        return float(np.mean(gain_db[int(a * OUTPUT_RATE) : int(b * OUTPUT_RATE)]))
    speech = [mean_db(0.5, 1.6), mean_db(4.5, 5.6)]
    gaps = [mean_db(3.0, 3.6), mean_db(7.0, 7.9)]  # before the pre-roll of the next tone
    assert speech == pytest.approx([-12, -12], abs=0.5)
    assert gaps == pytest.approx([0, 0], abs=0.5)
    assert np.max(np.abs(np.diff(gain_db))) < 0.05  # smooth: no step in the gain anywhere

    # The duck mode listens for speech: a tone is none, so the music dips only by duck_other there.
    music = np.full((8 * RATE, 1), 0.05, np.float32)
    mixed = combine(music, RATE, original, "duck", music_level_db=0.0, duck_depth_db=12.0, duck_other_db=3.0)
    only_music = mixed - original
    assert rms_db(only_music[int(0.5 * OUTPUT_RATE) : int(1.6 * OUTPUT_RATE)]) == pytest.approx(rms_db(music) - 3, abs=0.6)
    assert rms_db(only_music[int(3.0 * OUTPUT_RATE) : int(3.6 * OUTPUT_RATE)]) == pytest.approx(rms_db(music), abs=0.6)


def test_resample_keeps_pitch_and_length():
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)[:, None]
    out = resample(tone, RATE, OUTPUT_RATE)[:, 0]
    assert len(out) == OUTPUT_RATE
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * OUTPUT_RATE / len(out) == pytest.approx(1000, abs=2)


@needs_shared_media
def test_read_original_folds_5_1_to_stereo_and_aligns_to_the_first_frame():
    path = SHARED_MEDIA / "bigbuckbunny.mp4"
    from scoretool.media.probe import probe

    info = probe(str(path))
    assert info.audio_channels == 6
    audio = read_original(str(path), info.start_time, info.duration)
    assert audio.shape == (round(info.duration * OUTPUT_RATE), 2)
    assert -60 < rms_db(audio) < -20


def test_mono_original_and_mix_mode_end_to_end(tiny_models, tmp_path):
    src = make_clip(tmp_path / "in.mp4", colours=("red", "blue"), seconds=2.0, audio=True)
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), original_audio="mix")
    scoretool.score(str(src), str(tmp_path / "out.mp4"), settings, stems=str(tmp_path / "stems"))
    assert video_packets_md5(tmp_path / "out.mp4") == video_packets_md5(src)
    audio, video = audio_and_video_seconds(tmp_path / "out.mp4")
    assert abs(audio - video) <= 1 / 24
    names = sorted(p.name for p in (tmp_path / "stems").iterdir())
    assert names == ["music.wav", "plan.json", "scene_01.wav", "scene_02.wav"]
    music, rate = soundfile.read(tmp_path / "stems" / "music.wav")
    assert len(music) == round(4.0 * rate)


def test_loudness_and_true_peak_of_a_full_mix(tiny_models, tmp_path):
    src = make_clip(tmp_path / "in.mp4", colours=("red", "green", "blue"), seconds=2.5, audio=True)
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]))
    scoretool.score(str(src), str(tmp_path / "out.wav"), settings)
    data, rate = soundfile.read(tmp_path / "out.wav", always_2d=True)
    import pyloudnorm

    assert pyloudnorm.Meter(rate).integrated_loudness(data) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(data.astype(np.float32), rate) <= -1.0


@pytest.mark.parametrize("ext", [".mp4", ".webm"])  # AAC, Opus
def test_an_encoder_overshoot_is_measured_and_limited_away(tiny_models, tmp_path, monkeypatch, ext):
    """The encoded file's peak is checked: with the limit set far under where the limiter puts the
    soundtrack (-2 dBTP), scoring must limit lower and encode again, keeping the loudness."""
    import subprocess

    import pyloudnorm

    from scoretool.media import mux
    from scoretool.media.ffmpeg import ffmpeg_exe

    monkeypatch.setattr(mux, "PEAK_LIMIT_DB", -6.0)
    encodes = []
    peak_of = mux.encoded_peak_db
    monkeypatch.setattr(mux, "encoded_peak_db", lambda path: encodes.append(peak_of(path)) or encodes[-1])
    src = make_clip(tmp_path / "in.mp4", colours=("red", "blue"), seconds=2.5)
    if ext == ".webm":  # WebM takes VP8/VP9 pictures only
        vp8 = tmp_path / "in.webm"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(src), "-c:v", "libvpx", str(vp8)], check=True)
        src = vp8
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]))
    out = tmp_path / f"out{ext}"
    scoretool.score(str(src), str(out), settings)
    assert len(encodes) >= 2 and encodes[0] > -6.0 >= encodes[-1], encodes
    assert peak_of(str(out)) == encodes[-1]
    import av

    with av.open(str(out)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(c.streams.audio[0])], axis=1).T
    assert pyloudnorm.Meter(48000).integrated_loudness(audio.astype(np.float64)) == pytest.approx(-14.0, abs=1.0)


def test_same_plan_and_seed_give_the_same_audio_bit_for_bit(tiny_models, tmp_path):
    src = make_clip(tmp_path / "in.mp4", colours=("red", "blue"), seconds=2.0)
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]))
    the_plan = scoretool.plan(str(src), settings)
    scoretool.render(the_plan, str(tmp_path / "a.wav"))
    scoretool.render(the_plan, str(tmp_path / "b.wav"))
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_a_75_second_scene_is_generated_in_windows_to_the_sample(tiny_models):
    from scoretool.music import load_music_generator
    from scoretool.specs import ModelSpec, Sampling

    gen = load_music_generator(ModelSpec(str(tiny_models["musicgen"]), "cpu"))
    steps = []
    short, long = gen.generate(["bright plucks", "slow ambient pads"], [3.0, 75.0], [1, 2], Sampling(), on_step=steps.append)
    assert gen.windows(75.0) == 4  # 30 s, then 20 s of new music per window hearing the last 10 s
    assert long.shape == (75 * RATE, 1) and short.shape == (3 * RATE, 1)
    assert sum(steps) == gen.steps([3.0, 75.0])
    # Every window has music in it: no silent or repeated stretch.
    seconds = long[: 75 * RATE, 0].reshape(75, RATE)
    assert np.all(np.sqrt(np.mean(seconds**2, axis=1)) > 1e-3)
    assert not np.allclose(long[40 * RATE : 45 * RATE], long[10 * RATE : 15 * RATE])
    (alone,) = gen.generate(["slow ambient pads"], [75.0], [2], Sampling())
    assert np.allclose(alone, long, atol=1e-4)  # same seed: the same piece, batch or not


def test_continue_transition_carries_each_scene_on_from_the_last(tiny_models, tmp_path):
    src = make_clip(tmp_path / "in.mp4", colours=("red", "green", "blue"), seconds=2.5)
    settings = Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), transition="continue")
    result = scoretool.score(str(src), str(tmp_path / "out.mp4"), settings, stems=str(tmp_path / "stems"))
    assert video_packets_md5(tmp_path / "out.mp4") == video_packets_md5(src)
    lengths = [soundfile.info(tmp_path / "stems" / f"scene_{n:02d}.wav").frames for n in (1, 2, 3)]
    spans = clip_spans([(s.start, s.end) for s in result.plan.scenes], settings.crossfade)
    assert lengths == [round((e - s) * RATE) for s, e in spans]


def test_buckets_group_similar_lengths_and_everything_on_a_gpu():
    from scoretool.music.musicgen import CPU_STEP_COST, GPU_STEP_COST, buckets

    steps = [50 * d for d in (12.0, 3.0, 11.0, 2.5, 30.0, 10.0)]
    assert buckets(steps, 8, CPU_STEP_COST["fp32"]) == [[4, 0, 2, 5], [1, 3]]  # fp32 matmuls cost more a step
    # int8 clips leave a call when done: riding along costs only their own steps, so all share calls
    assert buckets(steps, 8, CPU_STEP_COST["int8"]) == [[4, 0, 2, 5, 1, 3]]
    assert buckets(steps, 4, CPU_STEP_COST["int8"]) == [[4, 0, 2, 5], [1, 3]]
    from scoretool.music.musicgen import StepCost

    assert buckets(steps, 8, StepCost(per_clip=0.18, per_position=0.00097)) == [[4], [0, 2, 5], [1, 3]]
    # A call's KV cache: its clips times its longest clip's steps stay within max_positions.
    assert buckets(steps, 8, GPU_STEP_COST, max_positions=3000) == [[4, 0], [2, 5, 1, 3]]
    assert buckets(steps, 8, GPU_STEP_COST, max_positions=1000) == [[4], [0], [2], [5, 1], [3]]
    assert buckets(steps, 8, GPU_STEP_COST) == [[4, 0, 2, 5, 1, 3]]
    assert buckets(steps, 2, GPU_STEP_COST) == [[4, 0], [2, 5], [1, 3]]

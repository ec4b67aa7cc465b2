"""The mix in blocks gives what the whole-track computations give: loudness (pyloudnorm), true peak
and the limiter (one resample_poly over the track), resampling, and a mix in files equals one in memory."""

import numpy as np
import pytest
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import resample_poly

from scoretool.audio import tracks
from scoretool.audio.loudness import integrated_loudness, limit_into, normalize, true_peak
from scoretool.audio.resampling import resample_track
from scoretool.audio.tracks import ArrayTrack, FileTrack, in_folder, whole

RATE = 48000


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 10 000 frames, so a few seconds of audio cross many block edges."""
    monkeypatch.setattr(tracks, "BLOCK", 10_000)


def music_like(seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Noise in bursts over a tone, with silent stretches: loud and quiet gating blocks, sharp peaks."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    envelope = (np.sin(2 * np.pi * 0.7 * t) > -0.3) * (0.2 + 0.8 * (t % 1.3 < 0.4))
    signal = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.5 * rng.standard_normal((n, channels))
    signal[int(1.0 * RATE) : int(1.6 * RATE)] = 0.0  # silence: under the absolute gate
    return (signal * envelope[:, None]).astype(np.float32)


def as_file(tmp_path, audio: np.ndarray, name: str = "a") -> FileTrack:
    track = FileTrack(str(tmp_path / f"{name}.f32"), len(audio), audio.shape[1])
    track.write(0, audio)
    return track


def whole_limit(audio: np.ndarray, ceiling_db: float, window: float = 0.005) -> np.ndarray:
    """The limiter as one pass over the whole array (what scoretool did before blocks)."""
    over = np.abs(resample_poly(audio.astype(np.float64), 4, 1, axis=0)).max(axis=1)
    need = np.minimum(1.0, 10 ** (ceiling_db / 20) / np.maximum(over.reshape(-1, 4).max(axis=1), 1e-12))
    n = max(3, int(window * RATE) | 1)
    gain = uniform_filter1d(minimum_filter1d(need, size=2 * n + 1, mode="nearest"), size=n, mode="nearest")
    return (audio * gain[:, None]).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
def test_block_loudness_equals_pyloudnorm(small_blocks, tmp_path, channels):
    import pyloudnorm

    audio = music_like(7.3, channels)
    expected = pyloudnorm.Meter(RATE).integrated_loudness(audio.astype(np.float64))
    assert integrated_loudness(as_file(tmp_path, audio), RATE) == pytest.approx(expected, abs=0.001)
    quiet = audio * np.float32(0.001)  # most blocks now under the gates
    assert integrated_loudness(ArrayTrack(quiet), RATE) == pytest.approx(
        pyloudnorm.Meter(RATE).integrated_loudness(quiet.astype(np.float64)), abs=0.001
    )
    assert integrated_loudness(ArrayTrack(np.zeros((RATE, channels), np.float32)), RATE) == float("-inf")


def test_block_true_peak_equals_one_pass(small_blocks, tmp_path):
    audio = music_like(4.1)
    audio[29_999] = 0.99  # a peak on a block edge
    audio[30_000] = -0.99
    expected = np.abs(resample_poly(audio.astype(np.float64), 4, 1, axis=0)).max()
    assert 20 * np.log10(true_peak(as_file(tmp_path, audio))) == pytest.approx(20 * np.log10(expected), abs=0.001)


def test_block_limiter_equals_one_pass(small_blocks, tmp_path):
    audio = music_like(4.1) * np.float32(2.0)
    expected = whole_limit(audio, -3.0)
    src = as_file(tmp_path, audio)
    out = FileTrack(str(tmp_path / "out.f32"), src.frames, src.channels)
    limit_into(src, out, RATE, -3.0)
    assert np.max(np.abs(whole(out) - expected)) < 1e-6
    limit_into(src, src, RATE, -3.0)  # in place: every block still sees the unlimited context
    assert np.max(np.abs(whole(src) - expected)) < 1e-6


def test_block_resampling_equals_one_pass(small_blocks, tmp_path):
    audio = music_like(3.3, channels=1)[: 3 * 32000 + 7]  # a length that does not divide evenly
    for rate_in, rate_out in ((32000, 48000), (48000, 16000), (44100, 48000)):
        whole_pass = resample_poly(audio.astype(np.float64), rate_out // np.gcd(rate_in, rate_out),
                                   rate_in // np.gcd(rate_in, rate_out), axis=0)  # fmt: skip
        target = round(len(audio) * rate_out / rate_in)
        expected = np.pad(whole_pass, ((0, max(0, target - len(whole_pass))), (0, 0)))[:target].astype(np.float32)
        out = resample_track(as_file(tmp_path, audio), rate_in, rate_out, in_folder(str(tmp_path)), "resampled")
        assert out.frames == target
        assert np.max(np.abs(whole(out) - expected)) < 1e-6


def test_normalize_in_files_equals_in_memory(small_blocks, tmp_path):
    import pyloudnorm

    audio = music_like(6.0)  # peaky enough to need the limiter at -14 LUFS
    in_memory = ArrayTrack(np.zeros_like(audio))
    normalize(ArrayTrack(audio), in_memory, RATE, -14.0)
    src = as_file(tmp_path, audio)
    on_disk = FileTrack(str(tmp_path / "n.f32"), src.frames, src.channels)
    normalize(src, on_disk, RATE, -14.0)
    assert np.array_equal(whole(on_disk), in_memory.array)
    assert pyloudnorm.Meter(RATE).integrated_loudness(in_memory.array.astype(np.float64)) == pytest.approx(-14.0, abs=0.5)
    assert 20 * np.log10(true_peak(on_disk)) <= -2.0 + 0.01
    assert np.array_equal(whole(src), audio)  # the source is left as it was


def test_clip_store_keeps_clips_on_disk_and_removes_its_folder():
    import gc
    import os

    from scoretool.audio.clips import ClipStore

    store = ClipStore(3)
    clip = music_like(0.5, channels=1)
    store[1] = clip
    assert [store.made(i) for i in range(3)] == [False, True, False]
    assert np.array_equal(store[1], clip) and store[1] is not store[1]  # read back each time, not held
    with pytest.raises(LookupError):
        store[0]
    folder = store._folder
    assert os.listdir(folder) == ["00001.npy"]
    del store
    gc.collect()
    assert not os.path.exists(folder)

"""`--precision`: what `auto` picks on which machine, the int8 linear layer, and MusicGen at every
precision: seeded sampling reproducible and independent of the batch, and a precision that fails stepping
down to the next with the reason logged and `spec.precision` saying what ran."""

import logging

import numpy as np
import pytest
import torch

from scoretool import precision
from scoretool.errors import ScoreToolError
from scoretool.music import decoder as decodermod
from scoretool import int8
from scoretool.music.fast import FastMusicgen
from scoretool.int8 import Int8Linear, quantize_linears
from scoretool.music.musicgen import MusicGenGenerator
from scoretool.precision import CpuKernels, choose, fallback
from scoretool.specs import CONCRETE_PRECISIONS, ModelSpec, Sampling

PROMPTS = ["calm piano melody with soft strings", "drums", "a dog running on the beach at night"]
AVX2 = frozenset({"avx2", "fma"})
BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a CPU with these capabilities."""

    def pretend(capability="AVX2", flags=AVX2, int8_missing=None):
        kernels = CpuKernels(capability, flags, int8_missing)
        monkeypatch.setattr(precision, "cpu_kernels", lambda: kernels)

    return pretend


# --------------------------------------------------------------------------- choose / fallback


def test_auto_on_a_cpu_follows_its_kernels(machine):
    machine("AVX2", AVX2)
    assert choose("auto", "cpu", "music").precision == "int8"
    assert choose("auto", "cpu", "caption").precision == "int8"
    machine("AVX512", BF16, int8_missing="this torch has no fbgemm int8 kernels")
    got = choose("auto", "cpu", "music")
    assert got.precision == "bf16" and "avx512_bf16" in got.why
    machine("DEFAULT", frozenset(), int8_missing=None)
    got = choose("auto", "cpu", "music")
    assert got.precision == "fp32" and "no native bf16" in got.why
    assert choose("auto", "cpu", "caption").precision == "fp32"
    machine("AVX512", BF16, int8_missing="this torch has no fbgemm int8 kernels")
    got = choose("auto", "cpu", "caption")  # bf16 BLIP is slower than fp32 on such a CPU
    assert got.precision == "fp32" and "no fbgemm int8 kernels" in got.why
    machine("AVX512", BF16 | {"amx_bf16", "amx_int8", "amx_tile"})  # with AMX, BLIP runs in bf16
    got = choose("auto", "cpu", "caption")
    assert got.precision == "bf16" and "AMX" in got.why
    assert choose("auto", "cpu", "music").precision == "int8"


def test_auto_elsewhere_and_explicit_choices():
    assert choose("auto", "cuda:0", "music").precision == "fp16"
    assert choose("auto", "cuda", "caption").precision == "fp32"
    assert choose("auto", "mps", "music").precision == "fp32"
    for p in CONCRETE_PRECISIONS:
        device = {"fp16": "cuda", "int8": "cpu"}.get(p, "cpu")
        got = choose(p, device, "music")
        assert got.precision == p and got.why == f"--precision {p}"
        ModelSpec("m", device, got.precision)  # a valid spec
    auto = choose("auto", "cpu", "music")
    assert auto.precision in CONCRETE_PRECISIONS and auto.why.startswith("auto: ")


@pytest.mark.parametrize("requested,device,says", [("fp16", "cpu", "CUDA GPU only"), ("int8", "cuda:0", "CPU only"), ("fp8", "cpu", "unknown")])
def test_impossible_choices_are_one_clear_line(requested, device, says):
    with pytest.raises(ScoreToolError) as err:
        choose(requested, device, "music")
    assert says in str(err.value) and "\n" not in str(err.value)


def test_fallback_steps_down_to_fp32(machine):
    machine("AVX2", AVX2)
    assert [fallback(p, "cpu") for p in ("int8", "bf16", "fp32")] == ["fp32", "fp32", None]
    machine("AVX512", BF16)
    assert fallback("int8", "cpu") == "bf16"
    assert fallback("fp16", "cuda") == "fp32"


# --------------------------------------------------------------------------- the int8 linear

needs_int8 = pytest.mark.skipif(int8.int8_unavailable_reason() is not None, reason="no fbgemm int8 kernels here")


@needs_int8
def test_int8_linear_is_close_and_each_row_independent_of_the_batch():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 64, generator=g) * 0.05
    x = torch.randn(7, 64, generator=g) * 3 + 1
    x[3] = 0.5  # a constant row
    lin = Int8Linear.quantize(w)
    y = lin(x)
    ref = x @ w.T
    assert (y - ref).norm() / ref.norm() < 0.03
    for i in range(7):
        assert torch.equal(lin(x[i : i + 1]), y[i : i + 1])
    assert torch.equal(lin(x.view(7, 1, 64)).view(7, 96), y)
    fused = Int8Linear.fused([Int8Linear.quantize(w[:40]), Int8Linear.quantize(w[40:])])
    assert torch.equal(fused(x), y)  # fusing layers that read one input changes nothing


@needs_int8
def test_quantize_linears_reads_the_weights_it_is_given_and_replaces_each_layer():
    g = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(32, 48, bias=False), torch.nn.ReLU(), torch.nn.Linear(48, 16))
    x = torch.randn(5, 32, generator=g)
    elsewhere = {"0": torch.randn(48, 32, generator=g)}  # what the checkpoint holds for layer 0
    expected = net[2](torch.relu(x @ elsewhere["0"].T))
    assert list(quantize_linears(net, elsewhere.get)) == ["0", "2"]
    assert all(isinstance(net[i], Int8Linear) for i in (0, 2))
    assert (net(x) - expected).norm() / expected.norm() < 0.03  # layer 0 was quantized from the weight given


# --------------------------------------------------------------------------- MusicGen at each precision


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from scoretool import testing

    return testing.make_tiny_musicgen(tmp_path_factory.mktemp("tiny-precision") / "musicgen")


def _generator(tiny_dir, p, **options):
    return MusicGenGenerator(ModelSpec(str(tiny_dir), "cpu", p), **options)


def same_music(a, b) -> bool:
    """Equal but for float rounding (another token anywhere moves the audio by ~0.1)."""
    return a.shape == b.shape and float(np.abs(a - b).max()) < 1e-5


@pytest.mark.parametrize("p", ["fp32", "bf16", pytest.param("int8", marks=needs_int8)])
@pytest.mark.parametrize("use_fast", [True, False], ids=["fast", "generate"])
def test_seeded_sampling_is_reproducible_and_batch_independent_at_every_precision(tiny_dir, p, use_fast):
    gen = _generator(tiny_dir, p, use_fast=use_fast)
    assert gen.spec.precision == p and (gen.fast is not None) == use_fast
    assert_seeded_and_batch_independent(gen)


def assert_seeded_and_batch_independent(gen) -> None:
    sampling = Sampling()
    together = gen.generate(PROMPTS, [0.4] * 3, [5, 6, 7], sampling)
    alone = gen.generate(PROMPTS[1:2], [0.4], [6], sampling)
    again = gen.generate(PROMPTS, [0.4] * 3, [5, 6, 7], sampling)
    # The tokens are the same; EnCodec decodes a batch at once, which moves the audio by float rounding only.
    assert same_music(together[1], alone[0])
    assert all(np.array_equal(a, b) for a, b in zip(together, again))
    assert not same_music(gen.generate(PROMPTS[1:2], [0.4], [99], sampling)[0], alone[0])
    # Clips of other lengths in the same call (outside fp32 a shorter one leaves the loop early).
    mixed = gen.generate(PROMPTS, [0.4, 0.8, 0.2], [5, 6, 7], sampling)
    assert [len(c) for c in mixed] == [round(d * gen.sample_rate) for d in (0.4, 0.8, 0.2)]
    assert same_music(mixed[0], together[0])
    assert same_music(mixed[2], gen.generate(PROMPTS[2:], [0.2], [7], sampling)[0])


@needs_int8
def test_an_int8_item_leaves_the_loop_when_it_has_its_tokens(tiny_dir, monkeypatch):
    from scoretool.music import decoder

    gen = _generator(tiny_dir, "int8", use_fast=True)
    inputs = gen.processor(text=PROMPTS, padding=True, return_tensors="pt")
    seen = []
    step = decoder.Decoder.step
    monkeypatch.setattr(decoder.Decoder, "step", lambda self, *a: seen.append(a[-1]) or step(self, *a))
    full = gen.fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], 30, seeds=[1, 2, 3])
    assert set(seen) == {6}  # three items and their unconditional rows
    seen.clear()
    own = gen.fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], 30, seeds=[1, 2, 3], lengths=[30, 20, 10])
    assert seen == [6] * 10 + [4] * 10 + [2] * 10  # a step per new token
    for i, n in enumerate([30, 20, 10]):
        frames = gen.fast.frames(n)
        assert torch.equal(own[i, :, :frames], full[i, :, :frames])
    # Each row is decoded to its own length (rows past it hold no music): silence after it.
    audio = gen.fast.decode(own, [gen.fast.frames(n) for n in (30, 20, 10)]).numpy()
    ends = [gen.fast.decode(own[i : i + 1, :, : gen.fast.frames(n)]).shape[-1] for i, n in enumerate((30, 20, 10))]
    assert ends[0] == audio.shape[-1] > ends[1] > ends[2]
    assert all(audio[i, :, : ends[i] // 2].any() and not audio[i, :, ends[i] :].any() for i in range(3))


@needs_int8
def test_int8_greedy_tokens_are_the_same_on_both_paths(tiny_dir):
    """The fast loop's fused int8 projections give what generate gives with the stand-in int8 linears
    (with an fp32 KV cache, as generate keeps; the fused kernel layer's sums in another order move
    its logits by ~1e-6 there, see test_int8_layer, which changes no token here)."""
    fast = _generator(tiny_dir, "int8", use_fast=True, do_sample=False, fast_options={"kv_dtype": torch.float32})
    slow = _generator(tiny_dir, "int8", use_fast=False, do_sample=False)
    a = fast.generate(PROMPTS, [0.5] * 3, [1, 2, 3], Sampling())
    b = slow.generate(PROMPTS, [0.5] * 3, [1, 2, 3], Sampling())
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@needs_int8
def test_int8_keeps_its_kv_cache_in_bf16_where_the_cpu_has_native_bf16(tiny_dir):
    native = bool(precision.cpu_kernels().native_bf16)
    assert _generator(tiny_dir, "int8").fast.decoder.cache_dtype == (torch.bfloat16 if native else torch.float32)
    # The bf16 cache (forced here, whatever this CPU has) keeps sampling seeded and batch-independent.
    gen = _generator(tiny_dir, "int8", fast_options={"kv_dtype": torch.bfloat16})
    assert_seeded_and_batch_independent(gen)
    assert gen.spec.precision == "int8" and gen.fast.decoder.cache_dtype == torch.bfloat16  # ran, no step down


def _reference(tiny_dir, p):
    return _generator(tiny_dir, p).generate(PROMPTS[:2], [0.3, 0.3], [4, 5], Sampling())


@needs_int8
@pytest.mark.parametrize("use_fast", [True, False], ids=["fast", "generate"])
def test_an_int8_op_that_fails_steps_down_with_the_reason_logged(tiny_dir, monkeypatch, caplog, use_fast):
    gen = _generator(tiny_dir, "int8", use_fast=use_fast)

    def broken(self, x):
        raise RuntimeError("simulated: quantized::linear_dynamic is not in this build")

    monkeypatch.setattr(Int8Linear, "forward", broken)
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        clips = gen.generate(PROMPTS[:2], [0.3, 0.3], [4, 5], Sampling())
    following = fallback("int8", "cpu")
    assert gen.spec.precision == following
    assert "linear_dynamic is not in this build" in caplog.text and f"falling back to {following}" in caplog.text
    assert (gen.fast is not None) == use_fast  # the path stays; only the precision steps down
    assert all(same_music(a, b) for a, b in zip(clips, _reference(tiny_dir, following)))


def test_int8_kernels_missing_at_load_step_down(tiny_dir, monkeypatch, caplog):
    monkeypatch.setattr(int8, "int8_unavailable_reason", lambda: "pretend this torch has no fbgemm")
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        gen = _generator(tiny_dir, "int8")
    assert gen.spec.precision == fallback("int8", "cpu") and gen.fast is not None
    assert "pretend this torch has no fbgemm" in caplog.text


@needs_int8
def test_non_finite_int8_logits_step_down(tiny_dir, monkeypatch, caplog):
    real = decodermod.Decoder._logits

    def overflowing(self, h, rows):
        logits = real(self, h, rows)
        return torch.full_like(logits, float("nan")) if self.int8 else logits

    monkeypatch.setattr(decodermod.Decoder, "_logits", overflowing)
    gen = _generator(tiny_dir, "int8")
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        clips = gen.generate(PROMPTS[:2], [0.3, 0.3], [4, 5], Sampling())
    assert gen.spec.precision == fallback("int8", "cpu") and "non-finite logits in int8" in caplog.text
    assert all(np.isfinite(c).all() for c in clips)


@needs_int8
def test_int8_decoding_stays_close_to_fp32(tiny_dir):
    """Greedy tokens of the tiny model: most agree with fp32 (the real-shape numbers: benchmarks/quality.py)."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_dir).eval()
    inputs = AutoProcessor.from_pretrained(tiny_dir)(text=PROMPTS, padding=True, return_tensors="pt")
    codes = {
        p: FastMusicgen(model, "cpu", **options).generate_codes(inputs["input_ids"], inputs["attention_mask"], 60, do_sample=False)
        for p, options in {"fp32": {}, "int8": {"int8": True}, "bf16": {"dtype": torch.bfloat16}}.items()
    }
    for p in ("int8", "bf16"):
        assert (codes[p] == codes["fp32"]).float().mean() > 0.8


@needs_int8
def test_int8_continuation_is_the_same_on_both_paths(tiny_dir):
    """An audio prompt: the fast loop's prefill runs transformers' decoder with the int8 stand-ins, as generate does."""
    t = np.arange(round(0.6 * 32000)) / 32000
    context = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.random.default_rng(0).standard_normal(len(t)))[:, None]
    context = context.astype(np.float32)
    fast = _generator(tiny_dir, "int8", use_fast=True)
    slow = _generator(tiny_dir, "int8", use_fast=False)
    a = fast.continue_from("calm piano", context, 0.4, 5, Sampling())
    b = slow.continue_from("calm piano", context, 0.4, 5, Sampling())
    assert fast.fast is not None and fast.spec.precision == "int8"
    assert same_music(a, b)

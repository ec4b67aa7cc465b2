"""The fast MusicGen decode loop (scoretool.music.fast) against transformers' own `generate`.

Greedy decoding must give exactly `generate`'s tokens; sampling must be reproducible, independent of
batch-mates, and the same as the transformers path (`SeededSampler`) for the same seeds. The GPU code
path (static shapes, masks, fused projections, device-side step counter) runs here eagerly on the CPU.
"""

import logging
import os

import numpy as np
import pytest
import torch

from scoretool import testing
from scoretool.music import fast as fastmod
from scoretool.music import sampling
from scoretool.music.fast import FastMusicgen
from scoretool.music.musicgen import MusicGenGenerator
from scoretool.music.sampling import SeededNoise
from scoretool.music.support import NonFiniteLogits, Unsupported, unsupported_reason
from scoretool.specs import ModelSpec, Sampling

os.environ["HF_HUB_OFFLINE"] = "1"

SAMPLING = Sampling()
PROMPTS = ["calm piano melody with soft strings", "drums", "a dog running on the beach at night"]
# The CPU loop follows transformers op for op; the other two run the GPU loop's code eagerly.
MODES = {
    "exact": {},
    "static-fused": dict(static=True, fused=True),
    "static-small-buckets": dict(static=True, fused=False, bucket=64),
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return testing.make_tiny_musicgen(tmp_path_factory.mktemp("tiny-fast") / "musicgen")


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_dir).eval()
    return model, AutoProcessor.from_pretrained(tiny_dir)


def hf_codes(model, inputs, new_tokens, **options):
    """transformers' generate; returns (the codes of each EnCodec decode call, audio)."""
    seen = []
    decode = model.audio_encoder.decode

    def spy(codes, *args, **kwargs):
        seen.append(codes.clone())
        return decode(codes, *args, **kwargs)

    model.audio_encoder.decode = spy
    try:
        with torch.inference_mode():
            audio = model.generate(**inputs, max_new_tokens=new_tokens, guidance_scale=3.0, **options)
    finally:
        del model.audio_encoder.decode
    return seen, audio  # mono: one decode call; stereo: left then right


@pytest.fixture(scope="module")
def hf_greedy(tiny):
    """generate's greedy codes and audio, once per prompt list."""
    cache = {}

    def get(prompts):
        if prompts not in cache:
            inputs = tiny[1](text=list(prompts), padding=True, return_tensors="pt")
            cache[prompts] = inputs, hf_codes(tiny[0], inputs, 83, do_sample=False)  # 80 frames
        return cache[prompts]

    return get


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prompts", [tuple(PROMPTS[:1]), tuple(PROMPTS)], ids=["batch1", "batch3"])
def test_greedy_tokens_are_exactly_generates(tiny, hf_greedy, mode, prompts):
    model, _ = tiny
    new_tokens = 83
    inputs, (seen, audio) = hf_greedy(prompts)
    fast = FastMusicgen(model, "cpu", **MODES[mode])
    codes = fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], new_tokens, do_sample=False)
    assert codes.shape == (len(prompts), 4, 80)
    assert torch.equal(codes, seen[0][0])
    fast_audio = fast.decode(codes)
    assert fast_audio.shape == (len(prompts), 1, 80 * 640)
    assert torch.equal(fast_audio, audio)


def _variant(tiny, stereo: bool, text_width: int):
    """A tiny model from a config: stereo (8 interleaved codebooks) and/or a text encoder of another width."""
    from transformers import GenerationConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    base = tiny[0].config
    text = T5Config(**{**base.text_encoder.to_dict(), "d_model": text_width, "d_ff": 2 * text_width})
    decoder = MusicgenDecoderConfig(
        **{
            **base.decoder.to_dict(),
            "num_codebooks": 8 if stereo else 4,
            "audio_channels": 2 if stereo else 1,
            "num_hidden_layers": 2,
        }
    )
    config = MusicgenConfig(text_encoder=text, audio_encoder=base.audio_encoder, decoder=decoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = MusicgenForConditionalGeneration(config).eval()
    special = base.decoder.vocab_size
    model.generation_config = GenerationConfig(decoder_start_token_id=special, bos_token_id=special, pad_token_id=special)
    return model


@pytest.mark.parametrize("stereo,width", [(False, 24), (True, 32)], ids=["text-projection", "stereo"])
def test_greedy_exact_for_stereo_and_a_projected_text_encoder(tiny, stereo, width):
    model = _variant(tiny, stereo, width)
    assert hasattr(model, "enc_to_dec_proj") == (width != 32)
    inputs = tiny[1](text=PROMPTS[:2], padding=True, return_tensors="pt")
    new_tokens = 43  # stereo delays codebook pairs: 4 per channel, so 40 frames either way
    seen, audio = hf_codes(model, inputs, new_tokens, do_sample=False)
    expected = torch.cat([seen[0][0], seen[1][0]], dim=1) if stereo else seen[0][0]
    for options in ({}, dict(static=True, fused=True)):
        fast = FastMusicgen(model, "cpu", **options)
        codes = fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], new_tokens, do_sample=False)
        got = torch.cat([codes[:, ::2], codes[:, 1::2]], dim=1) if stereo else codes
        assert torch.equal(got, expected)
        fast_audio = fast.decode(codes)
        assert fast_audio.shape == (2, 2 if stereo else 1, 40 * 640)
        assert torch.equal(fast_audio, audio)


def audio_prompt(seconds: float, rate: int = 32000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A chord with a little noise: something EnCodec codes into varied tokens."""
    t = np.arange(round(seconds * rate)) / rate
    x = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220, 277, 330))
    x = x + 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    return np.stack([x * (1 - 0.3 * c) for c in range(channels)]).astype(np.float32).squeeze()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("items", [1, 2])
def test_greedy_continuation_of_an_audio_prompt_is_exactly_generates(tiny, mode, items):
    """An audio prompt (what long scenes and `--transition continue` use): the fast loop's prefill and
    delay table give generate's exact tokens, prompt codes first, and the same audio."""
    model, processor = tiny
    inputs = processor(text=PROMPTS[:items], audio=[audio_prompt(0.4, seed=i) for i in range(items)],
                       sampling_rate=32000, padding=True, return_tensors="pt")  # fmt: skip
    seen, audio = hf_codes(model, inputs, 43, do_sample=False)
    fast = FastMusicgen(model, "cpu", **MODES[mode])
    prompt = fast.audio_codes(inputs["input_values"], inputs["padding_mask"])
    assert prompt.shape == (items, 4, 20)  # 0.4 s at 50 frames a second
    codes = fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], 43, prompt_codes=prompt, do_sample=False)
    assert codes.shape == (items, 4, 20 + 40) and torch.equal(codes[:, :, :20], prompt)
    assert torch.equal(codes, seen[0][0])
    got = fast.generate(inputs["input_ids"], inputs["attention_mask"], 43, do_sample=False,
                        input_values=inputs["input_values"], padding_mask=inputs["padding_mask"])  # fmt: skip
    assert torch.equal(got, audio)


def test_greedy_continuation_exact_for_stereo(tiny):
    model = _variant(tiny, stereo=True, text_width=32)
    processor = tiny[1]
    inputs = processor(text=PROMPTS[:1], return_tensors="pt")  # the tiny processor is mono: add the stereo audio
    inputs["input_values"] = torch.from_numpy(audio_prompt(0.3, channels=2))[None]  # (1, 2, samples)
    inputs["padding_mask"] = torch.ones((1, inputs["input_values"].shape[-1]), dtype=torch.long)
    seen, audio = hf_codes(model, inputs, 43, do_sample=False)
    for options in ({}, dict(static=True, fused=True)):
        fast = FastMusicgen(model, "cpu", **options)
        got = fast.generate(inputs["input_ids"], inputs["attention_mask"], 43, do_sample=False,
                            input_values=inputs["input_values"], padding_mask=inputs["padding_mask"])  # fmt: skip
        assert torch.equal(got, audio)


def test_sampling_is_seeded_reproducible_and_independent_of_the_batch(tiny):
    model, processor = tiny
    fast = FastMusicgen(model, "cpu")
    static = FastMusicgen(model, "cpu", static=True, fused=True)

    def run(f, prompts, seeds):
        inputs = processor(text=prompts, padding=True, return_tensors="pt")
        return f.generate_codes(inputs["input_ids"], inputs["attention_mask"], 63, seeds=seeds, do_sample=True)

    together = run(fast, PROMPTS, [5, 6, 7])
    assert torch.equal(together, run(fast, PROMPTS, [5, 6, 7]))
    assert torch.equal(together[1:2], run(fast, PROMPTS[1:2], [6]))  # alone: same tokens
    assert not torch.equal(together[1:2], run(fast, PROMPTS[1:2], [99]))
    assert not torch.equal(together[0], together[2])
    assert torch.equal(together, run(static, PROMPTS, [5, 6, 7]))  # the GPU code path samples the same


def test_seeded_noise_is_the_same_drawn_step_by_step_or_at_once():
    a = SeededNoise([1, 2], 4, 16, "cpu")
    b = SeededNoise([1, 2], 4, 16, "cpu")
    steps = sampling.NOISE_CHUNK * 2 + 5
    block = a.block(steps)
    assert block.shape == (steps, 2, 4, 16)
    assert torch.equal(block, torch.stack([b.step(s) for s in range(steps)]))
    assert torch.isfinite(block).all() or (block == float("-inf")).any()


@pytest.fixture(scope="module")
def generators(tiny_dir):
    hf = MusicGenGenerator(ModelSpec(str(tiny_dir), "cpu"), use_fast=False)
    quick = MusicGenGenerator(ModelSpec(str(tiny_dir), "cpu"), use_fast=True)
    assert hf.fast is None and hf.fallback_reason
    assert quick.fast is not None and quick.fallback_reason is None
    return hf, quick


def test_generator_fast_and_transformers_paths_give_the_same_music(generators):
    hf, quick = generators
    prompts, durations, seeds = PROMPTS, [1.0, 0.5, 0.77], [11, 12, 13]
    steps = []
    a = hf.generate(prompts, durations, seeds, SAMPLING)
    b = quick.generate(prompts, durations, seeds, SAMPLING, on_step=steps.append)
    # One call: short clips cost less riding along with the longest (generated 0.16 s past its end).
    assert sum(steps) == quick.steps(durations) == 58 + 3
    assert [x.shape for x in b] == [(32000, 1), (16000, 1), (24640, 1)]
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_generator_continuation_fast_and_transformers_paths_give_the_same_music(generators, monkeypatch):
    """`continue_from` (long scenes, `--transition continue`) now runs on the fast loop too."""
    hf, quick = generators
    context = audio_prompt(0.6)[:, None]
    steps, prompted = [], []
    original = quick.fast.generate_codes
    monkeypatch.setattr(quick.fast, "generate_codes", lambda *a, **k: prompted.append(k["prompt_codes"].shape) or original(*a, **k))
    a = hf.continue_from("calm piano", context, 0.4, 5, SAMPLING)
    b = quick.continue_from("calm piano", context, 0.4, 5, SAMPLING, on_step=steps.append)
    assert prompted == [(1, 4, 30)]  # the fast loop ran, on the last 0.6 s of context as 30 frames
    assert quick.fast is not None and quick.fallback_reason is None
    assert sum(steps) == quick.new_tokens(0.4) == 23
    assert a.shape == b.shape == (round(1.0 * 32000), 1)
    assert np.array_equal(a, b)
    assert np.array_equal(b[: 32000 * 6 // 10 - 1600], context[: 32000 * 6 // 10 - 1600])  # the original, then a seam


def test_generator_greedy_switch(generators):
    hf, quick = generators
    for gen in generators:
        gen.decoding.do_sample = False
    try:
        a = hf.generate(PROMPTS[:2], [0.6, 0.6], [1, 2], SAMPLING)
        b = quick.generate(PROMPTS[:2], [0.6, 0.6], [3, 4], SAMPLING)  # seeds don't matter when greedy
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    finally:
        for gen in generators:
            gen.decoding.do_sample = True


def test_very_short_clips_keep_the_delay_pattern(generators):
    hf, quick = generators
    assert quick.new_tokens(0.01) == 6  # 3 frames: fewer would make transformers drop the delay pattern
    a = hf.generate(["drums"], [0.01], [3], SAMPLING)
    b = quick.generate(["drums"], [0.01], [3], SAMPLING)
    assert a[0].shape == b[0].shape == (320, 1) and np.array_equal(a[0], b[0])


def test_unsupported_models_are_named(tiny_dir):
    from transformers import (
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    tiny_model = MusicgenForConditionalGeneration.from_pretrained(tiny_dir)
    c = tiny_model.config
    keys = MusicgenMelodyDecoderConfig().to_dict()
    decoder = MusicgenMelodyDecoderConfig(**{k: v for k, v in c.decoder.to_dict().items() if k in keys})
    melody = MusicgenMelodyForConditionalGeneration(
        MusicgenMelodyConfig(text_encoder=c.text_encoder, audio_encoder=c.audio_encoder, decoder=decoder)
    )
    assert "MusicgenMelodyForConditionalGeneration" in unsupported_reason(melody)
    tiny_model.generation_config.eos_token_id = 5
    assert "eos_token_id" in unsupported_reason(tiny_model)
    with pytest.raises(Unsupported):
        FastMusicgen(tiny_model, "cpu")


def test_fallback_with_a_logged_reason_still_gives_the_right_audio(tiny_dir, monkeypatch, caplog):
    monkeypatch.setattr(fastmod, "unsupported_reason", lambda model: "pretend this model is a melody model")
    with caplog.at_level(logging.INFO, logger="scoretool"):
        gen = MusicGenGenerator(ModelSpec(str(tiny_dir), "cpu"))
    assert gen.fast is None and gen.fallback_reason == "pretend this model is a melody model"
    assert "pretend this model is a melody model" in caplog.text
    clips = gen.generate(["drums", "calm piano"], [0.5, 0.25], [1, 2], SAMPLING)
    assert [c.shape for c in clips] == [(16000, 1), (8000, 1)]


def test_a_failing_fast_path_falls_back_for_good_with_a_warning(tiny_dir, monkeypatch, caplog):
    gen = MusicGenGenerator(ModelSpec(str(tiny_dir), "cpu"))
    assert gen.fast is not None

    def boom(*args, **kwargs):
        raise RuntimeError("simulated capture failure")

    monkeypatch.setattr(gen.fast, "generate_codes", boom)
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        clips = gen.generate(["drums"], [0.5], [1], SAMPLING)
    assert clips[0].shape == (16000, 1)
    assert gen.fast is None and "simulated capture failure" in gen.fallback_reason
    assert "simulated capture failure" in caplog.text


def test_non_finite_logits_are_caught_not_returned(tiny):
    model, processor = tiny
    inputs = processor(text=["drums"], return_tensors="pt")
    for options in ({}, dict(static=True, fused=True)):
        fast = FastMusicgen(model, "cpu", **options)
        shape, weight, bias, eps = fast.decoder.final_ln
        fast.decoder.final_ln = (shape, torch.full_like(weight, float("inf")), bias, eps)
        with pytest.raises(NonFiniteLogits):
            fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], 10, seeds=[1])
    assert torch.isfinite(model.decoder.model.decoder.layer_norm.weight).all()  # the model's own weights untouched


def test_env_switch_turns_the_fast_path_off(tiny_dir, monkeypatch):
    monkeypatch.setenv("SCORETOOL_FAST_MUSICGEN", "0")
    gen = MusicGenGenerator(ModelSpec(str(tiny_dir), "cpu"))
    assert gen.fast is None and "SCORETOOL_FAST_MUSICGEN" in gen.fallback_reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_graphs_match_the_eager_static_loop(tiny, dtype):
    model, processor = tiny
    model = model.to("cuda")
    try:
        inputs = processor(text=PROMPTS, padding=True, return_tensors="pt").to("cuda")
        eager = FastMusicgen(model, "cuda", dtype=dtype, graphs=False)
        graphed = FastMusicgen(model, "cuda", dtype=dtype, graphs=True)
        prompt = eager.audio_codes(torch.from_numpy(np.stack([audio_prompt(0.5, seed=i) for i in range(3)]))[:, None].cuda())
        for sample in (False, True):
            for prompt_codes in (None, prompt):
                options = dict(do_sample=sample, seeds=[1, 2, 3], prompt_codes=prompt_codes)
                a = eager.generate_codes(inputs["input_ids"], inputs["attention_mask"], 150, **options)
                b = graphed.generate_codes(inputs["input_ids"], inputs["attention_mask"], 150, **options)
                assert graphed.graphs and torch.equal(a, b)
    finally:
        model.to("cpu")


def _stack_calls(encodec, codec):
    """Records the (rows, samples) of each call of the upsampling past the codec's whole-row front."""
    calls = []
    stack = encodec.decoder.layers[codec.FRONT_LAYERS]
    return calls, stack.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape[::2])))


def test_long_batches_are_decoded_a_on_kernel_at_a_time_to_the_same_audio(tiny, monkeypatch):
    from scoretool.music import codec

    model, _ = tiny
    encodec = model.audio_encoder
    codes = torch.randint(0, model.config.decoder.vocab_size, (3, 4, 40))
    lengths = [40, 30, 20]  # rows come longest first; each one's audio past its own length is silence
    whole = codec.decode_codes(encodec, 1, codes, lengths)  # 3 x 40 frames: one decode, as generate's
    rate = encodec.config.upsampling_ratios[0]  # samples a frame after the front's upsampling
    monkeypatch.setattr(codec, "DECODE_FRAMES", 100)  # 3 x 40 is more: the front, then pieces
    monkeypatch.setattr(codec, "PIECE_FRAMES", 25)
    calls, hook = _stack_calls(encodec, codec)
    try:
        chunked = codec.decode_codes(encodec, 1, codes, lengths)
    finally:
        hook.remove()
    # one row a piece (0-25 +4, 25-40 -4), none past a row's own length: 2 + 2 + 1
    assert calls == [(1, 29 * rate), (1, 19 * rate)] * 2 + [(1, 29 * rate)]
    assert chunked.shape == whole.shape
    assert float((chunked - whole).abs().max()) < 1e-5
    hop = whole.shape[-1] // 40
    assert all(not chunked[row, :, own * hop :].any() for row, own in enumerate(lengths))


def test_a_long_row_runs_the_codecs_upsampling_a_piece_at_a_time_to_the_same_audio(tiny, monkeypatch):
    from scoretool.music import codec

    model, _ = tiny
    encodec = model.audio_encoder
    codes = torch.randint(0, model.config.decoder.vocab_size, (2, 4, 57))
    with torch.inference_mode():
        whole = encodec.decode(codes[None], audio_scales=[None]).audio_values  # transformers' own decode
    monkeypatch.setattr(codec, "WHOLE_FRAMES", 30)
    monkeypatch.setattr(codec, "PIECE_FRAMES", 20)
    calls, hook = _stack_calls(encodec, codec)
    try:
        chunked = codec.decode_codes(encodec, 1, codes)
    finally:
        hook.remove()
    rate = encodec.config.upsampling_ratios[0]
    assert calls == [(1, 24 * rate), (1, 28 * rate), (1, 21 * rate)] * 2  # 0-20 +4, 20-40 +-4, 40-57 -4
    assert chunked.shape == whole.shape and float((chunked - whole).abs().max()) < 1e-5


def test_folding_the_codecs_weight_norm_keeps_its_audio(tiny):
    import copy

    from torch.nn.utils import parametrize

    from scoretool.music import codec

    model, _ = tiny
    encodec = copy.deepcopy(model.audio_encoder)
    codes = torch.randint(0, model.config.decoder.vocab_size, (2, 4, 30))
    before = codec.decode_codes(encodec, 1, codes)
    assert any(parametrize.is_parametrized(m, "weight") for m in encodec.decoder.modules())
    codec.fold_weight_norm(encodec)
    assert not any(parametrize.is_parametrized(m, "weight") for m in encodec.decoder.modules())
    assert torch.equal(codec.decode_codes(encodec, 1, codes), before)

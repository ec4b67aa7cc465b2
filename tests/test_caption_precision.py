"""BLIP captions in each precision (tiny BLIP of scoretool.testing): fp32 is today's path exactly,
bf16 and int8 really run in their precision, and one that cannot run falls back, saying why."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from scoretool import int8, int8_kernel
from scoretool.caption import lowp
from scoretool.caption.blip import BlipCaptioner, clean_caption
from scoretool.caption.fused import FusedMLP, fuse_vision_attention, fuse_vision_mlp
from scoretool.int8 import Int8Linear
from scoretool.specs import ModelSpec


@pytest.fixture(scope="module")
def blip_folder(tiny_models):
    return str(tiny_models["blip"])


def _images() -> list[Image.Image]:
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return [Image.fromarray(noise), Image.new("RGB", (640, 480), (200, 30, 30)), Image.new("RGB", (64, 64), (0, 90, 200))]


def _captioner(folder: str, precision: str) -> BlipCaptioner:
    return BlipCaptioner(ModelSpec(folder, "cpu", precision), max_new_tokens=8)


def _quantized_linears(module) -> int:
    return sum(isinstance(m, Int8Linear) for m in module.modules())


def test_fp32_is_the_plain_transformers_path(blip_folder):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(blip_folder)
    model = BlipForConditionalGeneration.from_pretrained(blip_folder).eval()
    inputs = processor(images=_images(), return_tensors="pt")
    with torch.inference_mode():
        expected = [clean_caption(t) for t in processor.batch_decode(model.generate(**inputs, max_new_tokens=8), skip_special_tokens=True)]

    captioner = _captioner(blip_folder, "fp32")
    assert captioner.caption(_images()) == expected
    assert captioner.spec.precision == "fp32"
    assert next(captioner.model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_each_precision_captions_in_that_precision(blip_folder, precision, caplog):
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        captioner = _captioner(blip_folder, precision)
    assert not caplog.records, "no fallback expected on this CPU"
    assert captioner.spec == ModelSpec(blip_folder, "cpu", precision)

    parts = lowp.PARTS[precision]
    for module, part in ((captioner.model.vision_model, parts.vision), (captioner.model.text_decoder, parts.decoder)):
        if part == "int8":
            assert _quantized_linears(module) > 0
            assert not any(type(m) is torch.nn.Linear for m in module.modules())  # no fp32 weights kept
        else:
            assert _quantized_linears(module) == 0
            assert {p.dtype for p in module.parameters()} == {lowp.activation_dtype(part)}

    captions = captioner.caption(_images())
    assert len(captions) == 3 and all(c.split() for c in captions)
    vocab = captioner.processor.tokenizer.get_vocab()
    assert all(word in vocab for c in captions for word in c.split())


@pytest.mark.skipif(int8_kernel.unavailable_reason() is not None, reason=f"no int8 kernel here: {int8_kernel.unavailable_reason()}")
def test_int8_runs_on_the_kernel_with_the_vision_gelu_in_its_pass_and_each_frames_caption_its_own(blip_folder):
    captioner = _captioner(blip_folder, "int8")
    layers = [m for m in captioner.model.modules() if isinstance(m, Int8Linear)]
    assert layers and all(layer.on_kernel for layer in layers)
    assert all(isinstance(layer.mlp, FusedMLP) for layer in captioner.model.vision_model.encoder.layers)

    images = _images()
    together = captioner.caption(images)
    assert [captioner.caption([image])[0] for image in images] == together  # per-row quantization
    with torch.inference_mode():  # the fused MLP computes what transformers' does on the same layers
        mlp = captioner.model.vision_model.encoder.layers[0].mlp
        x = torch.randn(3, 20, mlp.fc1.in_features)
        torch.testing.assert_close(mlp(x), mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x))), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(int8_kernel.unavailable_reason() is not None, reason=f"no int8 kernel here: {int8_kernel.unavailable_reason()}")
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_a_vision_mlp_is_fused_only_where_it_computes_the_same(blip_folder, activation, caplog):
    from transformers import BlipForConditionalGeneration

    vision = BlipForConditionalGeneration.from_pretrained(blip_folder).vision_model
    for layer in vision.encoder.layers:
        for name in ("fc1", "fc2"):
            linear = getattr(layer.mlp, name)
            setattr(layer.mlp, name, Int8Linear.quantize(linear.weight, linear.bias, on_kernel=True))
        if activation == "relu":  # a transformers whose MLP no longer runs GELU
            layer.mlp.activation_fn = torch.nn.ReLU()
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        fused = fuse_vision_mlp(vision)
    assert fused == (activation == "gelu")
    assert all(isinstance(layer.mlp, FusedMLP) == fused for layer in vision.encoder.layers)
    assert ("keeping transformers' own vision MLP" in caplog.text) == (not fused)


@pytest.mark.skipif(int8_kernel.attention_unavailable_reason() is not None, reason=f"{int8_kernel.attention_unavailable_reason()}")
def test_int8_vision_attention_with_heads_of_64_runs_on_the_bf16_kernel():
    from transformers import BlipVisionConfig, BlipVisionModel

    torch.manual_seed(0)  # blip-base's heads (64 wide), one small layer; the tiny test BLIP's are 8 wide
    config = BlipVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=1, num_attention_heads=2,
                              image_size=64, patch_size=16)  # fmt: skip
    vision = BlipVisionModel(config).eval()
    pixels = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        want = vision(pixel_values=pixels).last_hidden_state
        assert fuse_vision_attention(vision, bf16_kernel=True)
        assert vision.encoder.layers[0].self_attn.bf16_kernel
        got = vision(pixel_values=pixels).last_hidden_state
    assert ((got - want).norm() / want.norm()).item() < 1e-2  # bf16 products, fp32 sums


def test_int8_that_cannot_run_falls_back_to_bf16_saying_why(blip_folder, monkeypatch, caplog):
    def gone(*args, **kwargs):
        raise AttributeError("torch.ops.quantized.linear_prepack was removed")  # as a future torch might

    monkeypatch.setattr(int8.Int8Linear, "__init__", gone)  # whether quantized now or rebuilt from the store
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        captioner = _captioner(blip_folder, "int8")

    assert captioner.spec == ModelSpec(blip_folder, "cpu", "bf16")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "int8" in caplog.text and "linear_prepack was removed" in caplog.text and "bf16" in caplog.text
    assert _quantized_linears(captioner.model) == 0
    assert next(captioner.model.text_decoder.parameters()).dtype == torch.bfloat16
    assert all(c.split() for c in captioner.caption(_images()))


def test_a_failing_check_falls_all_the_way_to_fp32(blip_folder, monkeypatch, caplog):
    """bf16 converts but its first real caption fails (an op missing for bf16 on this CPU, say)."""
    real_convert = lowp.convert

    def convert(model, precision, device, read_weight):
        model = real_convert(model, precision, device, read_weight)
        if precision != "fp32":

            def refuse(*args, **kwargs):
                raise RuntimeError(f'"addmm" not implemented for {precision}')

            model.vision_model.forward = refuse
        return model

    monkeypatch.setattr(lowp, "convert", convert)
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        captioner = _captioner(blip_folder, "int8")

    assert captioner.spec.precision == "fp32"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "int8" in warnings[0] and "not implemented for int8" in warnings[0] and "using bf16" in warnings[0]
    assert "bf16" in warnings[1] and "using fp32" in warnings[1]
    assert captioner.caption(_images()) == _captioner(blip_folder, "fp32").caption(_images())


def test_fp16_on_the_cpu_falls_back_to_fp32(blip_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="scoretool"):
        captioner = _captioner(blip_folder, "fp16")
    assert captioner.spec.precision == "fp32"
    assert "CUDA" in caplog.text

"""Reading single tensors from safetensors files (`checkpoints`), and models held in int8 that read their
fp32 weights from there: MusicGen's decoder and text encoder, and BLIP, keep no fp32 Linear layer once
quantized (but T5's `wo`, which transformers keeps in fp32)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from scoretool import int8
from scoretool.checkpoints import Checkpoint
from scoretool.int8 import Int8Linear
from scoretool.music.musicgen import MusicGenGenerator
from scoretool.specs import ModelSpec, Sampling

needs_int8 = pytest.mark.skipif(int8.int8_unavailable_reason() is not None, reason="no fbgemm int8 kernels here")


def test_tensors_read_from_one_file_and_from_shards_equal_safetensors_own(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"a.weight": torch.randn(5, 7, generator=g), "b.weight": torch.randn(3, generator=g).to(torch.bfloat16),
               "c.count": torch.arange(4)}  # fmt: skip
    single = tmp_path / "single"
    single.mkdir()
    save_file(tensors, single / "model.safetensors", metadata={"format": "pt"})
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    save_file({"a.weight": tensors["a.weight"]}, sharded / "model-00001-of-00002.safetensors")
    save_file({"b.weight": tensors["b.weight"]}, sharded / "model-00002-of-00002.safetensors")
    weight_map = {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))

    expected = load_file(single / "model.safetensors")
    for folder in (single, sharded):
        checkpoint = Checkpoint.find(folder)
        for name in ("a.weight", "b.weight"):
            got = checkpoint.tensor(name)
            assert got.dtype == expected[name].dtype and torch.equal(got, expected[name])
        assert checkpoint.tensor("missing.weight") is None
    assert Checkpoint.find(single).tensor("c.count") is None  # not a float: the caller uses its own
    assert Checkpoint.find(tmp_path) is None and Checkpoint.find(None) is None


@needs_int8
def test_musicgen_in_int8_quantizes_from_the_checkpoint_once_then_loads_the_stored_int8_layers(tiny_models, monkeypatch, tmp_path):
    from scoretool import cache

    monkeypatch.setattr(cache, "default_dir", lambda: tmp_path / "cache")
    folder = str(tiny_models["musicgen"])
    read = []
    real = Checkpoint.tensor
    monkeypatch.setattr(Checkpoint, "tensor", lambda self, name: read.append(name) or real(self, name))

    first = MusicGenGenerator(ModelSpec(folder, "cpu", "int8"))
    decoder = first.model.decoder
    assert not any(type(m) is torch.nn.Linear for m in decoder.modules())
    layers = {name: m for name, m in decoder.named_modules() if isinstance(m, Int8Linear)}
    assert [n for n in read if n.startswith("decoder.")] == [f"decoder.{name}.weight" for name in layers]  # all from the file
    assert not any(type(m) is torch.nn.Linear for m in first.model.text_encoder.modules())  # T5's wo too
    checkpoint = load_file(f"{folder}/model.safetensors")
    name = "model.decoder.layers.0.fc1"
    x = torch.randn(3, layers[name].in_features)
    from_file = Int8Linear.quantize(checkpoint[f"decoder.{name}.weight"]).quantized_weight()
    assert torch.equal(layers[name].quantized_weight().int_repr(), from_file.int_repr())  # whichever kernel runs it
    assert torch.equal(layers[name].quantized_weight().q_per_channel_scales(), from_file.q_per_channel_scales())
    assert len(list((tmp_path / "cache" / "int8").iterdir())) == 2  # decoder and text encoder

    def refuse(*args, **kwargs):
        raise AssertionError("quantized again although the store holds the layers")

    monkeypatch.setattr(Int8Linear, "quantize", refuse)
    read.clear()
    second = MusicGenGenerator(ModelSpec(folder, "cpu", "int8"))
    assert not any(n.startswith(("decoder.", "text_encoder.")) for n in read)  # nothing read from the fp32 checkpoint
    again = {name: m for name, m in second.model.decoder.named_modules() if isinstance(m, Int8Linear)}
    assert torch.equal(again[name](x), layers[name](x))
    clips = [g.generate(["drums"], [0.3], [1], Sampling())[0] for g in (first, second)]
    assert clips[0].shape[0] > 0 and (clips[0] == clips[1]).all()


@needs_int8
def test_a_damaged_int8_store_is_quantized_again(tiny_models, monkeypatch, tmp_path):
    from scoretool import cache, int8_store

    monkeypatch.setattr(cache, "default_dir", lambda: tmp_path / "cache")
    folder = str(tiny_models["musicgen"])
    path = int8_store.store_path(folder, "decoder")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    gen = MusicGenGenerator(ModelSpec(folder, "cpu", "int8"))
    assert gen.spec.precision == "int8" and int8_store.read_store(path) is not None  # rewritten whole

"""The fused int8 decoder layer (kernels/int8_layer.c through `int8_kernel.DecoderLayer`): a decoding
step on it computes what the decoder's torch ops compute (its sums in another order), at either KV
cache dtype, with masked and fully masked text, and each row's result depends on that row alone."""

import pytest
import torch

from scoretool import int8, int8_kernel

needs_layer = pytest.mark.skipif(
    int8.int8_unavailable_reason() is not None or int8_kernel.fused_layer_reason() is not None,
    reason=f"the fused int8 layer can't run here: {int8_kernel.fused_layer_reason()}",
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from scoretool import testing

    return testing.make_tiny_musicgen(tmp_path_factory.mktemp("tiny-layer") / "musicgen")


def _decoders(tiny_dir, monkeypatch, cache_dtype):
    from transformers import MusicgenForConditionalGeneration

    from scoretool.music.fast import FastMusicgen

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_dir).eval()
    kernel = FastMusicgen(model, "cpu", int8=True, kv_dtype=cache_dtype).decoder
    monkeypatch.setenv("SCORETOOL_INT8_LAYER", "0")
    ops = FastMusicgen(model, "cpu", int8=True, kv_dtype=cache_dtype).decoder
    assert kernel.kernel_layers and ops.kernel_layers is None
    return kernel, ops


def _logits(d, enc, mask, tokens):
    """Logits (steps, rows, K, vocab) of a step per position, fed `tokens` (batch, K, steps)."""
    rows, steps = enc.shape[0], tokens.shape[2]
    cross = [d.cross_kv(layer, enc) for layer in d.layers]
    kv = torch.zeros((len(d.layers), 2, rows, d.H, steps, d.hd), dtype=d.cache_dtype)
    positions = d.positions_for(steps)
    with torch.inference_mode():
        return torch.stack([
            d.step(tokens[:, :, s], s, kv, s + 1, None, [k for k, _ in cross], [v for _, v in cross],
                   mask[:, None, None, :], positions, rows)
            for s in range(steps)
        ])  # fmt: skip


def _inputs(d, batch=2, text=5, steps=12):
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(2 * batch, text, d.D, generator=g)
    mask = torch.zeros(2 * batch, text, dtype=torch.bool)  # the second half: guidance's unconditional rows
    mask[0], mask[1, :3] = True, True
    enc[batch:] = 0
    tokens = torch.randint(0, d.V, (batch, d.K, steps), generator=g)
    return enc, mask, tokens


@needs_layer
@pytest.mark.parametrize(
    "cache_dtype, tolerance",
    # bf16: the torch ops round the query to bf16 for attention, the kernel keeps it in fp32
    [(torch.float32, 1e-4), (torch.bfloat16, 0.01)],
    ids=["fp32-cache", "bf16-cache"],
)
def test_a_step_on_the_fused_layer_computes_what_the_torch_ops_do(tiny_dir, monkeypatch, cache_dtype, tolerance):
    kernel, ops = _decoders(tiny_dir, monkeypatch, cache_dtype)
    enc, mask, tokens = _inputs(kernel)
    a, b = _logits(kernel, enc, mask, tokens), _logits(ops, enc, mask, tokens)
    assert torch.isfinite(a).all()
    # Not to the bit: sums in another order (and, rarely, a row's 8-bit activation one step over).
    # Seeing all of the text (a mask ignored) would be off by ~1.5e-2 here.
    error = ((a - b).norm(dim=-1) / b.norm(dim=-1)).max().item()
    assert error < tolerance
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.95


@needs_layer
def test_a_rows_step_on_the_fused_layer_is_the_same_whatever_shares_it(tiny_dir, monkeypatch):
    kernel, _ = _decoders(tiny_dir, monkeypatch, torch.bfloat16)
    enc, mask, tokens = _inputs(kernel, batch=3)
    together = _logits(kernel, enc, mask, tokens)
    for item in range(3):
        rows = [item, item + 3]
        alone = _logits(kernel, enc[rows], mask[rows], tokens[item : item + 1])
        assert torch.equal(alone, together[:, rows])


@needs_layer
def test_the_kernel_layer_turned_off_leaves_torch_ops(tiny_dir, monkeypatch):
    monkeypatch.setenv("SCORETOOL_INT8_LAYER", "0")
    assert "turned off" in int8_kernel.fused_layer_reason()

"""The bf16 attention kernel (int8_kernel.attention, kernels/attention_bf16.c) that BLIP's vision
encoder runs in int8: as near fp32 attention as torch's own bf16 attention, each image's result its
own, and where it can't run, said why."""

import pytest
import torch

from scoretool import int8_kernel

needs_attention = pytest.mark.skipif(
    int8_kernel.attention_unavailable_reason() is not None,
    reason=f"the bf16 attention kernel can't run here: {int8_kernel.attention_unavailable_reason()}",
)


def _qkv(batch, tokens, heads, seed=0):
    return torch.randn(batch, tokens, 3 * heads * 64, generator=torch.Generator().manual_seed(seed)) * 2


def _sdpa(qkv, heads, scale, dtype=torch.float32):
    batch, tokens, _ = qkv.shape
    q, k, v = qkv.to(dtype).reshape(batch, tokens, 3, heads, 64).permute(2, 0, 3, 1, 4)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)
    return out.transpose(1, 2).reshape(batch, tokens, heads * 64).float()


@needs_attention
@pytest.mark.parametrize("shape", [(2, 17, 3), (1, 577, 2), (3, 1, 1), (1, 40, 1)], ids=str)
def test_attention_is_as_near_fp32_as_torchs_bf16_attention(shape):
    qkv = _qkv(*shape)
    exact, bf16 = _sdpa(qkv, shape[2], 0.125), _sdpa(qkv, shape[2], 0.125, torch.bfloat16)
    got = int8_kernel.attention(qkv, shape[2], 0.125)
    error = lambda y: ((y - exact).norm() / exact.norm()).item()  # noqa: E731
    assert got.shape == exact.shape
    assert error(got) < 1e-2
    assert error(got) <= 1.5 * error(bf16) + 1e-4


@needs_attention
def test_each_images_attention_is_its_own():
    qkv = _qkv(4, 50, 2, seed=1)
    together = int8_kernel.attention(qkv, 2, 0.125)
    for i in range(4):
        assert torch.equal(int8_kernel.attention(qkv[i : i + 1], 2, 0.125), together[i : i + 1])


def test_the_kernel_takes_only_fp32_heads_of_64():
    if int8_kernel.attention_unavailable_reason() is not None:
        pytest.skip("no kernel here")
    with pytest.raises(ValueError, match="heads of 64"):
        int8_kernel.attention(torch.randn(1, 5, 3 * 2 * 32), 2, 0.125)
    with pytest.raises(ValueError, match="heads of 64"):
        int8_kernel.attention(_qkv(1, 5, 1).bfloat16(), 1, 0.125)


def test_where_it_cannot_run_the_reason_is_given(monkeypatch):
    monkeypatch.setenv("SCORETOOL_BF16_ATTENTION", "0")
    assert "SCORETOOL_BF16_ATTENTION" in int8_kernel.attention_unavailable_reason()
    monkeypatch.delenv("SCORETOOL_BF16_ATTENTION")
    monkeypatch.setattr(int8_kernel, "cpu_flags", lambda: frozenset({"avx512f"}))
    assert int8_kernel.attention_unavailable_reason() is not None  # the library or the CPU lacks it


def test_a_compiler_without_avx512_bf16_still_builds_the_int8_kernel(tmp_path, monkeypatch):
    """gcc < 10 knows no -mavx512bf16: the library is built without the attention, which says why."""
    import shutil

    from scoretool import int8

    real = shutil.which("cc")
    if real is None or int8.int8_unavailable_reason() is not None:
        pytest.skip("no C compiler or no int8 here")
    old_cc, calls = tmp_path / "old-cc", tmp_path / "calls"
    old_cc.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                      f"for a in \"$@\"; do case $a in -mavx512bf16|-mamx-*) exit 1;; esac; done\nexec {real} \"$@\"\n")  # fmt: skip
    old_cc.chmod(0o755)
    monkeypatch.setenv("CC", str(old_cc))
    monkeypatch.setenv("SCORETOOL_CACHE_DIR", str(tmp_path / "cache"))
    int8_kernel._library_once.cache_clear()
    try:
        if int8_kernel.unavailable_reason() is not None:
            pytest.skip(f"the kernel can't run here anyway: {int8_kernel.unavailable_reason()}")
        assert int8_kernel.attention_unavailable_reason() in (
            "the C compiler could not build it (-mavx512bf16)",
            "it needs avx512_bf16, which this CPU lacks",
        )
        builds = [line for line in calls.read_text().splitlines() if "-shared" in line]
        assert len(builds) == 3  # with AMX and BF16, with BF16, then without
        int8_kernel._library_once.cache_clear()
        assert int8_kernel.unavailable_reason() is None
        assert [line for line in calls.read_text().splitlines() if "-shared" in line] == builds  # not tried again
    finally:
        int8_kernel._library_once.cache_clear()

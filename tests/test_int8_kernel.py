"""The int8 kernel (scoretool/int8_kernel.py): accurate, batch-independent on a few rows and on many,
its GELU pass, repacked losslessly, and where it can't run, said why with fbgemm kept."""

import pytest
import torch

from scoretool import int8, int8_kernel

needs_kernel = pytest.mark.skipif(
    int8.int8_unavailable_reason() is not None or int8_kernel.unavailable_reason() is not None,
    reason=f"the int8 rows kernel can't run here: {int8_kernel.unavailable_reason()}",
)


def _layers(out_features, in_features, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_features, in_features, generator=g) * 0.05
    b = torch.randn(out_features, generator=g) if bias else None
    fbgemm = int8.Int8Linear.quantize(weight, b)
    rows = int8.Int8Linear.quantize(weight, b, on_kernel=True)
    assert rows.on_kernel and not fbgemm.on_kernel
    return weight, b, fbgemm, rows


@needs_kernel
@pytest.mark.parametrize("shape", [(64, 32), (200, 30), (8192, 1024), (33, 4097)], ids=str)
def test_the_kernel_is_as_accurate_as_fbgemm_on_any_shape(shape):
    weight, b, fbgemm, rows = _layers(*shape)
    x = torch.randn(5, shape[1]) * 3 + 1
    exact = torch.nn.functional.linear(x, weight, b)
    error = lambda y: ((y - exact).norm() / exact.norm()).item()  # noqa: E731
    assert rows.forward(x).shape == exact.shape
    assert error(rows.forward(x)) < 0.02  # 8-bit activations, per-channel int8 weights
    assert error(rows.forward(x)) <= error(fbgemm.forward(x)) * 1.1  # fbgemm's path: 7-bit activations


@needs_kernel
def test_a_rows_result_is_the_same_whatever_shares_its_call():
    _, _, _, rows = _layers(300, 72)
    x = torch.randn(13, 72)
    together = rows.forward(x)  # 13 rows: the kernel's passes of 6, 6 and 1
    for i in range(13):
        assert torch.equal(rows.forward(x[i : i + 1]), together[i : i + 1])
    assert torch.equal(rows.forward(x[3:9]), together[3:9])
    assert torch.equal(rows.forward(x.view(13, 1, 72)).view(13, 300), together)  # 3-D input


@needs_kernel
def test_many_rows_go_in_chunks_with_each_rows_result_unchanged():
    weight, b, fbgemm, rows = _layers(200, 130)
    x = torch.randn(250, 130) * 2  # chunks of 96 rows: 96, 96 and 58, each against every tile
    together = rows.forward(x)
    for start, stop in ((0, 1), (95, 97), (191, 193), (249, 250), (7, 140)):
        assert torch.equal(rows.forward(x[start:stop]), together[start:stop])
    exact = torch.nn.functional.linear(x, weight, b)
    assert ((together - exact).norm() / exact.norm()).item() < 0.02


@needs_kernel
def test_the_gelu_in_the_kernels_pass_is_torchs_gelu_of_its_result():
    _, _, fbgemm, rows = _layers(130, 72)
    x = torch.randn(150, 72) * 2
    torch.testing.assert_close(rows.gelu(x), torch.nn.functional.gelu(rows.forward(x)), rtol=0, atol=2e-6)
    assert rows.gelu(x.view(10, 15, 72)).shape == (10, 15, 130)
    torch.testing.assert_close(fbgemm.gelu(x), torch.nn.functional.gelu(fbgemm.forward(x)))  # fbgemm: two passes


@needs_kernel
def test_packing_for_the_kernel_keeps_the_int8_weight_and_fuses_like_fbgemm():
    _, _, fbgemm, rows = _layers(130, 48, bias=False)
    before, after = fbgemm.quantized_weight(), rows.quantized_weight()
    assert torch.equal(before.int_repr(), after.int_repr())
    assert torch.equal(before.q_per_channel_scales(), after.q_per_channel_scales())
    assert torch.equal(fbgemm.state()["rowsum"], rows.state()["rowsum"])
    # a fused layer (q, k, v) made of kernel layers gives each part's own result
    _, _, _, other = _layers(70, 48, bias=False, seed=1)
    fused = int8.Int8Linear.fused([rows, other])
    assert fused.on_kernel
    x = torch.randn(4, 48)
    assert torch.equal(fused.forward(x), torch.cat([rows.forward(x), other.forward(x)], dim=1))
    # parts of whole 64-channel tiles (q, k, v; the LM heads) join tile by tile, to the same layer
    parts = [_layers(n, 48, bias=False, seed=n)[3] for n in (128, 64)]
    joined = int8.Int8Linear.fused(parts)
    assert torch.equal(joined.forward(x), torch.cat([p.forward(x) for p in parts], dim=1))
    assert torch.equal(joined.quantized_weight().int_repr(), torch.cat([p.quantized_weight().int_repr() for p in parts]))


@pytest.mark.parametrize(
    "env, why",
    [({"SCORETOOL_INT8_KERNEL": "0"}, "turned off"), ({"CC": "no-such-compiler-here"}, "no C compiler")],
    ids=["turned-off", "no-compiler"],
)
def test_where_the_kernel_cannot_run_the_reason_is_given_and_fbgemm_stays(monkeypatch, caplog, env, why):
    if int8.int8_unavailable_reason() is not None:
        pytest.skip("no fbgemm int8 kernels here")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    int8_kernel._library_once.cache_clear()
    try:
        with caplog.at_level("INFO", logger="scoretool"):
            reason = int8_kernel.unavailable_reason()
        if "lacks" in (reason or "") and why == "no C compiler":
            pytest.skip(f"this CPU can't run it anyway: {reason}")
        assert why in reason and why in caplog.text
        layer = int8.Int8Linear.quantize(torch.randn(64, 32), on_kernel=True)
        assert not layer.on_kernel
        x = torch.randn(2, 32)
        assert layer.forward(x).shape == (2, 64)
    finally:
        int8_kernel._library_once.cache_clear()


@needs_kernel
def test_the_built_kernel_is_kept_in_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SCORETOOL_CACHE_DIR", str(tmp_path))
    int8_kernel._library_once.cache_clear()
    try:
        assert int8_kernel.unavailable_reason() is None
        built = list((tmp_path / "kernels").iterdir())
        assert len(built) == 1 and built[0].suffix == ".so"  # no partial file left
        inode = built[0].stat().st_ino
        int8_kernel._library_once.cache_clear()
        assert int8_kernel.unavailable_reason() is None
        assert built[0].stat().st_ino == inode  # loaded again, not rebuilt (a build is renamed into place)
    finally:
        int8_kernel._library_once.cache_clear()


@needs_kernel
def test_a_build_sweeps_builds_unused_for_a_month_and_what_killed_builds_left(tmp_path, monkeypatch):
    import os
    import time

    monkeypatch.setenv("SCORETOOL_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "kernels"
    folder.mkdir()
    stale, recent = folder / "int8_rows-0000000000000000.so", folder / "int8_rows-1111111111111111.so"
    killed, building = folder / "int8_rows-2222.so.99-1.part", folder / "int8_rows-3333.so.98-1.part"
    for path in (stale, recent, killed, building):
        path.write_bytes(b"x")
    month, hours = time.time() - (int8_kernel.STALE_DAYS + 1) * 86400, time.time() - 2 * 3600
    os.utime(stale, (month, month))
    os.utime(killed, (hours, hours))
    int8_kernel._library_once.cache_clear()
    try:
        assert int8_kernel.unavailable_reason() is None
        left = sorted(p.name for p in folder.iterdir())
        assert stale.name not in left and killed.name not in left
        assert recent.name in left and building.name in left  # another version's, used lately; a build under way
        assert len([name for name in left if name.endswith(".so")]) == 2
    finally:
        int8_kernel._library_once.cache_clear()


def test_auto_says_whether_musicgens_decoding_runs_on_the_kernel(monkeypatch):
    from scoretool import precision

    choice = precision.choose("auto", "cpu", "music")
    if choice.precision != "int8":
        pytest.skip(f"auto does not pick int8 here: {choice.why}")
    assert "few-row int8 kernel" in choice.why
    monkeypatch.setenv("SCORETOOL_INT8_KERNEL", "0")
    int8_kernel._library_once.cache_clear()
    try:
        assert "few-row int8 kernel is turned off" in precision.choose("auto", "cpu", "music").why
    finally:
        int8_kernel._library_once.cache_clear()


def test_auto_says_which_kernels_blip_runs_on_in_int8(monkeypatch):
    from scoretool import precision

    monkeypatch.setattr(precision, "cpu_kernels", lambda: precision.CpuKernels("AVX512", frozenset({"avx512f"}), None))
    monkeypatch.setattr(int8_kernel, "unavailable_reason", lambda: None)
    monkeypatch.setattr(int8_kernel, "attention_unavailable_reason", lambda: None)
    why = precision.choose("auto", "cpu", "caption").why
    assert "scoretool's int8 kernel" in why and "in bf16 products" in why
    monkeypatch.setattr(int8_kernel, "attention_unavailable_reason", lambda: "it needs avx512_bf16")
    assert "attention in fp32" in precision.choose("auto", "cpu", "caption").why
    monkeypatch.setattr(int8_kernel, "unavailable_reason", lambda: "is turned off (SCORETOOL_INT8_KERNEL)")
    why = precision.choose("auto", "cpu", "caption").why
    assert "fbgemm int8 kernels" in why and "turned off" in why


def test_threads_building_int8_layers_at_once_share_one_build_of_the_kernel(tmp_path, monkeypatch):
    """quantize_linears builds layers on a thread per core: the first ones all ask for the kernel."""
    from concurrent.futures import ThreadPoolExecutor

    if int8.int8_unavailable_reason() is not None:
        pytest.skip("no fbgemm int8 kernels here")
    monkeypatch.setenv("SCORETOOL_CACHE_DIR", str(tmp_path))
    int8_kernel._library_once.cache_clear()
    try:
        with ThreadPoolExecutor(4) as pool:
            reasons = list(pool.map(lambda _: int8_kernel.unavailable_reason(), range(8)))
        assert len(set(reasons)) == 1
        if reasons[0] is None:
            assert [p.suffix for p in (tmp_path / "kernels").iterdir()] == [".so"]
    finally:
        int8_kernel._library_once.cache_clear()


@needs_kernel
def test_amx_and_vnni_give_the_same_bits(monkeypatch):
    if not int8_kernel.uses_amx():
        pytest.skip("this CPU (or Linux) gives no AMX tiles")
    _, _, _, amx = _layers(200, 130)
    monkeypatch.setenv("SCORETOOL_INT8_AMX", "0")
    int8_kernel.uses_amx.cache_clear()
    try:
        _, _, _, vnni = _layers(200, 130)
        assert amx._rows._amx and not vnni._rows._amx
        x = torch.randn(21, 130)  # AMX from 5 rows: tiles of 16 rows, then 5
        assert torch.equal(amx.forward(x), vnni.forward(x))
        assert torch.equal(amx.forward(x[:3]), vnni.forward(x[:3]))
    finally:
        int8_kernel.uses_amx.cache_clear()

"""Reduced-precision linear layers for MusicGen's decoder: int8 on the CPU, bf16/fp16 casts.

`Int8Linear` runs fbgemm's dynamic int8 GEMM (`quantized.linear_dynamic` on weights prepacked per
output channel), the fastest CPU path measured (4096x1024 at batch 2: ~10x fp32). fbgemm picks one
activation scale for the whole input, so a row's result would depend on the other rows in the batch
(other scenes): each row is first mapped onto [0, 1] (u = (x - lo) / span), so every input fbgemm sees
has min 0 and max 1 and gets the same scale, and y = span * (W u) + lo * rowsum(W) is each row's
product with its own (per-token) activation scale: bit for bit the same whatever shares its batch,
and more accurate than one scale for all. Activations are quantized to 7 bits (`reduce_range`): on
CPUs without VNNI, fbgemm's 16-bit pair sums saturate with 8-bit ones.

`swapped(module, precision)` stands these in for a module's `nn.Linear` layers while transformers'
own code runs (the audio prompt's prefill, the `generate` fallback): the fast loop and generate then
run the same precision.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F

HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def int8_unavailable_reason() -> str | None:
    """Why this torch build cannot run `Int8Linear`, or None where it can."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return f"this torch has no fbgemm int8 kernels (engines: {', '.join(torch.backends.quantized.supported_engines)})"
    for name in ("linear_prepack", "linear_dynamic"):
        try:
            getattr(torch.ops.quantized, name)
        except (AttributeError, RuntimeError):
            return f"this torch has no torch.ops.quantized.{name}"
    return None


@contextlib.contextmanager
def _engine(name: str):
    """The quantized engine the weights are prepacked for (the packed weights keep it)."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


class Int8Linear(torch.nn.Module):
    """y = x @ weight.T (+ bias) with int8 weights (per output channel) and per-row int8 activations."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        weight = weight.detach().float().cpu()
        scale = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # quantized tensors are deprecated; a torch without them fails here
            warnings.simplefilter("ignore")
            q = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
            with _engine("fbgemm"):
                self._packed = torch.ops.quantized.linear_prepack(q, None)
            self.register_buffer("rowsum", q.dequantize().sum(dim=1), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().float().cpu(), persistent=False)
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]

    @classmethod
    def fused(cls, weights: list[torch.Tensor]) -> Int8Linear:
        """One layer for several that read the same input (q, k, v; the LM heads): the same results as
        each alone (per-row activations, per-channel weights), one GEMM."""
        return cls(torch.cat([w.detach() for w in weights]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) fp32. Few, in-place ops: this runs ~150 times a decoding step."""
        if x.dim() != 2:
            return self.forward(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], self.out_features)
        lo = x.amin(-1, keepdim=True)
        span = x.amax(-1, keepdim=True).sub_(lo).clamp_min_(1e-30)
        y = torch.ops.quantized.linear_dynamic((x - lo).div_(span), self._packed, True)
        y = torch.addcmul(lo * self.rowsum, y, span)
        return y if self.bias is None else y + self.bias


class CastLinear(torch.nn.Module):
    """y = x @ weight.T (+ bias) computed in a half dtype, returned in the input's dtype."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("weight", weight.detach().to(dtype), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().to(dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)


def reduced(linear: torch.nn.Linear, precision: str) -> torch.nn.Module:
    """A stand-in for `linear` in `precision` (int8, bf16 or fp16)."""
    if precision == "int8":
        return Int8Linear(linear.weight, linear.bias)
    return CastLinear(linear.weight, linear.bias, HALF_DTYPES[precision])


class LinearSwap:
    """Stand-ins in `precision` for every `nn.Linear` under `module`, swapped in while `swapped()` runs;
    built on first use (fp32: nothing to swap)."""

    def __init__(self, module: torch.nn.Module, precision: str):
        self.module = module
        self.precision = precision
        self._stand_ins: dict[str, torch.nn.Module] | None = None

    def _built(self) -> dict[str, torch.nn.Module]:
        if self._stand_ins is None:
            self._stand_ins = {
                name: reduced(child, self.precision)
                for name, child in self.module.named_modules()
                if type(child) is torch.nn.Linear
            }
        return self._stand_ins

    @contextlib.contextmanager
    def swapped(self):
        if self.precision == "fp32":
            yield
            return
        originals = {}
        try:
            for name, stand_in in self._built().items():
                parent, _, attr = name.rpartition(".")
                owner = self.module.get_submodule(parent)
                originals[name] = (owner, attr, getattr(owner, attr))
                setattr(owner, attr, stand_in)
            yield
        finally:
            for owner, attr, original in originals.values():
                setattr(owner, attr, original)

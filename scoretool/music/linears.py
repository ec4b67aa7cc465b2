"""Reduced-precision stand-ins for MusicGen's decoder linears: int8 on the CPU (`int8.Int8Linear`), bf16/fp16 casts.

`swapped(module, precision)` stands these in for a module's `nn.Linear` layers while transformers'
own code runs (the audio prompt's prefill, the `generate` fallback): the fast loop and generate then
run the same precision.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ..int8 import Int8Linear

HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
        return Int8Linear.quantize(linear.weight, linear.bias, on_kernel=True)  # as the fast loop's
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

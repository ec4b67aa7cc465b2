"""Fused replacements for parts of BLIP's vision encoder, for the lower-precision paths.

Attention: transformers' `BlipAttention` computes attention eagerly: the 577 x 577 score matrix of
every head is written out, scaled, softmaxed and read back. Profiled in int8 on a 2-core CPU
(blip-base, 8 images), that is about 40% of the vision encoder's time, once its Linear layers are
quantized. PyTorch's `scaled_dot_product_attention` computes the same thing fused, without the matrix.
In int8, where the CPU has AVX-512 BF16, `int8_kernel.attention` does it with bf16 products (fp32
sums and softmax): 2x SDPA's fp32 on the EPYC, about as near fp32 as BLIP in bf16.

MLP (int8 only): `BlipMLP` runs fc1, then GELU over the 9 x 577 x 3072 activations it wrote, then
fc2. On the int8 kernel (`int8_kernel`) fc1 applies the GELU to each output as it stores it: one pass
over those activations fewer (~0.2 s of 9 frames' captions on a 2-core CPU).

The fp32 path keeps transformers' own modules (it is the reference). Each swap is checked against the
original on a small input before it is kept; a transformers whose modules no longer look as
expected keeps its own, logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from .. import int8_kernel
from ..files import first_line
from ..int8 import Int8Linear

log = logging.getLogger("scoretool")


class FusedAttention(nn.Module):
    """`BlipAttention` (no mask, as BLIP's vision encoder has none) through SDPA, on the same weights;
    `bf16_kernel`: through `int8_kernel.attention` where its heads are 64 wide (blip-base's and
    blip-large's; fp32 activations)."""

    def __init__(self, eager: nn.Module, bf16_kernel: bool = False):
        super().__init__()
        self.qkv, self.projection = eager.qkv, eager.projection
        self.num_heads, self.scale = eager.num_heads, eager.scale
        self.bf16_kernel = bf16_kernel and self.projection.in_features == 64 * self.num_heads

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> tuple[torch.Tensor, None]:
        batch, tokens, width = hidden_states.shape
        if self.bf16_kernel:
            return self.projection(int8_kernel.attention(self.qkv(hidden_states), self.num_heads, self.scale)), None
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, width // self.num_heads).permute(2, 0, 3, 1, 4)
        context = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        return self.projection(context.transpose(1, 2).reshape(batch, tokens, width)), None


class FusedMLP(nn.Module):
    """fc2(GELU(fc1(x))) with the GELU in fc1's pass (`Int8Linear.gelu`), on the same int8 layers."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        if not (isinstance(mlp.fc1, Int8Linear) and isinstance(mlp.fc2, Int8Linear)):
            raise TypeError(f"the MLP's layers are {type(mlp.fc1).__name__}, not int8")
        self.fc1, self.fc2 = mlp.fc1, mlp.fc2

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1.gelu(hidden_states))


def fuse_vision_attention(vision_model: nn.Module, bf16_kernel: bool = False) -> bool:
    """Swap each encoder layer's attention for `FusedAttention` (`bf16_kernel`: see there), in place,
    if it computes the same on a small input. Returns whether it did."""
    dtype = next(vision_model.parameters()).dtype
    tolerance = 2e-2 if bf16_kernel or dtype in (torch.float16, torch.bfloat16) else 1e-4
    same = lambda eager, fused: _same(lambda x: eager(hidden_states=x)[0], lambda x: fused(x)[0], fused.projection.in_features, dtype, tolerance)  # noqa: E731
    fuse = lambda eager: FusedAttention(eager, bf16_kernel)  # noqa: E731
    return _swap(vision_model.encoder.layers, "self_attn", fuse, same, "vision attention")


def fuse_vision_mlp(vision_model: nn.Module) -> bool:
    """Swap each encoder layer's int8 MLP for `FusedMLP`, in place, where its fc1 runs on the kernel
    (elsewhere `Int8Linear.gelu` is the same two passes) and it computes the same on a small input.
    Returns whether it did."""
    layers = vision_model.encoder.layers
    if not (isinstance(layers[0].mlp.fc1, Int8Linear) and layers[0].mlp.fc1.on_kernel):
        return False
    # the same int8 layers: only the GELU's last bits (and a rounding they flip) differ
    same = lambda eager, fused: _same(eager, fused, fused.fc1.in_features, torch.float32, 1e-3)  # noqa: E731
    return _swap(layers, "mlp", FusedMLP, same, "vision MLP")


def _swap(layers, name: str, fuse: Callable[[nn.Module], nn.Module], same: Callable, what: str) -> bool:
    """Each layer's `name` module replaced by `fuse(module)`, if the first computes `same` as before."""
    try:
        fused = [fuse(getattr(layer, name)) for layer in layers]
        same(getattr(layers[0], name), fused[0])
    except Exception as exc:  # a module that changed shape shows as any error class
        log.warning("caption model: keeping transformers' own %s (%s)", what, first_line(exc))
        return False
    for layer, module in zip(layers, fused):
        setattr(layer, name, module)
    return True


def _same(want_of: Callable, got_of: Callable, width: int, dtype: torch.dtype, tolerance: float) -> None:
    x = torch.randn((2, 17, width), generator=torch.Generator().manual_seed(0)).to(dtype)
    with torch.inference_mode():
        want, got = want_of(x).float(), got_of(x).float()
    error = float((want - got).norm() / want.norm().clamp_min(1e-12))
    if error > tolerance:
        raise ValueError(f"the fused module differs from the original by {error:.1e}")

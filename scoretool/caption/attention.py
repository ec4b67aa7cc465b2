"""Fused attention for BLIP's vision encoder, for the lower-precision paths.

transformers' `BlipAttention` computes attention eagerly: the 577 x 577 score matrix of every head is
written out, scaled, softmaxed and read back. Profiled in int8 on a 2-core CPU (blip-base, 8 images),
that is about 40% of the vision encoder's time, once its Linear layers are quantized. PyTorch's
`scaled_dot_product_attention` computes the same thing fused, without the matrix.

The fp32 path keeps transformers' own attention (it is the reference). The swap is checked against
the original on a small input before it is kept; a transformers whose attention no longer looks as
expected keeps its own, logged.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..files import first_line

log = logging.getLogger("scoretool")


class FusedAttention(nn.Module):
    """`BlipAttention` (no mask, as BLIP's vision encoder has none) through SDPA, on the same weights."""

    def __init__(self, eager: nn.Module):
        super().__init__()
        self.qkv, self.projection = eager.qkv, eager.projection
        self.num_heads, self.scale = eager.num_heads, eager.scale

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> tuple[torch.Tensor, None]:
        batch, tokens, width = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, width // self.num_heads).permute(2, 0, 3, 1, 4)
        context = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        return self.projection(context.transpose(1, 2).reshape(batch, tokens, width)), None


def fuse_vision_attention(vision_model: nn.Module) -> bool:
    """Swap each encoder layer's attention for `FusedAttention`, in place, if it computes the same on a
    small input. Returns whether it did."""
    layers = vision_model.encoder.layers
    try:
        fused = [FusedAttention(layer.self_attn) for layer in layers]
        _same(layers[0].self_attn, fused[0], next(vision_model.parameters()).dtype)
    except Exception as exc:  # an attention that changed shape shows as any error class
        log.warning("caption model: keeping transformers' own vision attention (%s)", first_line(exc))
        return False
    for layer, attention in zip(layers, fused):
        layer.self_attn = attention
    return True


def _same(eager: nn.Module, fused: FusedAttention, dtype: torch.dtype) -> None:
    width = fused.projection.in_features
    x = torch.randn((2, 17, width), generator=torch.Generator().manual_seed(0)).to(dtype)
    with torch.inference_mode():
        want, got = eager(hidden_states=x)[0].float(), fused(x)[0].float()
    error = float((want - got).norm() / want.norm().clamp_min(1e-12))
    if error > (2e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4):
        raise ValueError(f"fused attention differs from the original by {error:.1e}")

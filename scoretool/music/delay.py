"""MusicGen's delay pattern: codebook k of a frame is decoded k steps after codebook 0.

The fast loop (`scoretool.music.fast`) holds the delayed positions with `delay_table`; the test
helpers (`scoretool.testing`) use the same arithmetic for their length facts.
"""

from __future__ import annotations

import torch


def delay_pattern(codebooks: int, channels: int) -> list[int]:
    """Delay (in steps) of each codebook: k, or k // 2 for stereo's interleaved left/right codebooks."""
    return [k // 2 if channels == 2 else k for k in range(codebooks)]


def delay_table(
    batch: int, new_tokens: int, delays: list[int], channel_codebooks: int, start: int, length: int, prompt: torch.Tensor | None = None
) -> torch.Tensor:
    """(batch, codebooks, length) long: the token each decoder input position is held to, or -1 where the
    decoder's own choice goes.

    transformers' `build_delay_pattern_mask` with max_length = P + 1 + new_tokens for an audio prompt of
    P frames (`prompt`: (batch, codebooks, P) codes, or None): codebook k is the start/pad token at
    positions p <= delay_k and p > delay_k + max_length - channel_codebooks, and the prompt's frame
    p - delay_k - 1 at positions delay_k < p <= delay_k + P.
    """
    frames = prompt.shape[-1] if prompt is not None else 0
    max_length = frames + 1 + new_tokens
    p = torch.arange(length)[None, :]
    d = torch.tensor(delays)[:, None]
    real = (p > d) & (p <= d + max_length - channel_codebooks)
    table = torch.where(real, -1, start).expand(batch, -1, -1).clone()
    for k, delay in enumerate(delays):
        if frames:
            table[:, k, delay + 1 : delay + 1 + frames] = prompt[:, k].to(table.device)
    return table

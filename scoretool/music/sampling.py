"""Seeded, batch-independent sampling, shared by the fast loop and transformers' `generate`.

Item i's tokens are drawn with the Gumbel-max trick from item i's own noise (`SeededNoise`), so a clip
depends only on its prompt, length and seed, never on its batch-mates. Guidance, temperature, top-k and
the draw always run in fp32 on fp32 logits, whatever precision the decoder runs in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# Gumbel noise is drawn per item in blocks of this many steps; both sampling paths must use the same.
NOISE_CHUNK = 64


def gumbel_(u: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) noise -> standard Gumbel noise, in place (u = 0 gives -inf: never chosen)."""
    return u.log_().neg_().log_().neg_()


class SeededNoise:
    """Gumbel noise for per-item seeded sampling: item i's noise comes from its own generator.

    Noise for step s of item i is row s % NOISE_CHUNK of the (s // NOISE_CHUNK)-th block of shape
    (NOISE_CHUNK, codebooks, vocab) drawn from item i's generator. The blocks are the same whether they
    are drawn one at a time (`step`) or all up front (`block`), so the transformers path and the fast
    path, on the same device, draw the same tokens for the same seeds.
    """

    def __init__(self, seeds: list[int], codebooks: int, vocab: int, device):
        self.device = torch.device(device)
        self.seeds = [int(s) for s in seeds]
        self.shape = (NOISE_CHUNK, codebooks, vocab)
        self.generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        self._index = -1
        self._current: torch.Tensor | None = None

    def fresh(self) -> SeededNoise:
        """The same noise from its first step (for a retry)."""
        return SeededNoise(self.seeds, self.shape[1], self.shape[2], self.device)

    def _next_chunk(self) -> torch.Tensor:
        """The next (NOISE_CHUNK, batch, codebooks, vocab) block."""
        u = torch.stack(
            [torch.rand(self.shape, generator=g, device=self.device, dtype=torch.float32) for g in self.generators], dim=1
        )
        return gumbel_(u)

    def step(self, s: int) -> torch.Tensor:
        """Noise for step `s` (steps must be asked for in order), shape (batch, codebooks, vocab)."""
        chunk = s // NOISE_CHUNK
        while self._index < chunk:
            self._current = self._next_chunk()
            self._index += 1
        if self._index != chunk:
            raise RuntimeError("SeededNoise.step must be called with non-decreasing steps")
        return self._current[s % NOISE_CHUNK]

    def block(self, steps: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Noise for steps 0..steps-1 at once, shape (steps, batch, codebooks, vocab); fills `out` if given."""
        if self._index != -1:
            raise RuntimeError("SeededNoise.block must be called on fresh noise")
        n_chunks = math.ceil(steps / NOISE_CHUNK)
        if out is None:
            out = torch.empty((steps, len(self.generators), *self.shape[1:]), device=self.device, dtype=torch.float32)
        for c in range(n_chunks):
            lo, hi = c * NOISE_CHUNK, min((c + 1) * NOISE_CHUNK, steps)
            out[lo:hi].copy_(self._next_chunk()[: hi - lo])
            self._index += 1
        return out


def guide(cond: torch.Tensor, uncond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance, written as transformers' ClassifierFreeGuidanceLogitsProcessor writes it."""
    return uncond + (cond - uncond) * guidance_scale


def choose(logits: torch.Tensor, temperature: float, top_k: int, noise: torch.Tensor | None) -> torch.Tensor:
    """Token ids from guided fp32 logits (..., vocab): argmax when `noise` is None, else Gumbel-max sampling.

    argmax(top_k_mask(logits / T) + Gumbel noise) is a draw from softmax(top_k_mask(logits / T)).
    """
    if noise is None:
        return logits.argmax(dim=-1)
    logits = logits / max(float(temperature), 1e-5)
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return (logits + noise).argmax(dim=-1)


class SeededSampler:
    """transformers logits processor: guidance and sampling done per batch item, each from that item's
    own seeded noise.

    transformers samples the whole batch from one global RNG, so a scene's music would depend on
    which other scenes shared its batch. This processor runs before MusicGen's own guidance step,
    on the doubled (conditional + unconditional) scores: it applies the guidance itself, draws each
    item's tokens (temperature, top-k, Gumbel-max with the item's own `SeededNoise`, the scheme the
    fast path uses), and returns the same finite one-hot scores for both halves, so the guidance
    step after it changes nothing and greedy decoding picks the drawn token. A clip then depends
    only on its prompt, duration and seed.
    """

    def __init__(self, seeds: list[int], rows_per_item: int, guidance_scale: float, temperature: float, top_k: int, device):
        self.seeds = [int(s) for s in seeds]
        self.rows_per_item = rows_per_item
        self.guidance_scale = guidance_scale
        self.temperature = temperature
        self.top_k = top_k
        self.device = device
        self.noise = None
        self.step = 0

    def __call__(self, input_ids, scores):
        logits = scores.float()
        items, rows = len(self.seeds), self.rows_per_item
        guided = logits.shape[0] == 2 * rows * items
        if guided:
            cond, uncond = logits.chunk(2)
            logits = guide(cond, uncond, self.guidance_scale)
        if self.noise is None:
            self.noise = SeededNoise(self.seeds, rows, logits.shape[-1], logits.device)
        noise = self.noise.step(self.step)  # (items, rows, vocab)
        self.step += 1
        chosen = choose(logits.view(items, rows, -1), self.temperature, self.top_k, noise).view(-1, 1)
        # Finite, so that the guidance step's (cond - uncond) stays 0 instead of inf - inf = nan.
        one_hot = torch.full_like(logits, -1e4).scatter_(1, chosen, 0.0)
        return torch.cat([one_hot, one_hot]).to(scores.dtype) if guided else one_hot.to(scores.dtype)


class StepCallback:
    """A transformers stopping criterion that never stops: it only reports each decoding step."""

    def __init__(self, on_step: Callable[[int], None]):
        self.on_step = on_step

    def __call__(self, input_ids, scores, **kwargs):
        self.on_step(1)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class FiniteCheck:
    """A transformers logits processor that changes nothing: it notes whether any score was inf or nan
    (reduced-precision overflow), which the caller then treats as a failure of that precision."""

    def __init__(self):
        self.bad = False

    def __call__(self, input_ids, scores):
        if not self.bad and not bool(torch.isfinite(scores).all()):
            self.bad = True
        return scores

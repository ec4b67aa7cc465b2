"""MusicGen through transformers' `MusicgenForConditionalGeneration`.

Facts the length arithmetic rests on: EnCodec runs at `frame_rate` frames a second (50 for the
32 kHz models), each frame decodes to `hop_length` samples, and with the delay pattern of K
codebooks, N frames need N + K - 1 new tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .. import models

MAX_BATCH = 8


class SeededSampler:
    """Guidance and sampling done per batch item, each from that item's own seeded generator.

    transformers samples the whole batch from one global RNG, so a scene's music would depend on
    which other scenes shared its batch. This processor runs before MusicGen's own guidance step,
    on the doubled (conditional + unconditional) scores: it applies the guidance itself, draws each
    item's tokens (temperature, top-k, its own generator), and returns the same finite one-hot
    scores for both halves, so the guidance step after it changes nothing and greedy decoding
    picks the drawn token. A clip then depends only on its prompt, duration and seed.
    """

    def __init__(self, seeds: list[int], rows_per_item: int, guidance_scale: float, temperature: float, top_k: int, device):
        import torch

        self.torch = torch
        self.rows_per_item = rows_per_item
        self.guidance_scale = guidance_scale
        self.temperature = max(temperature, 1e-5)
        self.top_k = top_k
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):
        torch = self.torch
        logits = scores.float()
        guided = logits.shape[0] == 2 * self.rows_per_item * len(self.generators)
        if guided:
            cond, uncond = logits.chunk(2)
            logits = uncond + (cond - uncond) * self.guidance_scale
        logits = logits / self.temperature
        if 0 < self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        rows = self.rows_per_item
        chosen = torch.cat(
            [torch.multinomial(probs[i * rows : (i + 1) * rows], 1, generator=g) for i, g in enumerate(self.generators)]
        )
        # Finite, so that the guidance step's (cond - uncond) stays 0 instead of inf - inf = nan.
        one_hot = torch.full_like(logits, -1e4).scatter_(1, chosen, 0.0)
        return torch.cat([one_hot, one_hot]).to(scores.dtype) if guided else one_hot.to(scores.dtype)


class StepCallback:
    """A stopping criterion that never stops: it only reports each decoding step."""

    def __init__(self, on_step: Callable[[int], None]):
        self.on_step = on_step

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.on_step(1)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class MusicGenGenerator:
    name = "musicgen"

    def __init__(self, model: str, device: str, guidance_scale: float = 3.0, temperature: float = 1.0, top_k: int = 250):
        import torch
        from transformers import AutoProcessor, MusicgenForConditionalGeneration

        role = "music model (--music-model)"
        self.model_id = models.resolve(model)
        self.processor = models.load(model, role, AutoProcessor.from_pretrained)
        self.model = models.load(model, role, MusicgenForConditionalGeneration.from_pretrained)
        self.model.to(device).eval()
        self.device = device
        self.guidance_scale = guidance_scale
        self.temperature = temperature
        self.top_k = top_k
        codec = self.model.config.audio_encoder
        self.sample_rate = int(codec.sampling_rate)
        self.frame_rate = self.sample_rate / codec.hop_length
        self.num_codebooks = self.model.decoder.num_codebooks
        self._torch = torch

    def new_tokens(self, duration: float) -> int:
        """Tokens to generate for at least `duration` seconds of audio (delay pattern included)."""
        frames = math.ceil(duration * self.frame_rate - 1e-9)
        return frames + self.num_codebooks - 1

    def steps(self, durations: list[float]) -> int:
        """Decoding steps `generate` will take for these durations (for progress bars)."""
        order = sorted(durations, reverse=True)
        return sum(self.new_tokens(order[i]) for i in range(0, len(order), MAX_BATCH))

    def generate(self, prompts, durations, seeds, on_step=None) -> list[np.ndarray]:
        if not (len(prompts) == len(durations) == len(seeds)):
            raise ValueError("prompts, durations and seeds must have the same length")
        # Longest first, so each batch generates to a length close to all of its members'.
        order = sorted(range(len(prompts)), key=lambda i: -durations[i])
        clips: dict[int, np.ndarray] = {}
        for b in range(0, len(order), MAX_BATCH):
            batch = order[b : b + MAX_BATCH]
            audio = self._generate_batch([prompts[i] for i in batch], durations[batch[0]], [seeds[i] for i in batch], on_step)
            for row, i in enumerate(batch):
                clips[i] = audio[row, :, : round(durations[i] * self.sample_rate)].T.copy()
        return [clips[i] for i in range(len(prompts))]

    def _generate_batch(self, prompts, longest, seeds, on_step) -> np.ndarray:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        torch = self._torch
        inputs = self.processor(text=prompts, padding=True, return_tensors="pt").to(self.device)
        rows = self.num_codebooks  # scores have one row per item and codebook (twice, with guidance)
        sampler = SeededSampler(seeds, rows, self.guidance_scale, self.temperature, self.top_k, self.device)
        stopping = StoppingCriteriaList([StepCallback(on_step)] if on_step else [])
        with torch.inference_mode():
            audio = self.model.generate(
                **inputs,
                max_new_tokens=self.new_tokens(longest),
                min_new_tokens=self.new_tokens(longest),
                do_sample=False,  # the sampler above samples; greedy then takes its choice
                guidance_scale=self.guidance_scale,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=stopping,
            )
        return audio.float().cpu().numpy()

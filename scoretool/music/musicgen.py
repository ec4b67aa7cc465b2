"""MusicGen through transformers' `MusicgenForConditionalGeneration`.

Facts the length arithmetic rests on: EnCodec runs at `frame_rate` frames a second (50 for the
32 kHz models), each frame decodes to `hop_length` samples, and with the delay pattern of K
codebooks (K per channel for stereo models), N frames need N + K - 1 new tokens.

Two decoding paths give the same tokens for the same prompts and seeds (on one device):
`scoretool.music.fast.FastMusicgen` (static KV cache, CUDA graphs on a GPU; the default where it
applies) and transformers' `generate` with `SeededSampler` (the fallback, with the reason logged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import models
from ..specs import ModelSpec, Sampling

WINDOW = 30.0  # seconds: MusicGen's trained context
CONTEXT = 10.0  # seconds of the previous window a new window hears (20 s of new music per window)
SEAM = 0.05  # seconds of crossfade where a continuation joins what came before
MAX_BATCH = 8
# A call's self-attention KV cache holds every row to the call's longest clip: 8 windows of 30 s of
# musicgen-small would take 2.4 GB in bf16 (4.7 GB in fp32). Calls are kept under this many bytes.
KV_BUDGET = 768 * 2**20
# EnCodec's decoder looks ahead a few frames (about 75 ms): every clip is generated this much past
# its end and trimmed, so its audio is the same whether a longer clip shared its batch or not.
LOOKAHEAD = 0.16


@dataclass(frozen=True)
class StepCost:
    """What a decoding step of a call costs, relative to a step of one clip at a short cache:
    `per_clip` for each clip past the first (matmuls read the weights once for the whole batch),
    `per_position` for each clip and cache position (attention reads every clip's keys and values).
    `leaves_early`: a clip leaves the call once it has its own steps (the CPU's fast loop outside
    fp32, see `Decoding.run`), so it rides along only for as long as it would have run alone."""

    per_clip: float = 0.0
    per_position: float = 0.0
    leaves_early: bool = False

    def joins(self, longest: int, steps: int) -> bool:
        """Whether a clip of `steps` steps costs less riding along in a call of `longest` steps than alone."""
        ride = steps if self.leaves_early else longest
        riding = ride * self.per_clip + self.per_position * ride**2 / 2
        alone = steps + self.per_position * steps**2 / 2
        return riding <= alone


# Measured with benchmarks/precision_speed.py (musicgen-small shape, one thread, an AVX2 EPYC): a step
# of one clip at a short cache 186 ms in fp32, 47 ms in int8; each further clip +25 / +8 ms; attention
# +0.045 ms per clip and cache position in both (the cache is fp32). bf16 from the figures on
# an AVX-512 BF16 CPU (94 ms, +12 ms a clip; a bf16 cache reads half the bytes).
CPU_STEP_COST = {
    "fp32": StepCost(per_clip=0.134, per_position=0.00024),
    "bf16": StepCost(per_clip=0.13, per_position=0.00024, leaves_early=True),
    "int8": StepCost(per_clip=0.18, per_position=0.00097, leaves_early=True),
}
GPU_STEP_COST = StepCost()  # launch-bound: a longer batch costs about what one clip does


def buckets(lengths: list[int], max_batch: int, cost: StepCost, max_positions: int | None = None) -> list[list[int]]:
    """Group clip indices into `generate` calls, longest first: each call decodes as many steps as its
    longest member, and a clip joins the call only where that costs less than a call of its own, and
    where the call's clips times its longest one's steps stay within `max_positions` (its KV cache)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        room = groups and len(groups[-1]) < max_batch
        room = room and (max_positions is None or (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= max_positions)
        if room and cost.joins(lengths[groups[-1][0]], lengths[i]):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def hold_in_int8(model, to_int8) -> None:
    """int8 for the decoder (every step) and the T5 text encoder (once a call: in fp32 its weights would
    be a fifth of the process), its `wo` too (transformers keeps that in fp32 against fp16 overflow;
    an int8 layer's activations are fp32). EnCodec (convolutions) stays fp32. The decoder's layers, which
    decoding runs a few rows at a time, run on `int8_kernel`'s few-row kernel where it runs here."""
    to_int8(model.decoder, "decoder", on_kernel=True)
    to_int8(model.text_encoder, "text_encoder")


class MusicGenGenerator:
    """MusicGen for the pipeline (`music.MusicGenerator`). `spec` is the model as it really runs: its
    precision after any fallback (see `decoding`). `use_fast`: None = the fast decode loop where it applies
    (env SCORETOOL_FAST_MUSICGEN=0/1 overrides), True = ask for it (a fallback is then a warning), False =
    always transformers' `generate`. `do_sample=False` decodes greedily (for tests: both paths then give
    transformers' greedy tokens). Sampling settings come with each call (`Sampling`), so one loaded model
    serves any guidance, temperature and top-k.
    """

    name = "musicgen"

    def __init__(self, spec: ModelSpec, *, use_fast: bool | None = None, do_sample: bool = True, fast_options: dict | None = None):
        from transformers import AutoProcessor, MusicgenForConditionalGeneration

        from .codec import fold_weight_norm
        from .decoding import Decoding

        from ..int8_store import in_place

        role = "music model (--music-model)"
        self.model_id = models.resolve(spec.model)
        self.processor = models.load(spec.model, role, AutoProcessor.from_pretrained)

        def load_model():
            model = models.load(spec.model, role, MusicgenForConditionalGeneration.from_pretrained).to(spec.device).eval()
            fold_weight_norm(model.audio_encoder)
            return model

        model = load_model()
        self.device = spec.device
        codec = model.config.audio_encoder
        self.sample_rate = int(codec.sampling_rate)
        self.frame_rate = self.sample_rate / codec.hop_length
        K = model.decoder.num_codebooks
        channels = getattr(model.config.decoder, "audio_channels", 1) or 1
        # The delay pattern delays each channel's codebooks 0..K-1 steps (stereo interleaves two channels).
        self.delay_codebooks = K // channels if K % channels == 0 else K
        # int8 holds the decoder's linears in int8 only (their fp32 weights never loaded into memory).
        to_int8 = in_place(models.local_folder(spec.model))
        self.decoding = Decoding(
            model, spec.device, spec.precision, use_fast=use_fast, do_sample=do_sample, fast_options=fast_options,
            reload=load_model, to_int8=lambda m: hold_in_int8(m, to_int8),
        )  # fmt: skip
        self._model_name = spec.model

    @property
    def model(self):
        """The transformers model decoding runs (a step down from int8 reloads it)."""
        return self.decoding.model

    @property
    def spec(self) -> ModelSpec:
        """The model as it runs now: the precision after any fallback."""
        return ModelSpec(self._model_name, self.device, self.decoding.precision)

    @property
    def step_cost(self) -> StepCost:
        """What batching costs on this device in this precision (see `buckets`)."""
        if str(self.device).startswith("cuda"):
            return GPU_STEP_COST
        return CPU_STEP_COST.get(self.decoding.precision, CPU_STEP_COST["fp32"])

    def _calls(self, first: list[float]) -> list[list[int]]:
        """The first windows of these clips, grouped into calls."""
        lengths = [self.new_tokens(d + LOOKAHEAD) for d in first]
        return buckets(lengths, MAX_BATCH, self.step_cost, max(1, KV_BUDGET // self.kv_bytes_per_position))

    @property
    def kv_bytes_per_position(self) -> int:
        """Self-attention KV cache bytes a clip takes per position (keys and values of every layer, for
        guidance's two rows) in the cache the decoding runs on (generate's: fp32 at most)."""
        cfg = self.model.config.decoder
        itemsize = self.fast.decoder.cache_dtype.itemsize if self.fast is not None else 4
        return 2 * cfg.num_hidden_layers * 2 * cfg.hidden_size * itemsize

    @property
    def fast(self):
        """The fast decode loop, or None where transformers' generate runs (`fallback_reason` says why)."""
        return self.decoding.fast

    @property
    def fallback_reason(self) -> str | None:
        return self.decoding.fallback_reason

    # ------------------------------------------------------------------ lengths

    def new_tokens(self, duration: float) -> int:
        """Tokens to generate for at least `duration` seconds of audio (delay pattern included).

        At least K - 1 frames are asked for: with fewer, transformers would drop the delay pattern.
        """
        frames = max(math.ceil(duration * self.frame_rate - 1e-9), self.delay_codebooks - 1, 1)
        return frames + self.delay_codebooks - 1

    def steps(self, durations: list[float]) -> int:
        """Decoding steps `generate` will take for these durations (for progress bars)."""
        first = [min(d, WINDOW) for d in durations]
        steps = sum(self.new_tokens(first[b[0]] + LOOKAHEAD) for b in self._calls(first))
        for d in durations:  # windows past the first, one clip at a time
            left = d - WINDOW
            while left > 1e-9:
                steps += self.new_tokens(min(WINDOW - CONTEXT, left))
                left -= WINDOW - CONTEXT
        return steps

    # ------------------------------------------------------------------ generation

    def generate(self, prompts, durations, seeds, sampling: Sampling, on_step=None) -> list[np.ndarray]:
        if not (len(prompts) == len(durations) == len(seeds)):
            raise ValueError("prompts, durations and seeds must have the same length")
        # Longest first, so each batch generates to a length close to all of its members'. A clip
        # longer than MusicGen's window starts as one window here and is extended below.
        first = [min(d, WINDOW) for d in durations]
        clips: dict[int, np.ndarray] = {}
        for batch in self._calls(first):
            own = [self.new_tokens(first[i] + LOOKAHEAD) for i in batch]
            audio = self._generate_batch([prompts[i] for i in batch], own, [seeds[i] for i in batch], sampling, on_step)
            for row, i in enumerate(batch):
                clips[i] = audio[row, :, : round(first[i] * self.sample_rate)].T.copy()
        for i, duration in enumerate(durations):
            if duration > WINDOW:
                clips[i] = self._extend(prompts[i], clips[i], duration, seeds[i], sampling, on_step)
        return [clips[i] for i in range(len(prompts))]

    def windows(self, duration: float) -> int:
        """How many `generate` windows a clip of `duration` seconds takes."""
        return 1 + max(0, math.ceil((duration - WINDOW - 1e-9) / (WINDOW - CONTEXT)))

    def _extend(self, prompt: str, audio: np.ndarray, duration: float, seed: int, sampling: Sampling, on_step) -> np.ndarray:
        """Grow a clip past the window: each new window is conditioned on the last CONTEXT seconds
        (as audiocraft's `extend_stride` does), so a long scene is one piece, not loops."""
        target = round(duration * self.sample_rate)
        window = 1
        while len(audio) < target:
            need = min(WINDOW - CONTEXT, (target - len(audio)) / self.sample_rate)
            audio = self.continue_from(prompt, audio, need, seed + 1000 * window, sampling, on_step)
            window += 1
        return audio[:target]

    def continue_from(
        self, prompt: str, audio: np.ndarray, duration: float, seed: int, sampling: Sampling, on_step=None
    ) -> np.ndarray:
        """`audio` followed by `duration` more seconds that continue it, steered by `prompt`.

        MusicGen hears the last CONTEXT seconds (EnCodec codes as the decoder's prefix) and goes on
        from there (the fast loop and `generate` alike).
        """
        hop = round(self.sample_rate / self.frame_rate)
        context_len = min(len(audio), round(CONTEXT * self.sample_rate)) // hop * hop
        context = audio[len(audio) - context_len :]
        inputs = self.processor(
            text=[prompt], audio=[context[:, 0]], sampling_rate=self.sample_rate, padding=True, return_tensors="pt"
        ).to(self.device)
        out = self._run(inputs, self.new_tokens(duration), [seed], sampling, on_step)[0].T
        # The codec's rendering of the context leads the output: join on it with a short crossfade.
        seam = min(round(SEAM * self.sample_rate), context_len)
        fade = np.linspace(0.0, 1.0, seam, dtype=np.float32)[:, None]
        joined = audio[len(audio) - seam :] * (1 - fade) + out[context_len - seam : context_len] * fade
        new = out[context_len : context_len + round(duration * self.sample_rate)]
        return np.concatenate([audio[: len(audio) - seam], joined, new]).astype(np.float32)

    def _generate_batch(self, prompts, lengths: list[int], seeds, sampling: Sampling, on_step) -> np.ndarray:
        """Audio for each prompt, at least `lengths[i]` new tokens long (longest first)."""
        inputs = self.processor(text=prompts, padding=True, return_tensors="pt").to(self.device)
        return self._run(inputs, max(lengths), seeds, sampling, on_step, lengths)

    def _run(self, inputs, new_tokens, seeds, sampling: Sampling, on_step, lengths=None) -> np.ndarray:
        return self.decoding.run(inputs, new_tokens, seeds, sampling, on_step, lengths)

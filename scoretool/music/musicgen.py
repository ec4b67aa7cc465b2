"""MusicGen through transformers' `MusicgenForConditionalGeneration`.

Facts the length arithmetic rests on: EnCodec runs at `frame_rate` frames a second (50 for the
32 kHz models), each frame decodes to `hop_length` samples, and with the delay pattern of K
codebooks (K per channel for stereo models), N frames need N + K - 1 new tokens.

Two decoding paths give the same tokens for the same prompts and seeds (on one device):
`scoretool.music.fast.FastMusicgen` (static KV cache, CUDA graphs on a GPU; the default where it
applies) and transformers' `generate` with `SeededSampler` (the fallback, with the reason logged).
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np

from .. import models
from ..specs import ModelSpec, Sampling

WINDOW = 30.0  # seconds: MusicGen's trained context
CONTEXT = 10.0  # seconds of the previous window a new window hears (20 s of new music per window)
SEAM = 0.05  # seconds of crossfade where a continuation joins what came before
MAX_BATCH = 8
# EnCodec's decoder looks ahead a few frames (about 75 ms): every clip is generated this much past
# its end and trimmed, so its audio is the same whether a longer clip shared its batch or not.
LOOKAHEAD = 0.16
CPU_MIN_FILL = 0.6  # on a CPU, a scene joins a batch only if it is at least this fraction of its longest


def buckets(durations: list[float], max_batch: int, min_fill: float) -> list[list[int]]:
    """Group clip indices into `generate` calls, longest first: each call generates to its longest
    member, so a member shorter than `min_fill` of that starts a call of its own."""
    groups: list[list[int]] = []
    for i in sorted(range(len(durations)), key=lambda i: -durations[i]):
        if groups and len(groups[-1]) < max_batch and durations[i] >= min_fill * durations[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


log = logging.getLogger("scoretool")


def _env_use_fast() -> bool | None:
    value = os.environ.get("SCORETOOL_FAST_MUSICGEN", "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    return None


class MusicGenGenerator:
    """`use_fast`: None = the fast decode loop where it applies (env SCORETOOL_FAST_MUSICGEN=0/1 overrides),
    True = ask for it (a fallback is then a warning), False = always transformers' `generate`.
    `do_sample=False` decodes greedily (for tests: both paths then give transformers' greedy tokens).
    `spec.precision` sets the fast path's decoder dtype (fp16, bf16, fp32); sampling settings come with
    each call (`Sampling`), so one loaded model serves any guidance, temperature and top-k.
    After construction, `fallback_reason` says why `generate` is used, or is None.
    """

    name = "musicgen"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        use_fast: bool | None = None,
        do_sample: bool = True,
        fast_options: dict | None = None,
    ):
        import torch
        from transformers import AutoProcessor, MusicgenForConditionalGeneration

        role = "music model (--music-model)"
        device = spec.device
        self.spec = spec
        self.model_id = models.resolve(spec.model)
        self.processor = models.load(spec.model, role, AutoProcessor.from_pretrained)
        self.model = models.load(spec.model, role, MusicgenForConditionalGeneration.from_pretrained)
        self.model.to(device).eval()
        self.device = device
        self.do_sample = do_sample
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}.get(spec.precision)
        codec = self.model.config.audio_encoder
        self.sample_rate = int(codec.sampling_rate)
        self.frame_rate = self.sample_rate / codec.hop_length
        self.num_codebooks = self.model.decoder.num_codebooks
        channels = getattr(self.model.config.decoder, "audio_channels", 1) or 1
        # The delay pattern delays each channel's codebooks 0..K-1 steps (stereo interleaves two channels).
        self.delay_codebooks = self.num_codebooks // channels if self.num_codebooks % channels == 0 else self.num_codebooks
        self._torch = torch
        # On a GPU a longer batch costs about what one clip does (the loop is launch-bound), so any
        # scenes share a call; on a CPU the cost grows with batch x length, so only similar lengths do.
        self.min_fill = 0.0 if str(device).startswith("cuda") else CPU_MIN_FILL
        self.fast = None
        self.fallback_reason: str | None = None
        env = _env_use_fast()
        self.use_fast = use_fast if use_fast is not None else env
        if self.use_fast is False:
            self.fallback_reason = "fast path turned off" + (" (SCORETOOL_FAST_MUSICGEN)" if use_fast is None else "")
            log.debug("MusicGen: using transformers' generate: %s", self.fallback_reason)
        else:
            self._build_fast(dtype, fast_options or {})

    # ------------------------------------------------------------------ fast path management

    def _build_fast(self, dtype, options) -> None:
        from .fast import FastMusicgen
        from .support import Unsupported

        try:
            self.fast = FastMusicgen(self.model, self.device, dtype=dtype, **options)
        except Unsupported as exc:
            self._fall_back(str(exc))
        except Exception as exc:  # a fast-path bug must not stop the pipeline: say so, use generate
            self._fall_back(f"fast path could not be set up ({type(exc).__name__}: {exc})")

    def _fall_back(self, reason: str, for_batch_only: bool = False) -> None:
        level = logging.WARNING if (self.use_fast or self.fast is not None) else logging.INFO
        scope = "this batch" if for_batch_only else "from now on"
        log.log(level, "MusicGen: using transformers' generate (%s): %s", scope, reason)
        if not for_batch_only:
            self.fast = None
            self.fallback_reason = reason

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
        steps = sum(self.new_tokens(first[b[0]] + LOOKAHEAD) for b in buckets(first, MAX_BATCH, self.min_fill))
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
        for batch in buckets(first, MAX_BATCH, self.min_fill):
            longest = first[batch[0]] + LOOKAHEAD
            audio = self._generate_batch([prompts[i] for i in batch], longest, [seeds[i] for i in batch], sampling, on_step)
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

    def _generate_batch(self, prompts, longest, seeds, sampling: Sampling, on_step) -> np.ndarray:
        inputs = self.processor(text=prompts, padding=True, return_tensors="pt").to(self.device)
        return self._run(inputs, self.new_tokens(longest), seeds, sampling, on_step)

    def _run(self, inputs, new_tokens, seeds, sampling: Sampling, on_step) -> np.ndarray:
        """Audio (batch, channels, samples) for processor inputs (text, and an audio prompt if any):
        the fast loop where it applies, else transformers' generate."""
        if self.fast is not None:
            audio = self._fast_batch(inputs, new_tokens, seeds, sampling, on_step)
            if audio is not None:
                return audio
        return self._hf_batch(inputs, new_tokens, seeds, sampling, on_step)

    def _fast_batch(self, inputs, new_tokens, seeds, sampling: Sampling, on_step):
        from .fast import FastMusicgen
        from .support import NonFiniteLogits, Unsupported

        done = [0]

        def count(n):  # so that a retry doesn't report the same steps twice
            done[0] += n
            if on_step and done[0] <= new_tokens:
                on_step(n)

        options = dict(
            guidance_scale=sampling.guidance_scale, do_sample=self.do_sample, temperature=sampling.temperature,
            top_k=sampling.top_k, seeds=seeds, on_step=count,
        )  # fmt: skip
        mask = inputs.get("attention_mask")
        options.update(input_values=inputs.get("input_values"), padding_mask=inputs.get("padding_mask"))
        try:
            try:
                audio = self.fast.generate(inputs["input_ids"], mask, new_tokens, **options)
            except NonFiniteLogits as exc:
                if self.fast.dtype == self._torch.float32:
                    raise
                log.warning("MusicGen fast path: %s; switching the decoder to float32", exc)
                self.fast = FastMusicgen(self.model, self.device, dtype=self._torch.float32)
                done[0] = 0
                audio = self.fast.generate(inputs["input_ids"], mask, new_tokens, **options)
        except Unsupported as exc:
            self._fall_back(str(exc), for_batch_only=True)
            return None
        except Exception as exc:
            self._fall_back(f"fast path failed ({type(exc).__name__}: {exc})")
            return None
        return audio.cpu().numpy()

    def _hf_batch(self, inputs, new_tokens, seeds, sampling: Sampling, on_step) -> np.ndarray:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from .sampling import SeededSampler, StepCallback

        torch = self._torch
        rows = self.num_codebooks  # scores have one row per item and codebook (twice, with guidance)
        processors = []
        if self.do_sample:
            processors.append(
                SeededSampler(seeds, rows, sampling.guidance_scale, sampling.temperature, sampling.top_k, self.device)
            )
        stopping = StoppingCriteriaList([StepCallback(on_step)] if on_step else [])
        with torch.inference_mode():
            audio = self.model.generate(
                **inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,  # the sampler above samples; greedy then takes its choice
                guidance_scale=sampling.guidance_scale,
                logits_processor=LogitsProcessorList(processors),
                stopping_criteria=stopping,
            )
        return audio.float().cpu().numpy()

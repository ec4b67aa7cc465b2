"""How MusicGen's tokens get decoded: the fast loop where it applies, else transformers' `generate`, in
the precision asked for, stepping down one notch at a time when something fails, never silently.

- precision: int8 -> bf16 (where the CPU has it natively) -> fp32 (`precision.fallback`) when a
  precision can't be set up (an op missing from this torch build, an API gone) or fails while running
  (an error from its kernels, non-finite logits); each step down is a WARNING with the reason, and
  `precision` then names what runs. Both paths honour the precision: the fast loop decodes in it, and
  generate runs with the decoder's linear layers swapped for bf16/fp16 stand-ins (`linears`). In int8 the
  decoder's linears are replaced for good by int8 ones (`int8_store.in_place`: stored, or read from the checkpoint),
  so its fp32 weights never take memory; stepping down from int8 reloads the model.
- path: the fast loop -> generate when the loop doesn't model the model (INFO, or WARNING if the fast
  loop was asked for) or fails in fp32 (WARNING); both give the same tokens in fp32.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np

from .. import memory
from ..precision import fallback
from .linears import LinearSwap

log = logging.getLogger("scoretool")


def env_use_fast() -> bool | None:
    value = os.environ.get("SCORETOOL_FAST_MUSICGEN", "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    return None


class Progress:
    """Steps reported for one batch: a retry (another precision, another path) doesn't report them twice."""

    def __init__(self, on_step, total: int):
        self.on_step, self.total, self.done = on_step, total, 0

    def restart(self) -> None:
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.on_step and self.done <= self.total:
            self.on_step(n)


def fast_loop_options(precision: str) -> dict:
    """FastMusicgen's arguments for a precision name. int8 keeps its KV cache in bf16 where the CPU has
    native bf16 (attention over the cache reads half the bytes: 1.5-1.8x faster at 130-1500 positions
    on an AVX-512 BF16 / AMX Xeon); elsewhere bf16 is emulated and the cache stays fp32."""
    import torch

    from ..precision import cpu_kernels

    if precision == "int8":
        return {"int8": True, "kv_dtype": torch.bfloat16 if cpu_kernels().native_bf16 else torch.float32}
    return {"dtype": {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]}


class Decoding:
    """`use_fast`: None = the fast loop where it applies (env SCORETOOL_FAST_MUSICGEN=0/1 overrides), True =
    ask for it (a fallback is then a warning), False = always generate. `do_sample=False`: greedy."""

    def __init__(self, model, device: str, precision: str, *, use_fast=None, do_sample=True, fast_options=None,
                 reload: Callable[[], object] | None = None, to_int8: Callable[[object], None] | None = None):
        self.model, self.device, self.precision = model, device, precision
        # to_int8(model) makes its linears int8 in place; reload() gives a fresh fp32 model for a step
        # down from there. Without them, the fast loop and generate quantize copies of the weights.
        self.reload, self.to_int8 = reload, to_int8
        self._in_int8 = False  # the decoder's linears were replaced by int8 ones: a step down reloads
        self.do_sample = do_sample
        self.fast_options = fast_options or {}
        self.num_codebooks = model.decoder.num_codebooks
        self.fast = None
        self.fallback_reason: str | None = None  # why generate is used, or None
        self._hold_in_int8()
        self._hf_linears = LinearSwap(self.model.decoder, self.precision)  # the decoder's linears while generate runs
        self.use_fast = use_fast if use_fast is not None else env_use_fast()
        if self.use_fast is False:
            self.fallback_reason = "fast path turned off" + (" (SCORETOOL_FAST_MUSICGEN)" if use_fast is None else "")
            log.debug("MusicGen: using transformers' generate: %s", self.fallback_reason)
        else:
            self._build_fast()
        memory.trim()  # what quantizing freed

    # ------------------------------------------------------------------ stepping down

    def _step_down(self, reason: str) -> bool:
        """Drop to the next precision (True), or say there is none (False: the caller falls back or raises)."""
        following = fallback(self.precision, self.device)
        if following is None:
            return False
        log.warning("MusicGen: %s; falling back to %s", reason, following)
        self.precision = following
        if self._in_int8:
            self.model, self._in_int8 = self.reload(), False
        self._hf_linears = LinearSwap(self.model.decoder, following)
        return True

    def _fall_back(self, reason: str, for_batch_only: bool = False) -> None:
        level = logging.WARNING if (self.use_fast or self.fast is not None) else logging.INFO
        scope = "this batch" if for_batch_only else "from now on"
        log.log(level, "MusicGen: using transformers' generate (%s): %s", scope, reason)
        if not for_batch_only:
            self.fast = None
            self.fallback_reason = reason

    def _hold_in_int8(self) -> None:
        """int8 with `to_int8`: the decoder's linears become int8 for good, or the precision steps down."""
        from ..int8 import int8_unavailable_reason

        while self.precision == "int8":
            missing = int8_unavailable_reason()
            if missing:
                reason = f"int8 can't run: {missing}"
            elif self.to_int8 is None or self.reload is None:
                return
            else:
                try:
                    self._in_int8 = True
                    self.to_int8(self.model)
                    return
                except Exception as exc:  # a missing op or API shows as any error class; the message says which
                    reason = f"int8 could not be set up ({type(exc).__name__}: {exc})"
            self._step_down(reason)

    def _build_fast(self) -> None:
        from .fast import FastMusicgen
        from .support import Unsupported

        while True:
            try:
                self.fast = FastMusicgen(self.model, self.device, **{**fast_loop_options(self.precision), **self.fast_options})
                return
            except Unsupported as exc:
                return self._fall_back(str(exc))
            except Exception as exc:  # a fast-path bug must not stop the pipeline: say so, step down
                reason = f"the fast loop could not be set up in {self.precision} ({type(exc).__name__}: {exc})"
                if not self._step_down(reason):
                    return self._fall_back(reason)

    # ------------------------------------------------------------------ decoding

    def run(self, inputs, new_tokens: int, seeds, sampling, on_step, lengths: list[int] | None = None) -> np.ndarray:
        """Audio (batch, channels, samples) for processor inputs (text, and an audio prompt if any).
        `lengths`: each item's own new tokens (at most `new_tokens`; its audio past them is not used):
        outside fp32 the fast loop stops decoding an item when it has them (see
        `FastMusicgen.generate_codes`); fp32 decodes every item to the end, as generate does."""
        progress = Progress(on_step, new_tokens)
        if self.fast is not None:
            audio = self._fast_batch(inputs, new_tokens, seeds, sampling, progress, lengths)
            if audio is not None:
                return audio
        return self._hf_batch(inputs, new_tokens, seeds, sampling, progress)

    def _fast_batch(self, inputs, new_tokens, seeds, sampling, progress: Progress, lengths):
        from .support import Unsupported

        options = dict(
            guidance_scale=sampling.guidance_scale, do_sample=self.do_sample, temperature=sampling.temperature,
            top_k=sampling.top_k, seeds=seeds, on_step=progress,
            input_values=inputs.get("input_values"), padding_mask=inputs.get("padding_mask"),
        )  # fmt: skip
        while True:
            try:
                own = None if self.precision == "fp32" else lengths  # re-read: a retry may run in another precision
                audio = self.fast.generate(inputs["input_ids"], inputs.get("attention_mask"), new_tokens, lengths=own, **options)
                return audio.cpu().numpy()
            except Unsupported as exc:
                self._fall_back(str(exc), for_batch_only=True)
                return None
            except Exception as exc:
                reason = f"the fast loop failed in {self.precision} ({type(exc).__name__}: {exc})"
                if not self._step_down(reason):
                    self._fall_back(f"fast path failed ({type(exc).__name__}: {exc})")
                    return None
                self._build_fast()
                if self.fast is None:
                    return None
                progress.restart()

    def _hf_batch(self, inputs, new_tokens, seeds, sampling, progress: Progress) -> np.ndarray:
        while True:
            try:
                return self._hf_generate(inputs, new_tokens, seeds, sampling, progress)
            except Exception as exc:
                if self.precision == "fp32" or not self._step_down(
                    f"generate failed in {self.precision} ({type(exc).__name__}: {exc})"
                ):
                    raise
                if self.fast is not None:
                    self._build_fast()
                progress.restart()

    def _hf_generate(self, inputs, new_tokens, seeds, sampling, progress: Progress) -> np.ndarray:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from .sampling import FiniteCheck, SeededSampler, StepCallback
        from .support import NonFiniteLogits

        rows = self.num_codebooks  # scores have one row per item and codebook (twice, with guidance)
        check = FiniteCheck() if self.precision != "fp32" else None
        processors = [check] if check else []
        if self.do_sample:
            processors.append(
                SeededSampler(seeds, rows, sampling.guidance_scale, sampling.temperature, sampling.top_k, self.device)
            )
        with torch.inference_mode(), self._hf_linears.swapped():
            audio = self.model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=False,  # the sampler above samples; greedy then takes its choice
                guidance_scale=sampling.guidance_scale, logits_processor=LogitsProcessorList(processors),
                stopping_criteria=StoppingCriteriaList([StepCallback(progress)]),
            )  # fmt: skip
        if check and check.bad:
            raise NonFiniteLogits(f"non-finite logits in {self.precision} decoding")
        return audio.float().cpu().numpy()

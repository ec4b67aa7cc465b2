"""BLIP image captioning through transformers, in the precision its `ModelSpec` asks for (see `lowp`)."""

from __future__ import annotations

import dataclasses
import functools
import re

from PIL import Image

from .. import memory, models
from ..specs import ModelSpec
from . import lowp

# BLIP-base was trained on web alt-text and sometimes emits these non-words.
_ARTIFACTS = re.compile(r"\b(arafed|araffe|arafe|araf|there is|there are)\b\s*", re.IGNORECASE)


def clean_caption(text: str) -> str:
    text = _ARTIFACTS.sub("", text).strip()
    return re.sub(r"\s{2,}", " ", text)


class BlipCaptioner:
    """`spec.precision` fp32 (the reference), bf16, int8 (CPU) or fp16 (CUDA). One that cannot run
    here falls back (int8 -> bf16 -> fp32, logged at WARNING); `spec` is then the one that runs."""

    name = "blip"
    batch_size = 16  # frames a call: the ~30 text-decoding steps cost about the same for 1 image as for 16

    def __init__(self, spec: ModelSpec, max_new_tokens: int = 30):
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        from ..int8_store import in_place

        self._torch = torch
        self.model_id = models.resolve(spec.model)
        self.device = spec.device
        self.max_new_tokens = max_new_tokens
        role = "caption model (--caption-model)"
        self.processor = models.load(spec.model, role, BlipProcessor.from_pretrained)

        def load(dtype):
            from_pretrained = functools.partial(BlipForConditionalGeneration.from_pretrained, dtype=dtype)
            return models.load(spec.model, role, from_pretrained).to(spec.device).eval()

        to_int8 = in_place(models.local_folder(spec.model))  # int8 weights only: no fp32 copy in memory
        self.model, precision = lowp.load_in(load, spec.precision, spec.device, self._check, to_int8)
        memory.trim()  # what converting freed
        self.pixel_dtype = lowp.activation_dtype(lowp.PARTS[precision].vision)
        self.spec = dataclasses.replace(spec, precision=precision)

    def _check(self, model, precision: str) -> None:
        """Caption one blank picture, two tokens: every op of the converted model runs once."""
        self.model, self.pixel_dtype = model, lowp.activation_dtype(lowp.PARTS[precision].vision)
        self._generate([Image.new("RGB", (64, 64), (128, 128, 128))], max_new_tokens=2)

    def _generate(self, images: list[Image.Image], max_new_tokens: int):
        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt").to(self.device)
        pixels = inputs["pixel_values"].to(self.pixel_dtype)
        with self._torch.inference_mode():
            return self.model.generate(pixel_values=pixels, max_new_tokens=max_new_tokens)

    def caption(self, images: list[Image.Image]) -> list[str]:
        if not images:
            return []
        out = self._generate(images, self.max_new_tokens)
        return [clean_caption(t) for t in self.processor.batch_decode(out, skip_special_tokens=True)]

"""BLIP image captioning through transformers."""

from __future__ import annotations

import re

from PIL import Image

from .. import models

# BLIP-base was trained on web alt-text and sometimes emits these non-words.
_ARTIFACTS = re.compile(r"\b(arafed|araffe|arafe|araf|there is|there are)\b\s*", re.IGNORECASE)


def clean_caption(text: str) -> str:
    text = _ARTIFACTS.sub("", text).strip()
    return re.sub(r"\s{2,}", " ", text)


class BlipCaptioner:
    name = "blip"
    batch_size = 8

    def __init__(self, model: str, device: str, max_new_tokens: int = 30):
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.model_id = models.resolve(model)
        self.device = device
        self.max_new_tokens = max_new_tokens
        role = "caption model (--caption-model)"
        self.processor = models.load(model, role, BlipProcessor.from_pretrained)
        self.model = models.load(model, role, BlipForConditionalGeneration.from_pretrained)
        self.model.to(device).eval()
        self._torch = torch

    def caption(self, images: list[Image.Image]) -> list[str]:
        if not images:
            return []
        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt").to(self.device)
        with self._torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        return [clean_caption(t) for t in self.processor.batch_decode(out, skip_special_tokens=True)]

"""Captioning stage: frames in, one short English caption per frame out."""

from __future__ import annotations

from typing import Protocol

from PIL import Image

from ..specs import ModelSpec


class Captioner(Protocol):
    name: str
    spec: ModelSpec  # the model as it really runs (its precision after any fallback)
    batch_size: int  # frames per call that the pipeline hands over at once

    def caption(self, images: list[Image.Image]) -> list[str]:
        """One caption per image, in order."""
        ...


def load_captioner(spec: ModelSpec) -> Captioner:
    """Only BLIP for now; other backends (clip-interrogator, an optional extra) plug in here."""
    from .blip import BlipCaptioner

    return BlipCaptioner(spec)

"""Captioning stage: frames in, one short English caption per frame out."""

from __future__ import annotations

from typing import Protocol

from PIL import Image


class Captioner(Protocol):
    name: str
    batch_size: int

    def caption(self, images: list[Image.Image]) -> list[str]:
        """One caption per image, in order."""
        ...


def load_captioner(model: str, device: str) -> Captioner:
    """Only BLIP for now; other backends (clip-interrogator, an optional extra) plug in here."""
    from .blip import BlipCaptioner

    return BlipCaptioner(model, device)

"""Tiny random-weight stand-ins for the models scoretool uses, built offline.

Each builder writes an ordinary Hugging Face model folder (config, weights, generation
config, tokenizer and processor files) that loads with the usual
``XxxModel.from_pretrained(folder)`` / ``AutoProcessor.from_pretrained(folder)`` calls,
with ``HF_HUB_OFFLINE=1`` and nothing in the cache. The weights are random, so the output is
noise and nonsense words, but every shape, rate and special token matches the real
checkpoints, which is what tests of the pipeline need. Builders are seeded (same folder
contents every run) and take a second or two.

    python -m scoretool.testing make-tiny DIR    # writes DIR/musicgen, DIR/blip and DIR/chat
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ._common import SEED
from .blip import BLIP_IMAGE_SIZE, BLIP_INIT_STD, blip_processor, make_tiny_blip, never_emit
from .chat import CHAT_INIT_STD, make_tiny_chat
from .musicgen import (
    MUSICGEN_CODEBOOK_SIZE,
    MUSICGEN_FRAME_RATE,
    MUSICGEN_HOP_LENGTH,
    MUSICGEN_NUM_CODEBOOKS,
    MUSICGEN_SAMPLING_RATE,
    MUSICGEN_UPSAMPLING_RATIOS,
    make_codec_audible,
    make_tiny_musicgen,
    musicgen_new_tokens,
    musicgen_processor,
)
from .tokenizers import (
    BLIP_SPECIAL_TOKENS,
    CHAT_SPECIAL_TOKENS,
    CHAT_TEMPLATE,
    CORPUS,
    blip_tokenizer,
    chat_tokenizer,
    musicgen_tokenizer,
)

# name -> builder; make_tiny and the CLI build each into DIR/<name>.
BUILDERS: dict[str, Callable[[str | Path], Path]] = {
    "musicgen": make_tiny_musicgen,
    "blip": make_tiny_blip,
    "chat": make_tiny_chat,
}


def make_tiny(directory: str | Path) -> dict[str, Path]:
    """Build every tiny model into ``directory/<name>``; return ``{name: folder}``."""
    root = Path(directory)
    return {name: build(root / name) for name, build in BUILDERS.items()}


__all__ = [
    "BLIP_IMAGE_SIZE",
    "BLIP_INIT_STD",
    "BLIP_SPECIAL_TOKENS",
    "BUILDERS",
    "CHAT_INIT_STD",
    "CHAT_SPECIAL_TOKENS",
    "CHAT_TEMPLATE",
    "CORPUS",
    "MUSICGEN_CODEBOOK_SIZE",
    "MUSICGEN_FRAME_RATE",
    "MUSICGEN_HOP_LENGTH",
    "MUSICGEN_NUM_CODEBOOKS",
    "MUSICGEN_SAMPLING_RATE",
    "MUSICGEN_UPSAMPLING_RATIOS",
    "SEED",
    "blip_processor",
    "blip_tokenizer",
    "chat_tokenizer",
    "make_codec_audible",
    "make_tiny",
    "make_tiny_blip",
    "make_tiny_chat",
    "make_tiny_musicgen",
    "musicgen_new_tokens",
    "musicgen_processor",
    "musicgen_tokenizer",
    "never_emit",
]

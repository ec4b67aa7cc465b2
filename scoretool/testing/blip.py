"""A tiny random BLIP captioner: BLIP-base's tokens and specials, 32 px images, one layer each side."""

from __future__ import annotations

from pathlib import Path

import torch

from ._common import save, seeded
from .tokenizers import BLIP_SPECIAL_TOKENS, blip_tokenizer

BLIP_IMAGE_SIZE = 32
# Weight init std for the whole BLIP. The defaults (0.02 text, 1e-10 vision!) make a tiny
# model's caption ignore the image: every picture would get the same words. At 0.1
# different images get different captions, which tests of per-scene captions can see.
BLIP_INIT_STD = 0.1


def blip_processor(tokenizer, image_size: int):
    """A BlipProcessor for square ``image_size`` images (the PIL image processor: no torchvision)."""
    from transformers import BlipImageProcessorPil, BlipProcessor

    image_processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size})
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def make_tiny_blip(directory: str | Path) -> Path:
    """Write a tiny random BLIP captioner (model + BlipProcessor) to ``directory``."""
    from transformers import BlipForConditionalGeneration

    tokenizer = blip_tokenizer()
    with seeded():
        model = BlipForConditionalGeneration(_tiny_config(tokenizer)).eval()
        never_emit(model, [tokenizer.convert_tokens_to_ids(t) for t in BLIP_SPECIAL_TOKENS])
    return save(Path(directory), model, blip_processor(tokenizer, BLIP_IMAGE_SIZE))


def _tiny_config(tokenizer):
    from transformers import BlipConfig, BlipTextConfig, BlipVisionConfig

    text_config = BlipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,  # [DEC]: what BLIP's generate() starts from
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,  # generate() stops on sep_token_id
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=BLIP_INIT_STD,
    )
    vision_config = BlipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=BLIP_IMAGE_SIZE,
        patch_size=8,
        initializer_range=BLIP_INIT_STD,
    )
    return BlipConfig(
        text_config=text_config,
        vision_config=vision_config,
        projection_dim=32,
        image_text_hidden_size=32,
        initializer_range=BLIP_INIT_STD,
    )


def never_emit(model, token_ids: list[int]) -> None:
    """Push the LM-head bias of ``token_ids`` far down so captions are all words.

    A random model rates [SEP] like any word, so greedy decoding would sometimes stop at
    once (empty caption) or emit other specials that skip_special_tokens then drops.
    Banning them all means every caption is ``max_new_tokens`` vocabulary words. (Setting
    ``min_new_tokens`` in generation_config.json would not help: BLIP's generate() runs
    its text decoder, which doesn't read the saved generation config.)
    """
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[token_ids] = -1e4


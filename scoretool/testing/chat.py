"""A tiny random chat LLM (Qwen2 architecture, ChatML template) for the `local` bridge backend."""

from __future__ import annotations

from pathlib import Path

from ._common import save, seeded
from .tokenizers import chat_tokenizer

# As for BLIP: at the default init std (0.02) a tiny model says the same thing to everything.
CHAT_INIT_STD = 0.2


def make_tiny_chat(directory: str | Path) -> Path:
    """Write a tiny random chat LLM (Qwen2ForCausalLM + a ChatML tokenizer) to ``directory``.

    It answers every chat with the same kind of word salad: what tests of the `local` bridge
    need to see the whole path run (chat template, generate, decode) and its answers rejected.
    """
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = chat_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        initializer_range=CHAT_INIT_STD,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with seeded():
        model = Qwen2ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=64
    )
    return save(Path(directory), model, tokenizer)


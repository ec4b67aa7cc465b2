"""What the fast MusicGen loop models, and the errors it raises.

`unsupported_reason` refuses up front anything the loop does not model (another model class, an EOS
token, training mode, ...); the caller then falls back to transformers' `generate` with that reason logged.
"""

from __future__ import annotations

import torch


class Unsupported(Exception):
    """The fast path does not model this model or request; the message says why."""


class NonFiniteLogits(RuntimeError):
    """The decoder produced inf/nan logits (reduced-precision overflow): the batch must be redone."""


def unsupported_reason(model) -> str | None:
    """Why the fast path can't stand in for `model.generate`, or None when it can."""
    try:
        from transformers import MusicgenForConditionalGeneration
    except Exception as exc:  # pragma: no cover - transformers without MusicGen
        return f"transformers has no MusicGen here ({exc})"
    if type(model) is not MusicgenForConditionalGeneration:
        return f"{type(model).__name__} is not MusicgenForConditionalGeneration (melody and other variants use generate)"
    if model.training:
        return "the model is in training mode"
    return _config_reason(model) or _layout_reason(model)


def _config_reason(model) -> str | None:
    """What the decoder and generation configs ask for that the loop does not do."""
    from transformers.activations import ACT2FN

    cfg = model.config.decoder
    gen = model.generation_config
    channels = getattr(cfg, "audio_channels", 1)
    if channels not in (1, 2):
        return f"audio_channels={channels}"
    if cfg.num_codebooks % channels:
        return f"{cfg.num_codebooks} codebooks don't split into {channels} channels"
    if cfg.activation_function not in ACT2FN:
        return f"unknown activation {cfg.activation_function!r}"
    if getattr(cfg, "scale_embedding", False):
        return "scale_embedding=True"
    if cfg.hidden_size % cfg.num_attention_heads:
        return "hidden_size is not a multiple of num_attention_heads"
    if getattr(gen, "eos_token_id", None) is not None:
        return f"the generation config has an eos_token_id ({gen.eos_token_id}): generate's EOS handling is not modelled"
    start = gen.decoder_start_token_id if gen.decoder_start_token_id is not None else gen.bos_token_id
    if start is None or isinstance(start, (list, tuple)):
        return f"decoder_start_token_id={start!r}"
    if gen.pad_token_id is not None and gen.pad_token_id != start:
        return f"pad_token_id {gen.pad_token_id} differs from decoder_start_token_id {start}"
    if not 0 <= int(start) <= cfg.vocab_size:
        return f"decoder_start_token_id {start} is outside the codebook embeddings"
    return None


def _layout_reason(model) -> str | None:
    """What in the modules differs from the layout the loop reads its weights from."""
    cfg = model.config.decoder
    try:
        decoder = model.decoder.model.decoder
        if len(model.decoder.lm_heads) != cfg.num_codebooks or len(decoder.embed_tokens) != cfg.num_codebooks:
            return "lm_heads/embed_tokens don't match num_codebooks"
        linears = list(model.decoder.lm_heads)
        for layer in decoder.layers:
            for attn in (layer.self_attn, layer.encoder_attn):
                linears += [attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj]
            linears += [layer.fc1, layer.fc2]
            for norm in (layer.self_attn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm):
                if not isinstance(norm, torch.nn.LayerNorm) or norm.weight is None or norm.bias is None:
                    return "a decoder layer norm is not an affine LayerNorm"
        if any(lin.bias is not None for lin in linears):
            return "decoder linear layers with biases are not modelled"
        if not isinstance(decoder.layer_norm, torch.nn.LayerNorm):
            return "the decoder's final norm is not a LayerNorm"
        decoder.embed_positions.weights  # noqa: B018 - the sinusoidal table must be there
    except AttributeError as exc:
        return f"unexpected MusicGen module layout ({exc})"
    text_hidden = model.config.text_encoder.hidden_size
    needs_proj = text_hidden != cfg.hidden_size and cfg.cross_attention_hidden_size is None
    if needs_proj and not hasattr(model, "enc_to_dec_proj"):
        return "no enc_to_dec_proj although the text encoder and decoder widths differ"
    if not hasattr(model.audio_encoder, "decode"):
        return "the audio encoder has no decode()"
    return None

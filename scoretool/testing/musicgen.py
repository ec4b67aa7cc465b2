"""A tiny random MusicGen: musicgen-small's rates, hop and codebook count, a few thousand weights."""

from __future__ import annotations

from pathlib import Path

import torch

from ._common import save, seeded
from .tokenizers import musicgen_tokenizer


# What makes the tiny model interchangeable with facebook/musicgen-small: 32 kHz mono
# audio, an EnCodec hop of 8*5*4*4 = 640 samples (50 frames/s) and 4 codebooks.
MUSICGEN_SAMPLING_RATE = 32_000
MUSICGEN_UPSAMPLING_RATIOS = (8, 5, 4, 4)
MUSICGEN_HOP_LENGTH = 640
MUSICGEN_FRAME_RATE = 50
MUSICGEN_NUM_CODEBOOKS = 4
# Real checkpoint: 2048 codes. Fewer keeps the decoder's 4 embeddings + 4 heads small.
MUSICGEN_CODEBOOK_SIZE = 64


def musicgen_new_tokens(frames: int) -> int:
    """``max_new_tokens`` that makes MusicGen generate exactly ``frames`` audio frames.

    MusicGen delays codebook k by k steps (the "delay pattern"), so with 4 codebooks the
    first 3 steps are only partly audio and are dropped, along with the decoder start
    token, when generate() undoes the delay: ``frames + 3`` new tokens give ``frames``
    frames, i.e. ``frames * 640`` samples at 32 kHz (the same as musicgen-small). Example:
    30 s = 1500 frames -> ``max_new_tokens=1503`` -> 960000 samples.

    This holds for ``frames >= 3``. transformers skips the delay pattern when the whole
    sequence (start token + new tokens) is shorter than ``2 * 4 - 1 = 7``, and then every
    new token is a frame: ``max_new_tokens`` 1..5 give 1..5 frames, 6 gives 3.
    """
    if frames < 3:
        raise ValueError(f"MusicGen can't be asked for fewer than 3 frames this way, got {frames}")
    return frames + MUSICGEN_NUM_CODEBOOKS - 1




def musicgen_processor(tokenizer):
    """A MusicgenProcessor as musicgen-small's: 32 kHz mono EnCodec features, left padding."""
    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    feature_extractor = EncodecFeatureExtractor(
        feature_size=1,
        sampling_rate=MUSICGEN_SAMPLING_RATE,
        padding_side="left",
        return_attention_mask=True,
    )
    return MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def make_tiny_musicgen(directory: str | Path) -> Path:
    """Write a tiny random MusicGen (model + MusicgenProcessor) to ``directory``."""
    from transformers import GenerationConfig, MusicgenForConditionalGeneration

    tokenizer = musicgen_tokenizer()
    config = _tiny_config(tokenizer)
    with seeded():
        model = MusicgenForConditionalGeneration(config).eval()
        make_codec_audible(model.audio_encoder)
    special = MUSICGEN_CODEBOOK_SIZE
    # As musicgen-small's generation_config.json (max_length 1500: 1496 frames, ~30 s).
    model.generation_config = GenerationConfig(
        decoder_start_token_id=special,
        bos_token_id=special,
        pad_token_id=special,
        do_sample=True,
        guidance_scale=3.0,
        max_length=1500,
    )
    return save(Path(directory), model, musicgen_processor(tokenizer))


def _tiny_config(tokenizer):
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text_encoder = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    # EnCodec uses num_quantizers = 1000 * max(target_bandwidths) // (frame_rate * bits per
    # code); pick the bandwidth that gives exactly 4 codebooks (musicgen-small: 2.2 kbps
    # with 2048 codes = 11 bits; here 4 * 50 * 6 bits = 1.2 kbps).
    bits_per_code = (MUSICGEN_CODEBOOK_SIZE - 1).bit_length()
    bandwidth_kbps = MUSICGEN_NUM_CODEBOOKS * MUSICGEN_FRAME_RATE * bits_per_code / 1000
    audio_encoder = EncodecConfig(
        sampling_rate=MUSICGEN_SAMPLING_RATE,
        audio_channels=1,
        upsampling_ratios=list(MUSICGEN_UPSAMPLING_RATIOS),
        target_bandwidths=[bandwidth_kbps],
        codebook_size=MUSICGEN_CODEBOOK_SIZE,
        hidden_size=16,
        num_filters=2,  # the least that builds (compress=2 halves it); decode time scales with it
        num_lstm_layers=1,
        use_causal_conv=False,  # as in musicgen-small
        normalize=False,
    )
    # Codes run 0..codebook_size-1; the one extra embedding row, id codebook_size, is
    # MusicGen's start/pad token (2048 in musicgen-small).
    special = MUSICGEN_CODEBOOK_SIZE
    decoder = MusicgenDecoderConfig(
        vocab_size=MUSICGEN_CODEBOOK_SIZE,
        num_codebooks=MUSICGEN_NUM_CODEBOOKS,
        audio_channels=1,
        hidden_size=32,
        ffn_dim=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=2048,
        dropout=0.0,
        pad_token_id=special,
        bos_token_id=special,
        decoder_start_token_id=special,
    )
    # transformers 5 dropped MusicgenConfig.from_sub_models_config: pass the sub-configs.
    config = MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    assert config.audio_encoder.num_quantizers == MUSICGEN_NUM_CODEBOOKS
    assert config.audio_encoder.hop_length == MUSICGEN_HOP_LENGTH
    return config


def make_codec_audible(encodec, rms: float = 0.1) -> None:
    """Make a random EnCodec decode codes into zero-mean audio of a sane loudness.

    Out of the box it would decode every code sequence to the same signal: codebooks start
    as zeros (real ones come from a checkpoint), and a random decoder adds a large DC offset
    from its biases while shrinking whatever the codes carry. So: random codebooks, no
    biases, and the last (linear) conv scaled so that random codes come out at ``rms``
    (0.1 ~ -20 dBFS).
    """
    with torch.no_grad():
        for layer in encodec.quantizer.layers:
            codebook = layer.codebook
            codebook.embed.normal_()
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
        for name, param in encodec.decoder.named_parameters():
            if "bias" in name:
                param.zero_()
        config = encodec.config
        codes = torch.randint(config.codebook_size, (1, 1, config.num_quantizers, 50))
        audio = encodec.decode(codes, [None]).audio_values
        gain = encodec.decoder.layers[-1].conv.parametrizations.weight.original0  # weight-norm g
        gain.mul_(rms / audio.std())


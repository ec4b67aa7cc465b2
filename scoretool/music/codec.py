"""EnCodec, as MusicGen's `generate` uses it: an audio prompt to codes, codes to audio (fp32 always).

Stereo models interleave the left and right channels' codebooks (L0 R0 L1 R1 ...); EnCodec codes and
decodes each channel alone.
"""

from __future__ import annotations

import torch

from .support import Unsupported


def audio_codes(codec, channels: int, input_values: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """An audio prompt's EnCodec codes (batch, codebooks, frames), as generate encodes `input_values`
    (batch, channels, samples)."""
    codec_device = next(codec.parameters()).device
    input_values = input_values.to(codec_device)
    padding_mask = padding_mask.to(codec_device) if padding_mask is not None else None

    def encode(values):
        with torch.inference_mode():
            out = codec.encode(input_values=values, padding_mask=padding_mask, return_dict=True)
        if out.audio_codes.shape[0] != 1:
            raise Unsupported("the audio encoder splits the prompt into chunks")
        if out.audio_scales is not None and any(s is not None for s in out.audio_scales):
            raise Unsupported("the audio encoder rescales the prompt (audio_scales)")
        return out.audio_codes[0]

    if channels == 1:
        return encode(input_values)
    if input_values.shape[1] != 2:
        raise ValueError(f"a stereo model needs a 2-channel audio prompt, not {input_values.shape[1]}")
    left, right = encode(input_values[:, :1]), encode(input_values[:, 1:])
    return torch.stack([left, right], dim=2).flatten(1, 2)  # (batch, 2K', frames): L0 R0 L1 R1 ...


# EnCodec's decoder activations at the full sample rate come to several hundred MB per 10 s of
# musicgen-small audio (measured: a 3-row decode of 5 s each swung the process by ~400 MB, and one row
# of 6.2 s by ~500 MB at the peak of the sample's run): rows are decoded together up to this many
# frames in all (10 s at 50 frames a second), so short batches decode at once as generate does (the
# same audio, bit for bit) and longer ones a row or a few at a time; and a row longer than
# `WHOLE_FRAMES` runs the decoder's upsampling convolutions a piece at a time (below): 30 s of one row
# then takes 3.5 s and no memory to speak of, where whole it took 7.8 s and 1 GB (measured here).
DECODE_FRAMES = 500
WHOLE_FRAMES = 150  # 3 s: up to this, rows decode whole, as generate decodes them
PIECE_FRAMES = 50  # frames per piece of the upsampling stack past that (1 s: as fast as 2 s, 1.3x 0.5 s)
MARGIN_FRAMES = 4  # decoded on each side of a piece and dropped: more than the stack's reach (~1 frame)


def decode_codes(codec, channels: int, codes: torch.Tensor, frames: list[int] | None = None) -> torch.Tensor:
    """EnCodec audio (batch, channels, samples) float32 for codes (batch, codebooks, frames).
    `frames[i]`: row i's own length (default: all of them); its audio past that is silence. Rows are
    decoded a few at a time (neighbours together, at the longest one's length: rows come longest first)."""
    lengths = frames or [codes.shape[-1]] * codes.shape[0]
    pieces, start = [], 0
    while start < len(lengths):
        end = start + 1
        while end < len(lengths) and max(lengths[start : end + 1]) * (end + 1 - start) <= DECODE_FRAMES:
            end += 1
        n = max(lengths[start:end])
        with torch.inference_mode():
            audio = _decode_rows(codec, channels, codes[start:end, :, :n])
            hop = audio.shape[-1] // n
            for row, own in enumerate(lengths[start:end]):
                audio[row, :, own * hop :] = 0
        pieces.append(audio)
        start = end
    samples = max(p.shape[-1] for p in pieces)
    return torch.cat([torch.nn.functional.pad(p, (0, samples - p.shape[-1])) for p in pieces])


def _decode_rows(codec, channels: int, codes: torch.Tensor) -> torch.Tensor:
    codec_device = next(codec.parameters()).device
    codes = codes.to(codec_device)
    with torch.inference_mode():
        if channels == 1:
            audio = _decode_channel(codec, codes)
        else:
            audio = torch.cat([_decode_channel(codec, codes[:, ::2]), _decode_channel(codec, codes[:, 1::2])], dim=1)
    return audio.float()


def _decode_channel(codec, codes: torch.Tensor) -> torch.Tensor:
    """Audio (rows, 1, samples) for one channel's codes (rows, codebooks, frames), as `codec.decode`
    gives it. Past `WHOLE_FRAMES` frames, the decoder's first convolution and LSTM (at the frame rate,
    cheap) run over the whole row and the upsampling stack after them `PIECE_FRAMES` at a time, each
    with `MARGIN_FRAMES` more on either side that its edges' padding spoils and that are dropped: the
    same audio (to float rounding: 4e-7 measured) with the activations of one piece at a time."""
    from transformers.models.encodec.modeling_encodec import EncodecLSTM

    frames = codes.shape[-1]
    layers = list(codec.decoder.layers)
    if frames <= WHOLE_FRAMES or codec.config.chunk_length is not None or not isinstance(layers[1], EncodecLSTM):
        return codec.decode(codes[None], audio_scales=[None]).audio_values
    hidden = codec.quantizer.decode(codes.transpose(0, 1))  # as EncodecModel._decode_frame
    for layer in layers[:2]:  # EncodecConv1d, EncodecLSTM
        hidden = layer(hidden)
    pieces = []
    for start in range(0, frames, PIECE_FRAMES):
        lo, hi = max(0, start - MARGIN_FRAMES), min(frames, start + PIECE_FRAMES + MARGIN_FRAMES)
        out = hidden[..., lo:hi]
        for layer in layers[2:]:
            out = layer(out)
        hop = out.shape[-1] // (hi - lo)
        own = min(PIECE_FRAMES, frames - start)
        pieces.append(out[..., (start - lo) * hop : (start - lo + own) * hop])
    return torch.cat(pieces, dim=-1)

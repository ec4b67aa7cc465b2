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


def fold_weight_norm(codec) -> None:
    """EnCodec's convolutions hold weight norm's (g, v) and compute weight = g * v / |v| again at every
    call (~10% of a decode, more in pieces): the decoder's computed once, in place (47 MB for
    musicgen-small's), the same weights and audio. The encoder's (audio prompts only) stay as they are."""
    from torch.nn.utils import parametrize

    for module in codec.decoder.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


# EnCodec's decoder activations at the full sample rate come to several hundred MB per 10 s of
# musicgen-small audio (measured: a 3-row decode of 5 s each swung the process by ~400 MB, and one row
# of 6.2 s by ~500 MB at the peak of the sample's run). So rows decode whole, as generate decodes them
# (the same audio, bit for bit), only while they are short (`WHOLE_FRAMES`) and few (`DECODE_FRAMES`
# frames in all). Past that the decoder's first layers (`FRONT_LAYERS`: little memory, but the LSTM
# runs one step after another, so every row shares its steps) run over every row at once, and the
# rest a piece of one row at a time: the sample's 3 rows (6.2, 3.4 and 3 s) decode in 1.35 s with
# ~90 MB of activations (measured here; 1.35 s and ~300 MB with two upsamplings in the front and two
# rows a piece); 30 s of one row in 3.5 s with no memory to speak of, where whole it took 7.8 s and 1 GB.
DECODE_FRAMES = 500
WHOLE_FRAMES = 150  # 3 s
PIECE_FRAMES = 50  # frames per piece (1 s: as fast as 2 s, 1.3x 0.5 s)
MARGIN_FRAMES = 4  # decoded on each side of a piece and dropped: more than the stack's reach (~1 frame)
# The decoder's layers that run over whole rows: its conv and LSTM, and the first upsampling block
# (to 8 samples a frame, 512 channels: 16 KB a frame a row), which costs 3x as much on pieces of 58
# frames as on a whole row.
FRONT_LAYERS = 5


def decode_codes(codec, channels: int, codes: torch.Tensor, frames: list[int] | None = None) -> torch.Tensor:
    """EnCodec audio (batch, channels, samples) float32 for codes (batch, codebooks, frames).
    `frames[i]`: row i's own length (default: all of them); its audio past that is silence."""
    lengths = frames or [codes.shape[-1]] * codes.shape[0]
    n = max(lengths)
    codes = codes[:, :, :n].to(next(codec.parameters()).device)
    whole = n <= WHOLE_FRAMES and len(lengths) * n <= DECODE_FRAMES
    with torch.inference_mode():
        if whole or not _splits(codec):
            audio = _per_channel(channels, codes, lambda c: _whole(codec, c, lengths)).float()
        else:
            audio = _per_channel(channels, codes, lambda c: _in_pieces(codec, c, lengths)).float()
        hop = audio.shape[-1] // n
        for row, own in enumerate(lengths):
            audio[row, :, own * hop :] = 0
    return audio


def _per_channel(channels: int, codes: torch.Tensor, decode) -> torch.Tensor:
    if channels == 1:
        return decode(codes)
    return torch.cat([decode(codes[:, ::2]), decode(codes[:, 1::2])], dim=1)


def _splits(codec) -> bool:
    """Whether the decoder is the conv, LSTM, upsampling stack that `_in_pieces` splits."""
    from transformers.models.encodec.modeling_encodec import EncodecLSTM

    layers = list(codec.decoder.layers)
    return codec.config.chunk_length is None and len(layers) > FRONT_LAYERS and isinstance(layers[1], EncodecLSTM)


def _whole(codec, codes: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """As `codec.decode`, a few rows at a time (neighbours, up to DECODE_FRAMES frames at the longest
    one's length: rows come longest first)."""
    pieces, start = [], 0
    while start < len(lengths):
        end = start + 1
        while end < len(lengths) and max(lengths[start : end + 1]) * (end + 1 - start) <= DECODE_FRAMES:
            end += 1
        pieces.append(codec.decode(codes[None, start:end], audio_scales=[None]).audio_values)
        start = end
    return torch.cat(pieces)


def _in_pieces(codec, codes: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Audio (rows, 1, samples) for one channel's codes (rows, codebooks, frames), as `codec.decode`
    gives it (to float rounding: 4e-7 measured): the decoder's first `FRONT_LAYERS` over every row, then
    the rest `PIECE_FRAMES` of one row at a time, each with `MARGIN_FRAMES` more on either side that its
    edges' padding spoils and that are dropped; a row's audio past its own length stays 0."""
    rows, frames = codes.shape[0], codes.shape[-1]
    layers = list(codec.decoder.layers)
    hidden = codec.quantizer.decode(codes.transpose(0, 1))  # as EncodecModel._decode_frame
    for layer in layers[:FRONT_LAYERS]:
        hidden = layer(hidden)
    rate = hidden.shape[-1] // frames  # samples a frame so far
    audio = None
    for row, length in enumerate(lengths):
        for start in range(0, length, PIECE_FRAMES):
            lo, hi = max(0, start - MARGIN_FRAMES), min(frames, start + PIECE_FRAMES + MARGIN_FRAMES)
            own = min(PIECE_FRAMES, frames - start)
            out = hidden[row : row + 1, :, lo * rate : hi * rate]
            for layer in layers[FRONT_LAYERS:]:
                out = layer(out)
            hop = out.shape[-1] // (hi - lo)
            if audio is None:
                audio = out.new_zeros((rows, out.shape[1], frames * hop))
            audio[row, :, start * hop : (start + own) * hop] = out[0, :, (start - lo) * hop : (start - lo + own) * hop]
    return audio

"""A fast MusicGen decode loop: the same tokens as transformers' `generate`, without its per-step overhead.

On a GPU, transformers' MusicGen `generate` is launch-bound (~13 ms a step on an H100 for musicgen-small
whatever the batch or dtype). This module decodes with the model's own weights but its own loop:

- a pre-allocated static KV cache for self-attention, and the cross-attention K/V of the text encoder
  output computed once per batch;
- classifier-free guidance inside the same batch (conditional rows, then unconditional rows, as
  transformers does), guidance, temperature, top-k and sampling on the device, with no host sync per step;
- per-item seeded sampling by the Gumbel-max trick: item i's noise comes from its own generator
  (`SeededNoise`), so a clip depends only on its prompt, length and seed, not on its batch-mates; the
  transformers path (`musicgen.SeededSampler`) uses the same noise, so both draw the same tokens;
- the delay pattern of the codebooks as tensor ops (a table of the token each position is held to, or
  -1 where the decoder chooses), which also holds an audio prompt's codes: a prompt (continuing music,
  as long scenes and `--transition continue` do) runs through transformers' own decoder in one pass, as
  generate's prefill does, and the loop goes on from its keys and values;
- on CUDA: the single-token step captured in CUDA graphs (one per attention-length bucket, so early
  steps don't attend over the whole cache), half precision for the decoder with cuDNN attention (fast
  for the graph's fixed shapes; it is only slow for generate's ever-changing ones), EnCodec kept in fp32
  and decoding the whole batch at once.

On the CPU the same loop runs eagerly and, by default, op for op as transformers computes it, so greedy
decoding gives exactly `generate`'s tokens. `FastMusicgen(static=True, fused=True, graphs=False)` runs the
GPU code path (static shapes, masks, device-side step counter, fused projections) eagerly, which is how
the tests exercise it on a machine without a GPU.

Anything this loop does not model (another model class, an EOS token, training mode, ...) is refused up
front by `unsupported_reason`, and the caller falls back to `generate` with that reason logged.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .delay import delay_pattern, delay_table

log = logging.getLogger("scoretool")

# Gumbel noise is drawn per item in blocks of this many steps; both sampling paths must use the same.
NOISE_CHUNK = 64
# Graph buckets: step s attends over the first ceil((s+1)/BUCKET)*BUCKET cache positions.
DEFAULT_BUCKET = 128
# Cache lengths and text lengths are rounded up to these, so that shapes (and graphs) get reused.
CACHE_ROUND = 64
TEXT_ROUND = 32
MAX_CACHED_STATES = 2


class Unsupported(Exception):
    """The fast path does not model this model or request; the message says why."""


class NonFiniteLogits(RuntimeError):
    """The decoder produced inf/nan logits (half-precision overflow): the batch must be redone."""


# --------------------------------------------------------------------------- sampling, shared with the HF path


def _gumbel_(u: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) noise -> standard Gumbel noise, in place (u = 0 gives -inf: never chosen)."""
    return u.log_().neg_().log_().neg_()


class SeededNoise:
    """Gumbel noise for per-item seeded sampling: item i's noise comes from its own generator.

    Noise for step s of item i is row s % NOISE_CHUNK of the (s // NOISE_CHUNK)-th block of shape
    (NOISE_CHUNK, codebooks, vocab) drawn from item i's generator. The blocks are the same whether they
    are drawn one at a time (`step`) or all up front (`block`), so the transformers path and the fast
    path, on the same device, draw the same tokens for the same seeds.
    """

    def __init__(self, seeds: list[int], codebooks: int, vocab: int, device):
        self.device = torch.device(device)
        self.shape = (NOISE_CHUNK, codebooks, vocab)
        self.generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        self._index = -1
        self._current: torch.Tensor | None = None

    def _next_chunk(self) -> torch.Tensor:
        """The next (NOISE_CHUNK, batch, codebooks, vocab) block."""
        u = torch.stack(
            [torch.rand(self.shape, generator=g, device=self.device, dtype=torch.float32) for g in self.generators], dim=1
        )
        return _gumbel_(u)

    def step(self, s: int) -> torch.Tensor:
        """Noise for step `s` (steps must be asked for in order), shape (batch, codebooks, vocab)."""
        chunk = s // NOISE_CHUNK
        while self._index < chunk:
            self._current = self._next_chunk()
            self._index += 1
        if self._index != chunk:
            raise RuntimeError("SeededNoise.step must be called with non-decreasing steps")
        return self._current[s % NOISE_CHUNK]

    def block(self, steps: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Noise for steps 0..steps-1 at once, shape (steps, batch, codebooks, vocab); fills `out` if given."""
        if self._index != -1:
            raise RuntimeError("SeededNoise.block must be called on fresh noise")
        n_chunks = math.ceil(steps / NOISE_CHUNK)
        if out is None:
            out = torch.empty((steps, len(self.generators), *self.shape[1:]), device=self.device, dtype=torch.float32)
        for c in range(n_chunks):
            lo, hi = c * NOISE_CHUNK, min((c + 1) * NOISE_CHUNK, steps)
            out[lo:hi].copy_(self._next_chunk()[: hi - lo])
            self._index += 1
        return out


def guide(cond: torch.Tensor, uncond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance, written as transformers' ClassifierFreeGuidanceLogitsProcessor writes it."""
    return uncond + (cond - uncond) * guidance_scale


def choose(logits: torch.Tensor, temperature: float, top_k: int, noise: torch.Tensor | None) -> torch.Tensor:
    """Token ids from guided fp32 logits (..., vocab): argmax when `noise` is None, else Gumbel-max sampling.

    argmax(top_k_mask(logits / T) + Gumbel noise) is a draw from softmax(top_k_mask(logits / T)).
    """
    if noise is None:
        return logits.argmax(dim=-1)
    logits = logits / max(float(temperature), 1e-5)
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return (logits + noise).argmax(dim=-1)


# --------------------------------------------------------------------------- support check


def unsupported_reason(model) -> str | None:
    """Why the fast path can't stand in for `model.generate`, or None when it can."""
    try:
        from transformers import MusicgenForConditionalGeneration
        from transformers.activations import ACT2FN
    except Exception as exc:  # pragma: no cover - transformers without MusicGen
        return f"transformers has no MusicGen here ({exc})"
    if type(model) is not MusicgenForConditionalGeneration:
        return f"{type(model).__name__} is not MusicgenForConditionalGeneration (melody and other variants use generate)"
    if model.training:
        return "the model is in training mode"
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
    if getattr(gen, "eos_token_id", None) is not None:
        return f"the generation config has an eos_token_id ({gen.eos_token_id}): generate's EOS handling is not modelled"
    start = gen.decoder_start_token_id if gen.decoder_start_token_id is not None else gen.bos_token_id
    if start is None or isinstance(start, (list, tuple)):
        return f"decoder_start_token_id={start!r}"
    if gen.pad_token_id is not None and gen.pad_token_id != start:
        return f"pad_token_id {gen.pad_token_id} differs from decoder_start_token_id {start}"
    if not 0 <= int(start) <= cfg.vocab_size:
        return f"decoder_start_token_id {start} is outside the codebook embeddings"
    try:
        decoder = model.decoder.model.decoder
        layers = list(decoder.layers)
        if len(model.decoder.lm_heads) != cfg.num_codebooks or len(decoder.embed_tokens) != cfg.num_codebooks:
            return "lm_heads/embed_tokens don't match num_codebooks"
        linears = [head for head in model.decoder.lm_heads]
        for layer in layers:
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
    if cfg.hidden_size % cfg.num_attention_heads:
        return "hidden_size is not a multiple of num_attention_heads"
    text_hidden = model.config.text_encoder.hidden_size
    needs_proj = text_hidden != cfg.hidden_size and cfg.cross_attention_hidden_size is None
    if needs_proj and not hasattr(model, "enc_to_dec_proj"):
        return "no enc_to_dec_proj although the text encoder and decoder widths differ"
    if not hasattr(model.audio_encoder, "decode"):
        return "the audio encoder has no decode()"
    return None


@dataclass
class _Job:
    """One `generate_codes` call: what both loops need to know about it."""

    batch: int
    new_tokens: int
    prompt_frames: int  # P: frames of audio prompt (0: none)
    table: torch.Tensor  # delay_table for P + new_tokens + 1 positions
    settings: tuple  # (cfg, guidance scale, sampled, temperature, top_k)
    noise: SeededNoise | None
    on_step: Callable[[int], None] | None
    enc_model_dtype: torch.Tensor  # text encoder output in the model's dtype (for the prompt's prefill)

    @property
    def steps(self) -> int:
        """Decoder input positions: the prompt's (with the start token) and one per new token but the last."""
        return self.prompt_frames + self.new_tokens


# --------------------------------------------------------------------------- the decoder


@dataclass
class _Layer:
    ln1: tuple
    ln2: tuple
    ln3: tuple
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    cq: torch.Tensor
    ck: torch.Tensor
    cv: torch.Tensor
    co: torch.Tensor
    fc1: torch.Tensor
    fc2: torch.Tensor
    qkv: torch.Tensor | None = None  # fused [q; k; v] for the static/fused path


@dataclass
class _State:
    """Static buffers of one batch shape; CUDA graphs read and write only these."""

    batch: int
    rows: int
    text_len: int
    cache_len: int
    sampled: bool
    tok: torch.Tensor  # (batch, K) long: this step's input tokens (conditional rows; repeated for CFG)
    pos: torch.Tensor  # (1,) long: this step's index = input position
    kv: torch.Tensor  # (layers, 2, rows, heads, cache_len, head_dim)
    cross_k: torch.Tensor  # (layers, rows, heads, text_len, head_dim)
    cross_v: torch.Tensor
    cross_bias: torch.Tensor  # (rows, 1, 1, text_len) additive
    self_bias: torch.Tensor  # (cache_len, cache_len) additive causal table
    table: torch.Tensor  # (batch, K, cache_len + 1) long: delay_table
    out: torch.Tensor  # (batch, K, cache_len) long: raw token of each step
    bad: torch.Tensor  # (1,) bool: a non-finite logit was seen
    noise: torch.Tensor | None  # (cache_len, batch, K, vocab) fp32
    graphs: dict = field(default_factory=dict)  # (kv_len, settings) -> CUDAGraph


class FastMusicgen:
    """Generate MusicGen codes and audio with a hand-written decode loop.

    `static`: fixed-shape step (full static cache with a mask, step counter on the device): needed for CUDA
    graphs; default on CUDA. `fused`: one QKV matmul, residual adds fused into the matmuls, batched LM heads:
    fewer kernels; default on CUDA (off on CPU, where the loop follows transformers op for op).
    `graphs`: capture the static step in CUDA graphs (CUDA only). `dtype`: the decoder's dtype (default fp16
    on CUDA, fp32 elsewhere); the text encoder and EnCodec stay in the model's own dtype.
    Tuning knobs for the GPU (see benchmarks/gpu_probe.py): `bucket` (attention-length bucket of the
    graphs), `attention` ("sdpa", or "matmul": explicit matmul/softmax), `sdpa_backends` (CUDA only;
    default cuDNN, then memory-efficient, then math), `blas` (CUDA only: torch's preferred BLAS library
    while decoding), `weights_kn`, `gelu_epilogue` (half only: tanh GELU in fc1's matmul).
    """

    def __init__(
        self,
        model,
        device=None,
        dtype: torch.dtype | None = None,
        *,
        static: bool | None = None,
        fused: bool | None = None,
        graphs: bool | None = None,
        bucket: int = DEFAULT_BUCKET,
        attention: str = "sdpa",
        sdpa_backends: tuple[str, ...] | None = None,
        blas: str | None = None,
        weights_kn: bool = False,
        gelu_epilogue: bool = False,
    ):
        reason = unsupported_reason(model)
        if reason:
            raise Unsupported(reason)
        from transformers.activations import ACT2FN

        self.model = model
        self.device = torch.device(device) if device is not None else next(model.decoder.parameters()).device
        cuda = self.device.type == "cuda"
        self.dtype = dtype or (torch.float16 if cuda else torch.float32)
        self.graphs = bool(cuda if graphs is None else graphs) and cuda
        self.static = bool(cuda if static is None else static) or self.graphs
        self.fused = bool(cuda if fused is None else fused)
        if bucket % CACHE_ROUND:
            raise ValueError(f"bucket must be a multiple of {CACHE_ROUND}")
        if attention not in ("sdpa", "matmul"):
            raise ValueError("attention must be 'sdpa' or 'matmul'")
        self.bucket = bucket
        self.attention = attention
        if sdpa_backends is None:
            # Measured on an H100 (benchmarks/gpu_probe.py): for the graphed single-token step in half
            # precision cuDNN's attention is the fastest (1.63 vs 2.02 ms a step with the CUTLASS
            # memory-efficient kernel). It is generate's slow path only because generate's shapes change
            # every step. fp32 isn't a cuDNN dtype and falls through to the memory-efficient kernel.
            sdpa_backends = ("cudnn", "efficient", "math") if self.dtype != torch.float32 else ("flash", "efficient", "math")
        self.sdpa_backends = tuple(sdpa_backends)
        self.blas = blas
        # (in, out) weight layout for the fused path's matmuls: a different cuBLAS kernel choice
        self.kn = bool(weights_kn) and self.fused

        cfg = model.config.decoder
        gen = model.generation_config
        self.K = cfg.num_codebooks
        self.V = cfg.vocab_size
        self.D = cfg.hidden_size
        self.H = cfg.num_attention_heads
        self.hd = self.D // self.H
        self.scaling = self.hd**-0.5  # as MusicgenAttention
        self.channels = getattr(cfg, "audio_channels", 1)
        self.channel_codebooks = self.K // self.channels
        self.delays = delay_pattern(self.K, self.channels)
        self.start = int(gen.decoder_start_token_id if gen.decoder_start_token_id is not None else gen.bos_token_id)
        self.act = ACT2FN[cfg.activation_function]

        decoder = model.decoder.model.decoder
        dev, dt = self.device, self.dtype

        def w(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(dev, dt)

        def ln(m: torch.nn.LayerNorm) -> tuple:
            return (m.normalized_shape, w(m.weight), w(m.bias), m.eps)

        self.layers: list[_Layer] = []
        with torch.no_grad():
            for layer in decoder.layers:
                sa, ca = layer.self_attn, layer.encoder_attn
                entry = _Layer(
                    ln1=ln(layer.self_attn_layer_norm),
                    ln2=ln(layer.encoder_attn_layer_norm),
                    ln3=ln(layer.final_layer_norm),
                    q=w(sa.q_proj.weight), k=w(sa.k_proj.weight), v=w(sa.v_proj.weight), o=w(sa.out_proj.weight),
                    cq=w(ca.q_proj.weight), ck=w(ca.k_proj.weight), cv=w(ca.v_proj.weight), co=w(ca.out_proj.weight),
                    fc1=w(layer.fc1.weight), fc2=w(layer.fc2.weight),
                )  # fmt: skip
                if self.fused:
                    entry.qkv = torch.cat([entry.q, entry.k, entry.v]).contiguous()
                    # the separate ones are then only needed by the unfused path
                    entry.q = entry.k = entry.v = None
                if self.kn:
                    for name in ("qkv", "o", "cq", "co", "fc1", "fc2"):
                        setattr(entry, name, getattr(entry, name).t().contiguous())
                self.layers.append(entry)
            self.final_ln = ln(decoder.layer_norm)
            self.embed = [w(e.weight) for e in decoder.embed_tokens]
            self.heads = [w(h.weight) for h in model.decoder.lm_heads]
            self.heads_stacked = torch.stack(self.heads).contiguous() if self.fused else None
            if self.kn:
                self.heads_stacked = self.heads_stacked.transpose(1, 2).contiguous()  # (K, hidden, vocab)
            self.positions = w(decoder.embed_positions.weights)
            self._position_module = decoder.embed_positions
        # GELU fused into fc1's matmul (cuBLASLt epilogue; tanh approximation, so half precision only)
        self.gelu_epilogue = bool(gelu_epilogue) and self.fused and self.dtype != torch.float32
        self._zero_ffn = torch.zeros(cfg.ffn_dim, device=dev, dtype=dt) if self.gelu_epilogue else None
        self._states: OrderedDict = OrderedDict()
        self._pool = None

    # ------------------------------------------------------------------ public API

    def frames_for(self, new_tokens: int) -> int:
        return new_tokens + 1 - self.channel_codebooks

    def generate_codes(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        new_tokens: int,
        *,
        prompt_codes: torch.Tensor | None = None,
        guidance_scale: float | None = 3.0,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_k: int = 250,
        seeds: list[int] | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Codes (batch, codebooks, frames) long, as `generate` would pass them to EnCodec.

        `prompt_codes` (batch, codebooks, P): an audio prompt's codes (`audio_codes`), which the music
        continues; the result then starts with them, as generate's does.
        """
        if new_tokens + 1 < 2 * self.channel_codebooks - 1:
            raise Unsupported(f"{new_tokens} new tokens is too short for the delay pattern")
        batch = input_ids.shape[0]
        if do_sample and (seeds is None or len(seeds) != batch):
            raise ValueError("sampling needs one seed per batch item")
        if prompt_codes is not None and (prompt_codes.ndim != 3 or prompt_codes.shape[:2] != (batch, self.K)):
            raise ValueError(f"prompt_codes must be (batch, {self.K}, frames), not {tuple(prompt_codes.shape)}")
        cfg = guidance_scale is not None and guidance_scale > 1
        with torch.inference_mode():
            enc_model_dtype, enc_mask = self._encode(input_ids, attention_mask, cfg)  # transformers' own attention choices
            enc = enc_model_dtype.to(self.dtype)
        frames = prompt_codes.shape[-1] if prompt_codes is not None else 0
        table = delay_table(batch, new_tokens, self.delays, self.channel_codebooks, self.start, frames + new_tokens + 1, prompt_codes)
        with torch.inference_mode(), self._sdpa_backends():
            settings = (cfg, float(guidance_scale or 1.0), bool(do_sample), float(temperature), int(top_k))

            def job() -> _Job:  # fresh noise for each try
                noise = SeededNoise(seeds, self.K, self.V, self.device) if do_sample else None
                return _Job(batch, new_tokens, frames, table.to(self.device), settings, noise, on_step, enc_model_dtype)

            if self.static:
                try:
                    out = self._run_static(enc, enc_mask, job())
                except (NonFiniteLogits, Unsupported):
                    raise
                except Exception as exc:
                    if not self.graphs:
                        raise
                    log.warning("MusicGen fast path: CUDA graphs failed (%s: %s); continuing without graphs", type(exc).__name__, exc)
                    self.graphs = False
                    self._states.clear()
                    out = self._run_static(enc, enc_mask, job())
            else:
                out = self._run_dynamic(enc, enc_mask, job())
            # The sequence as generate leaves it: held positions from the table, the rest as decoded; then
            # each codebook's frames, undelayed.
            table = table.to(out.device)
            length = frames + new_tokens
            tokens = torch.where(table[:, :, 1 : length + 1] < 0, out[:, :, :length], table[:, :, 1 : length + 1])
            idx = torch.arange(length + 1 - self.channel_codebooks, device=out.device)[None, :]
            idx = idx + torch.tensor(self.delays, device=out.device)[:, None]
            return tokens.gather(2, idx.expand(batch, -1, -1)).clone()

    def audio_codes(self, input_values: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """An audio prompt's EnCodec codes (batch, codebooks, frames), as generate encodes `input_values`
        (stereo: left and right codebooks interleaved)."""
        codec = self.model.audio_encoder
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

        if self.channels == 1:
            return encode(input_values)
        if input_values.shape[1] != 2:
            raise ValueError(f"a stereo model needs a 2-channel audio prompt, not {input_values.shape[1]}")
        left, right = encode(input_values[:, :1]), encode(input_values[:, 1:])
        return torch.stack([left, right], dim=2).flatten(1, 2)  # (batch, 2K', frames): L0 R0 L1 R1 ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """EnCodec audio (batch, channels, samples) float32 for codes (batch, codebooks, frames), the whole batch at once."""
        codec = self.model.audio_encoder
        codec_device = next(codec.parameters()).device
        codes = codes.to(codec_device)[None]
        scales = [None] * codes.shape[1]
        with torch.inference_mode():
            if self.channels == 1:
                audio = codec.decode(codes, audio_scales=scales).audio_values
            else:
                left = codec.decode(codes[:, :, ::2], audio_scales=scales).audio_values
                right = codec.decode(codes[:, :, 1::2], audio_scales=scales).audio_values
                audio = torch.cat([left, right], dim=1)
        return audio.float()

    def generate(
        self, input_ids, attention_mask, new_tokens: int, *, input_values=None, padding_mask=None, **options
    ) -> torch.Tensor:
        """Audio (batch, channels, samples): `generate_codes` then `decode`. With an audio prompt
        (`input_values`, `padding_mask` as the processor gives them) the audio starts with the codec's
        rendering of the prompt, then goes on, as generate's does."""
        if input_values is not None:
            options["prompt_codes"] = self.audio_codes(input_values, padding_mask)
        return self.decode(self.generate_codes(input_ids, attention_mask, new_tokens, **options))

    # ------------------------------------------------------------------ pieces

    @contextlib.contextmanager
    def _sdpa_backends(self):
        """On CUDA: the SDPA backends to try (`sdpa_backends`) and the preferred BLAS library if one was
        asked for; both restored afterwards."""
        if self.device.type != "cuda":
            yield
            return
        with contextlib.ExitStack() as stack:
            try:
                from torch.nn.attention import SDPBackend, sdpa_kernel

                names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH", "cudnn": "CUDNN_ATTENTION"}
                stack.enter_context(sdpa_kernel([getattr(SDPBackend, names[b]) for b in self.sdpa_backends]))
            except (ImportError, AttributeError):  # pragma: no cover - old torch
                pass
            if self.blas:
                previous = torch.backends.cuda.preferred_blas_library()
                torch.backends.cuda.preferred_blas_library(self.blas)
                stack.callback(torch.backends.cuda.preferred_blas_library, previous)
            yield

    def _encode(self, input_ids, attention_mask, cfg: bool):
        """Text encoder output and mask as `generate` builds them: with CFG, a zero half and an all-zero mask."""
        model = self.model
        text_device = next(model.text_encoder.parameters()).device
        input_ids = input_ids.to(text_device)
        attention_mask = attention_mask.to(text_device) if attention_mask is not None else torch.ones_like(input_ids)
        h = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask
        if cfg:
            h = torch.cat([h, torch.zeros_like(h)], dim=0)
            mask = torch.cat([mask, torch.zeros_like(mask)], dim=0)
        cfgd = model.config
        if cfgd.text_encoder.hidden_size != cfgd.decoder.hidden_size and cfgd.decoder.cross_attention_hidden_size is None:
            h = model.enc_to_dec_proj(h)
        h = h * mask[..., None]
        return h.to(self.device), mask.to(self.device)

    def _cross_kv(self, layer: _Layer, enc: torch.Tensor):
        rows, length, _ = enc.shape
        k = F.linear(enc, layer.ck).view(rows, length, self.H, self.hd).transpose(1, 2)
        v = F.linear(enc, layer.cv).view(rows, length, self.H, self.hd).transpose(1, 2)
        return k, v

    def _lin(self, h, w):
        return torch.mm(h, w) if self.kn else F.linear(h, w)

    def _residual(self, x, a, w):
        """x + a @ w.T; fused: in the matmul's epilogue (one kernel)."""
        if not self.fused:
            return x + F.linear(a, w)
        return torch.addmm(x, a, w if self.kn else w.t())

    def _attend(self, q, k, v, bias):
        """Attention of one query per row and head: q (rows, heads, 1, hd), k/v (rows, heads, len, hd)."""
        if self.attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=0.0, scale=self.scaling)
        scores = torch.matmul(q * self.scaling, k.transpose(-1, -2)).float()
        if bias is not None and bias.dtype == torch.bool:  # finite, so fully masked rows give 0, not nan
            scores = scores.masked_fill(~bias, torch.finfo(scores.dtype).min)
        elif bias is not None:
            scores = scores + bias
        return torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)

    @staticmethod
    def _ln(x, norm):
        shape, weight, bias, eps = norm
        return F.layer_norm(x, shape, weight, bias, eps)

    def _positions(self, length: int) -> torch.Tensor:
        if length <= self.positions.shape[0]:
            return self.positions
        # as MusicgenSinusoidalPositionalEmbedding.make_weights when the sequence outgrows the table
        table = self._position_module.get_embedding(length, self.D)
        return table.to(self.device, self.dtype)

    def _step(self, x_tok, pos, kv, kv_len, self_bias, cross_k, cross_v, cross_mask, positions, rows):
        """One decoder step for input tokens (batch, K) at position `pos`; returns logits (rows, K, vocab)."""
        batch = x_tok.shape[0]
        # as MusicgenDecoder: sum of the codebook embeddings (in order), then the sinusoidal position
        x = F.embedding(x_tok[:, 0], self.embed[0])
        for k in range(1, self.K):
            x = x + F.embedding(x_tok[:, k], self.embed[k])
        if rows != batch:
            x = torch.cat([x, x], dim=0)
        x = x + positions.index_select(0, pos)
        R, H, hd, D = rows, self.H, self.hd, self.D
        for i, layer in enumerate(self.layers):
            cache = kv[i]  # (2, rows, heads, cache_len, head_dim)
            h = self._ln(x, layer.ln1)
            if self.fused:
                qkv = self._lin(h, layer.qkv)
                q = qkv[:, :D].view(R, 1, H, hd).transpose(1, 2)
                new_kv = qkv[:, D:].view(R, 2, H, hd).permute(1, 0, 2, 3).unsqueeze(3)
            else:
                q = F.linear(h, layer.q).view(R, 1, H, hd).transpose(1, 2)
                k = F.linear(h, layer.k).view(R, 1, H, hd).transpose(1, 2)
                v = F.linear(h, layer.v).view(R, 1, H, hd).transpose(1, 2)
                new_kv = torch.stack([k, v])
            cache.index_copy_(3, pos, new_kv)
            a = self._attend(q, cache[0, :, :, :kv_len], cache[1, :, :, :kv_len], self_bias)
            a = a.transpose(1, 2).reshape(R, D)
            x = self._residual(x, a, layer.o)

            h = self._ln(x, layer.ln2)
            q = self._lin(h, layer.cq).view(R, 1, H, hd).transpose(1, 2)
            a = self._attend(q, cross_k[i], cross_v[i], cross_mask)
            a = a.transpose(1, 2).reshape(R, D)
            x = self._residual(x, a, layer.co)

            h = self._ln(x, layer.ln3)
            if self.gelu_epilogue:
                h = torch._addmm_activation(self._zero_ffn, h, layer.fc1 if self.kn else layer.fc1.t(), use_gelu=True)
            else:
                h = self.act(self._lin(h, layer.fc1))
            x = self._residual(x, h, layer.fc2)
        h = self._ln(x, self.final_ln)
        if self.fused:
            heads = self.heads_stacked if self.kn else self.heads_stacked.transpose(1, 2)
            return torch.matmul(h.unsqueeze(0), heads).transpose(0, 1)
        return torch.stack([F.linear(h, head) for head in self.heads], dim=1)

    def _pick(self, logits, batch, settings, noise):
        """Guided fp32 logits -> tokens (batch, K); also returns the guided logits (for the finiteness check)."""
        cfg, scale, sampled, temperature, top_k = settings
        logits = logits.float()
        guided = guide(logits[:batch], logits[batch:], scale) if cfg else logits
        return choose(guided, temperature, top_k, noise if sampled else None), guided

    # ------------------------------------------------------------------ eager loop (CPU default): transformers op for op

    def _prefill(self, job: _Job, enc_mask, kv, rows) -> torch.Tensor:
        """Run the audio prompt (positions 0..P) through transformers' own decoder in one pass, as
        generate's prefill does; its self-attention keys and values go into `kv`. Returns the logits
        (rows, K, vocab) at position P, which choose the first new token."""
        P = job.prompt_frames
        prefix = job.table[:, :, : P + 1]  # every codebook is held to known tokens up to position P
        ids = prefix.repeat(rows // job.batch, 1, 1).reshape(rows * self.K, P + 1)
        decoder = self.model.decoder
        out = decoder.model.decoder(
            input_ids=ids.to(decoder.device), encoder_hidden_states=job.enc_model_dtype,
            encoder_attention_mask=enc_mask, use_cache=True,
        )  # fmt: skip
        cache = getattr(out, "cache", None) or out.past_key_values
        for i, layer in enumerate(cache.self_attention_cache.layers):
            kv[i, 0, :, :, : P + 1].copy_(layer.keys)
            kv[i, 1, :, :, : P + 1].copy_(layer.values)
        # as MusicgenForCausalLM: every head over every position, then the last position's
        logits = torch.stack([head(out.last_hidden_state) for head in decoder.lm_heads], dim=1)
        return logits[:, :, -1].to(self.device)

    # ------------------------------------------------------------------ eager loop (CPU default): transformers op for op

    def _run_dynamic(self, enc, enc_mask, job: _Job):
        rows = enc.shape[0]
        dev, batch, P = self.device, job.batch, job.prompt_frames
        cross = [self._cross_kv(layer, enc) for layer in self.layers]
        cross_k = [k for k, _ in cross]
        cross_v = [v for _, v in cross]
        # as transformers' sdpa path: a boolean (rows, 1, 1, text) mask
        cross_mask = enc_mask.bool()[:, None, None, :]
        kv = torch.zeros((len(self.layers), 2, rows, self.H, job.steps, self.hd), device=dev, dtype=self.dtype)
        positions = self._positions(job.steps)
        out = torch.zeros((batch, self.K, job.steps), dtype=torch.long, device=dev)
        tok = job.table[:, :, P].clone()
        pos = torch.zeros(1, dtype=torch.long, device=dev)
        bad = torch.zeros((), dtype=torch.bool, device=dev)
        for s in range(P, job.steps):
            if s == P and P:
                logits = self._prefill(job, enc_mask, kv, rows)
            else:
                pos.fill_(s)
                logits = self._step(tok, pos, kv, s + 1, None, cross_k, cross_v, cross_mask, positions, rows)
            chosen, guided = self._pick(logits, batch, job.settings, job.noise.step(s - P) if job.noise is not None else None)
            bad |= ~torch.isfinite(guided).all()
            out[:, :, s] = chosen
            held = job.table[:, :, s + 1]
            tok = torch.where(held < 0, chosen, held)
            if job.on_step:
                job.on_step(1)
        if bool(bad):
            raise NonFiniteLogits(f"non-finite logits in {self.dtype} decoding")
        return out

    # ------------------------------------------------------------------ static loop (CUDA graphs; also runs eagerly)

    def _state(self, batch, rows, text_len, steps, sampled) -> _State:
        cache_len = max(CACHE_ROUND, math.ceil(steps / CACHE_ROUND) * CACHE_ROUND)
        text_pad = max(TEXT_ROUND, math.ceil(text_len / TEXT_ROUND) * TEXT_ROUND)
        key = (batch, rows, text_pad, cache_len, sampled)
        if key in self._states:
            self._states.move_to_end(key)
            return self._states[key]
        while len(self._states) >= MAX_CACHED_STATES:
            self._states.popitem(last=False)
        dev, dt, L = self.device, self.dtype, len(self.layers)
        neg = float("-inf")
        causal = torch.full((cache_len, cache_len), neg, device=dev, dtype=dt).triu_(1)
        st = _State(
            batch=batch, rows=rows, text_len=text_pad, cache_len=cache_len, sampled=sampled,
            tok=torch.full((batch, self.K), self.start, dtype=torch.long, device=dev),
            pos=torch.zeros(1, dtype=torch.long, device=dev),
            kv=torch.zeros((L, 2, rows, self.H, cache_len, self.hd), device=dev, dtype=dt),
            cross_k=torch.zeros((L, rows, self.H, text_pad, self.hd), device=dev, dtype=dt),
            cross_v=torch.zeros((L, rows, self.H, text_pad, self.hd), device=dev, dtype=dt),
            cross_bias=torch.zeros((rows, 1, 1, text_pad), device=dev, dtype=dt),
            self_bias=causal,
            table=torch.zeros((batch, self.K, cache_len + 1), dtype=torch.long, device=dev),
            out=torch.zeros((batch, self.K, cache_len), dtype=torch.long, device=dev),
            bad=torch.zeros(1, dtype=torch.bool, device=dev),
            noise=torch.zeros((cache_len, batch, self.K, self.V), device=dev) if sampled else None,
        )  # fmt: skip
        self._states[key] = st
        return st

    def _static_step(self, st: _State, kv_len: int, settings, positions):
        """The graph body: reads and writes only `st`'s buffers; no host sync, no Python-side step count."""
        bias = st.self_bias[:, :kv_len].index_select(0, st.pos).view(1, 1, 1, kv_len)
        logits = self._step(
            st.tok, st.pos, st.kv, kv_len, bias, st.cross_k, st.cross_v, st.cross_bias, positions, st.rows
        )
        self._static_pick(st, logits, settings)

    def _static_pick(self, st: _State, logits, settings):
        """Choose the tokens of position pos + 1 from the logits at pos, and move on."""
        noise = st.noise.index_select(0, st.pos).squeeze(0) if st.sampled else None
        chosen, guided = self._pick(logits, st.batch, settings, noise)
        st.bad.logical_or_(~torch.isfinite(guided).all().view(1))
        st.out.index_copy_(2, st.pos, chosen.unsqueeze(-1))
        held = st.table.index_select(2, st.pos + 1).view(st.batch, self.K)
        st.tok.copy_(torch.where(held < 0, chosen, held))
        st.pos.add_(1)

    def _run_static(self, enc, enc_mask, job: _Job):
        st, positions = self._prepare_static(enc, enc_mask, job)
        first = job.prompt_frames
        if first:  # the prompt in one pass, then its last position's pick, eagerly
            self._static_pick(st, self._prefill(job, enc_mask, st.kv, st.rows), job.settings)
            first += 1
            if job.on_step:
                job.on_step(1)
        runners = {}
        for s in range(first, job.steps):
            kv_len = min(self.bucket * (s // self.bucket + 1), st.cache_len)
            if kv_len not in runners:
                runners[kv_len] = self._runner(st, kv_len, job.settings, positions)
            runners[kv_len]()
            if job.on_step:
                job.on_step(1)
        if bool(st.bad.item()):
            raise NonFiniteLogits(f"non-finite logits in {self.dtype} decoding")
        return st.out[:, :, : job.steps]

    def _prepare_static(self, enc, enc_mask, job: _Job):
        """Fill the static buffers for this job; returns (state, position table)."""
        rows, text_len, _ = enc.shape
        batch, sampled, P = job.batch, job.settings[2], job.prompt_frames
        st = self._state(batch, rows, text_len, job.steps, sampled)
        positions = self._positions(st.cache_len)
        # Per-batch inputs into the static buffers.
        st.cross_k.zero_()
        st.cross_v.zero_()
        for i, layer in enumerate(self.layers):
            k, v = self._cross_kv(layer, enc)
            st.cross_k[i, :, :, :text_len].copy_(k)
            st.cross_v[i, :, :, :text_len].copy_(v)
        # Conditional rows: 0 where the prompt has a token, -inf on padding. Unconditional rows (CFG) attend
        # with bias 0 over all-zero keys/values: their output is 0, exactly what transformers' fully masked
        # rows give.
        bias = torch.zeros((rows, st.text_len), device=self.device, dtype=self.dtype)
        bias[:batch, :text_len].masked_fill_(~enc_mask[:batch].bool(), float("-inf"))
        bias[:batch, text_len:] = float("-inf")
        st.cross_bias.copy_(bias.view(rows, 1, 1, -1))
        st.table.fill_(self.start)
        st.table[:, :, : job.table.shape[-1]].copy_(job.table)
        if sampled:  # the noise of new token i is read at position P + i
            job.noise.block(job.new_tokens, out=st.noise[P : P + job.new_tokens])
        st.tok.copy_(job.table[:, :, P])
        st.pos.fill_(P)
        st.bad.zero_()
        st.out.zero_()
        return st, positions

    def _runner(self, st: _State, kv_len: int, settings, positions) -> Callable[[], None]:
        if not self.graphs:
            return lambda: self._static_step(st, kv_len, settings, positions)
        key = (kv_len, settings)
        graph = st.graphs.get(key)
        if graph is None:
            graph = self._capture(st, kv_len, settings, positions)
            st.graphs[key] = graph
        return graph.replay

    def _capture(self, st: _State, kv_len: int, settings, positions):
        """Capture one step. Warm-up runs on a side stream first, then the state is put back as it was."""
        saved = (st.tok.clone(), st.pos.clone(), st.bad.clone(), st.out.clone())
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._static_step(st, kv_len, settings, positions)
                st.pos.copy_(saved[1])
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._static_step(st, kv_len, settings, positions)
        for buf, value in zip((st.tok, st.pos, st.bad, st.out), saved):
            buf.copy_(value)
        return graph

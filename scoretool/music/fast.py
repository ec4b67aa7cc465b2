"""A fast MusicGen decode loop: the same tokens as transformers' `generate`, without its per-step overhead.

On a GPU, transformers' MusicGen `generate` is launch-bound (~13 ms a step on an H100 for musicgen-small
whatever the batch or dtype); on a CPU its fp32 matmuls are (~240 ms a step). This loop decodes with the
model's own weights (`decoder.Decoder`) but its own loop:

- a pre-allocated KV cache for self-attention, and the cross-attention K/V of the text encoder output
  computed once per batch;
- classifier-free guidance inside the same batch (conditional rows, then unconditional rows, as
  transformers does), guidance, temperature, top-k and sampling in fp32 on the device, with no host sync
  per step; per-item seeded noise (`sampling.SeededNoise`), so a clip depends only on its prompt, length
  and seed, and the transformers path (`sampling.SeededSampler`) draws the same tokens;
- the delay pattern as a table (`delay.delay_table`), which also holds an audio prompt's codes: a prompt
  (continuing music, as long scenes and `--transition continue` do) runs through transformers' own
  decoder in one pass, as generate's prefill does (its linears in the loop's precision), and the loop
  goes on from its keys and values;
- the decoder in fp32 (the reference), bf16/fp16, or int8 on the CPU (`linears.Int8Linear`: fbgemm's
  int8 GEMM, batch-independent); the text encoder and EnCodec stay in fp32;
- on CUDA: the static step captured in CUDA graphs (`graphs.StaticLoop`), half precision with cuDNN
  attention (fast for the graph's fixed shapes; only slow for generate's ever-changing ones).

On the CPU in fp32 the loop runs eagerly and op for op as transformers computes it, so greedy decoding
gives exactly `generate`'s tokens. `FastMusicgen(static=True, fused=True, graphs=False)` runs the GPU code
path eagerly, which is how the tests exercise it on a machine without a GPU. Anything the loop does not
model is refused up front (`support.unsupported_reason`); the caller then uses `generate`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .codec import audio_codes, decode_codes
from .decoder import Decoder
from .delay import delay_pattern, delay_table
from .graphs import DEFAULT_BUCKET, StaticLoop
from .linears import LinearSwap
from .sampling import SeededNoise, choose, guide
from .support import NonFiniteLogits, Unsupported, unsupported_reason

log = logging.getLogger("scoretool")

DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass
class Job:
    """One `generate_codes` call: what both loops need to know about it."""

    batch: int
    new_tokens: int
    prompt_frames: int  # P: frames of audio prompt (0: none)
    table: torch.Tensor  # delay_table for P + new_tokens + 1 positions
    settings: tuple  # (cfg, guidance scale, sampled, temperature, top_k)
    noise: SeededNoise | None
    on_step: Callable[[int], None] | None
    enc_model_dtype: torch.Tensor  # text encoder output in the model's dtype (for the prompt's prefill)
    lengths: list[int] | None = None  # each item's own new tokens (None: all `new_tokens`)

    @property
    def steps(self) -> int:
        """Decoder input positions: the prompt's (with the start token) and one per new token but the last."""
        return self.prompt_frames + self.new_tokens


class FastMusicgen:
    """Generate MusicGen codes and audio with a hand-written decode loop.

    `dtype`: the decoder's dtype (default fp16 on CUDA, fp32 elsewhere); `int8=True`: int8 linears (CPU
    only, fp32 activations). `precision` names the result (fp32, fp16, bf16, int8). `kv_dtype`: the
    self-attention KV cache's dtype (default: the decoder's; `decoding.fast_loop_options` gives int8 a
    bf16 cache where the CPU has native bf16).
    `static`: fixed-shape step (full static cache with a mask, step counter on the device): needed for CUDA
    graphs; default on CUDA. `fused`: one QKV matmul, residual adds fused into the matmuls, batched LM heads:
    fewer kernels; default on CUDA (off on CPU, where the fp32 loop follows transformers op for op).
    `graphs`: capture the static step in CUDA graphs (CUDA only).
    Tuning knobs for the GPU (see benchmarks/gpu_probe.py): `bucket` (attention-length bucket of the
    graphs), `attention` ("sdpa", or "matmul": explicit matmul/softmax), `sdpa_backends` (CUDA only;
    default cuDNN, then memory-efficient, then math), `blas` (CUDA only: torch's preferred BLAS library
    while decoding), `weights_kn`, `gelu_epilogue` (half only: tanh GELU in fc1's matmul).
    """

    def __init__(
        self, model, device=None, dtype: torch.dtype | None = None, *, int8: bool = False,
        static: bool | None = None, fused: bool | None = None, graphs: bool | None = None,
        bucket: int = DEFAULT_BUCKET, attention: str = "sdpa", sdpa_backends: tuple[str, ...] | None = None,
        blas: str | None = None, weights_kn: bool = False, gelu_epilogue: bool = False,
        kv_dtype: torch.dtype | None = None,
    ):  # fmt: skip
        reason = unsupported_reason(model)
        if reason:
            raise Unsupported(reason)
        if attention not in ("sdpa", "matmul"):
            raise ValueError("attention must be 'sdpa' or 'matmul'")
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.decoder.parameters()).device
        cuda = self.device.type == "cuda"
        if int8 and (self.device.type != "cpu" or dtype not in (None, torch.float32)):
            raise Unsupported("int8 decoding runs on the CPU with fp32 activations only")
        self.dtype = dtype or (torch.float16 if cuda and not int8 else torch.float32)
        self.precision = "int8" if int8 else DTYPE_NAMES.get(self.dtype, str(self.dtype))
        graphs = bool(cuda if graphs is None else graphs) and cuda
        self.static = bool(cuda if static is None else static) or graphs
        self.fused = bool(cuda if fused is None else fused)
        # Measured on an H100 (benchmarks/gpu_probe.py): for the graphed single-token step in half
        # precision cuDNN's attention is the fastest (1.63 vs 2.02 ms a step with the CUTLASS
        # memory-efficient kernel). It is generate's slow path only because generate's shapes change
        # every step. fp32 isn't a cuDNN dtype and falls through to the memory-efficient kernel.
        half = self.dtype != torch.float32
        self.sdpa_backends = tuple(sdpa_backends or (("cudnn", "efficient", "math") if half else ("flash", "efficient", "math")))
        self.blas = blas
        self.decoder = Decoder(
            model, self.device, self.dtype, int8=int8, fused=self.fused, kn=weights_kn, attention=attention,
            gelu_epilogue=gelu_epilogue, cache_dtype=kv_dtype,
        )  # fmt: skip
        cfg, gen = model.config.decoder, model.generation_config
        self.K, self.V = cfg.num_codebooks, cfg.vocab_size
        self.channels = getattr(cfg, "audio_channels", 1)
        self.channel_codebooks = self.K // self.channels
        self.delays = delay_pattern(self.K, self.channels)
        self.start = int(gen.decoder_start_token_id if gen.decoder_start_token_id is not None else gen.bos_token_id)
        self.static_loop = StaticLoop(self.decoder, self.start, self._pick, self._prefill, bucket=bucket, graphs=graphs)
        self._prefill_linears = LinearSwap(model.decoder, self.precision)  # transformers' decoder in this precision

    @property
    def graphs(self) -> bool:
        return self.static_loop.graphs

    # ------------------------------------------------------------------ public API

    def generate_codes(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, new_tokens: int, *,
        prompt_codes: torch.Tensor | None = None, guidance_scale: float | None = 3.0, do_sample: bool = True,
        temperature: float = 1.0, top_k: int = 250, seeds: list[int] | None = None,
        on_step: Callable[[int], None] | None = None, lengths: list[int] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Codes (batch, codebooks, frames) long, as `generate` would pass them to EnCodec.

        `prompt_codes` (batch, codebooks, P): an audio prompt's codes (`audio_codes`), which the music
        continues; the result then starts with them, as generate's does.
        `lengths`: each item's own new tokens (at most `new_tokens`). The CPU's loop stops decoding an
        item once it has them, so the others' steps get cheaper (the int8 matmuls and the attention
        cost more with every row); an item's codes past its own `frames(length)` are meaningless. Its
        own tokens are the same as without `lengths` wherever its rows' results do not depend on the
        batch's size (int8 and bf16; fp32 is left to run every row, as generate does).
        """
        if lengths is not None and (len(lengths) != input_ids.shape[0] or max(lengths) > new_tokens):
            raise ValueError("lengths needs one count per batch item, none over new_tokens")
        self._check(input_ids.shape[0], min(lengths or [new_tokens]), prompt_codes, do_sample, seeds)
        batch = input_ids.shape[0]
        cfg = guidance_scale is not None and guidance_scale > 1
        with torch.inference_mode():
            enc_model_dtype, enc_mask = self._encode(input_ids, attention_mask, cfg)  # transformers' own attention choices
            enc = enc_model_dtype.to(self.dtype)
        frames = prompt_codes.shape[-1] if prompt_codes is not None else 0
        table = delay_table(batch, new_tokens, self.delays, self.channel_codebooks, self.start, frames + new_tokens + 1, prompt_codes)
        settings = (cfg, float(guidance_scale or 1.0), bool(do_sample), float(temperature), int(top_k))
        noise = SeededNoise(seeds, self.K, self.V, self.device) if do_sample else None
        job = Job(batch, new_tokens, frames, table.to(self.device), settings, noise, on_step, enc_model_dtype, lengths)
        with torch.inference_mode(), self._sdpa_backends():
            out = self._run(enc, enc_mask, job)
            return self._undelay(out, table, frames + new_tokens, batch)

    def _check(self, batch, new_tokens, prompt_codes, do_sample, seeds) -> None:
        if new_tokens + 1 < 2 * self.channel_codebooks - 1:
            raise Unsupported(f"{new_tokens} new tokens is too short for the delay pattern")
        if do_sample and (seeds is None or len(seeds) != batch):
            raise ValueError("sampling needs one seed per batch item")
        if prompt_codes is not None and (prompt_codes.ndim != 3 or prompt_codes.shape[:2] != (batch, self.K)):
            raise ValueError(f"prompt_codes must be (batch, {self.K}, frames), not {tuple(prompt_codes.shape)}")

    def _run(self, enc, enc_mask, job: Job) -> torch.Tensor:
        if not self.static:
            return self._run_dynamic(enc, enc_mask, job)
        try:
            return self.static_loop.run(enc, enc_mask, job)
        except (NonFiniteLogits, Unsupported):
            raise
        except Exception as exc:
            if not self.graphs:
                raise
            log.warning("MusicGen fast path: CUDA graphs failed (%s: %s); continuing without graphs", type(exc).__name__, exc)
            self.static_loop.graphs = False
            self.static_loop.clear()
            if job.noise is not None:  # fresh noise for the retry
                job.noise = job.noise.fresh()
            return self.static_loop.run(enc, enc_mask, job)

    def _undelay(self, out, table, length, batch) -> torch.Tensor:
        """The sequence as generate leaves it: held positions from the table, the rest as decoded; then
        each codebook's frames, undelayed."""
        table = table.to(out.device)
        tokens = torch.where(table[:, :, 1 : length + 1] < 0, out[:, :, :length], table[:, :, 1 : length + 1])
        idx = torch.arange(length + 1 - self.channel_codebooks, device=out.device)[None, :]
        idx = idx + torch.tensor(self.delays, device=out.device)[:, None]
        return tokens.gather(2, idx.expand(batch, -1, -1)).clone()

    def audio_codes(self, input_values: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """An audio prompt's EnCodec codes (batch, codebooks, frames), as generate encodes `input_values`."""
        return audio_codes(self.model.audio_encoder, self.channels, input_values, padding_mask)

    def frames(self, new_tokens: int, prompt_frames: int = 0) -> int:
        """Frames of codes (and of audio) that `new_tokens` after an audio prompt of `prompt_frames` give."""
        return prompt_frames + new_tokens + 1 - self.channel_codebooks

    def decode(self, codes: torch.Tensor, frames: list[int] | None = None) -> torch.Tensor:
        """EnCodec audio (batch, channels, samples) float32 for codes (batch, codebooks, frames);
        `frames[i]`: row i's own length (its audio past that is silence)."""
        return decode_codes(self.model.audio_encoder, self.channels, codes, frames)

    def generate(
        self, input_ids, attention_mask, new_tokens: int, *, input_values=None, padding_mask=None, **options
    ) -> torch.Tensor:
        """Audio (batch, channels, samples): `generate_codes` then `decode`. With an audio prompt
        (`input_values`, `padding_mask` as the processor gives them) the audio starts with the codec's
        rendering of the prompt, then goes on, as generate's does."""
        if input_values is not None:
            options["prompt_codes"] = self.audio_codes(input_values, padding_mask)
        codes = self.generate_codes(input_ids, attention_mask, new_tokens, **options)
        lengths, prompt = options.get("lengths"), options.get("prompt_codes")
        prompt_frames = prompt.shape[-1] if prompt is not None else 0
        return self.decode(codes, None if lengths is None else [self.frames(n, prompt_frames) for n in lengths])

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

    def _pick(self, logits, batch, settings, noise):
        """Guided fp32 logits -> tokens (batch, K); also returns the guided logits (for the finiteness check)."""
        cfg, scale, sampled, temperature, top_k = settings
        logits = logits.float()
        guided = guide(logits[:batch], logits[batch:], scale) if cfg else logits
        return choose(guided, temperature, top_k, noise if sampled else None), guided

    def _prefill(self, job: Job, enc_mask, kv, rows) -> torch.Tensor:
        """Run the audio prompt (positions 0..P) through transformers' own decoder in one pass, as
        generate's prefill does (its linears in the loop's precision); its self-attention keys and values
        go into `kv`. Returns the logits (rows, K, vocab) at position P, which choose the first new token."""
        P = job.prompt_frames
        prefix = job.table[:, :, : P + 1]  # every codebook is held to known tokens up to position P
        ids = prefix.repeat(rows // job.batch, 1, 1).reshape(rows * self.K, P + 1)
        decoder = self.model.decoder
        with self._prefill_linears.swapped():
            out = decoder.model.decoder(
                input_ids=ids.to(decoder.device), encoder_hidden_states=job.enc_model_dtype,
                encoder_attention_mask=enc_mask, use_cache=True,
            )  # fmt: skip
            # as MusicgenForCausalLM: every head over every position, then the last position's
            logits = torch.stack([head(out.last_hidden_state) for head in decoder.lm_heads], dim=1)
        cache = getattr(out, "cache", None) or out.past_key_values
        for i, layer in enumerate(cache.self_attention_cache.layers):
            kv[i, 0, :, :, : P + 1].copy_(layer.keys)
            kv[i, 1, :, :, : P + 1].copy_(layer.values)
        return logits[:, :, -1].to(self.device)

    def _run_dynamic(self, enc, enc_mask, job: Job):
        """The eager loop (the CPU's): transformers' step op for op, on a KV cache as long as the job.
        With `job.lengths`, an item leaves the batch (its rows, cache and cross-attention) once done."""
        d, dev, P = self.decoder, self.device, job.prompt_frames
        rows = enc.shape[0]
        cross = [d.cross_kv(layer, enc) for layer in d.layers]
        cross_k, cross_v = [k for k, _ in cross], [v for _, v in cross]
        cross_mask = enc_mask.bool()[:, None, None, :]  # as transformers' sdpa path: a boolean (rows, 1, 1, text) mask
        # empty, not zeros: a step reads only the positions written before it (kv_len = s + 1); zeroing
        # the sample's 73 MB cache cost 40-140 ms
        kv = torch.empty((len(d.layers), 2, rows, d.H, job.steps, d.hd), device=dev, dtype=d.cache_dtype)
        positions = d.positions_for(job.steps)
        out = torch.zeros((job.batch, self.K, job.steps), dtype=torch.long, device=dev)
        ends = [P + n for n in (job.lengths or [job.new_tokens] * job.batch)]  # the step each item is done at
        alive = list(range(job.batch))  # the items still decoding (their rows, in order)
        items = slice(None)  # their index, once one has left (until then: all of them)
        tok = job.table[:, :, P].clone()
        bad = torch.zeros((), dtype=torch.bool, device=dev)
        for s in range(P, job.steps):
            if any(ends[i] <= s for i in alive):
                keep = torch.tensor([k for k, i in enumerate(alive) if ends[i] > s], device=dev)
                kept_rows = torch.cat([keep, keep + len(alive)]) if rows > len(alive) else keep  # with CFG: both halves
                kv = kv.index_select(2, kept_rows)
                cross_k = [k.index_select(0, kept_rows) for k in cross_k]
                cross_v = [v.index_select(0, kept_rows) for v in cross_v]
                alive = [i for i in alive if ends[i] > s]
                cross_mask, tok, rows = cross_mask.index_select(0, kept_rows), tok[keep], len(kept_rows)
                items = torch.tensor(alive, device=dev)
            if s == P and P:
                logits = self._prefill(job, enc_mask, kv, rows)
            else:
                logits = d.step(tok, s, kv, s + 1, None, cross_k, cross_v, cross_mask, positions, rows)
            noise = job.noise.step(s - P) if job.noise is not None else None
            if noise is not None:
                noise = noise[items]
            chosen, guided = self._pick(logits, len(alive), job.settings, noise)
            bad |= ~torch.isfinite(guided).all()
            out[items, :, s] = chosen
            held = job.table[items, :, s + 1]
            tok = torch.where(held < 0, chosen, held)
            if job.on_step:
                job.on_step(1)
        if bool(bad):
            raise NonFiniteLogits(f"non-finite logits in {self.precision} decoding")
        return out

"""The fast loop's static form: fixed shapes, masks and a device-side step counter, so that the
single-token step can be captured in CUDA graphs (one per attention-length bucket, so early steps don't
attend over the whole cache). Without graphs it runs eagerly, which is how the CPU tests exercise it.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .support import NonFiniteLogits

log = logging.getLogger("scoretool")

# Graph buckets: step s attends over the first ceil((s+1)/BUCKET)*BUCKET cache positions.
DEFAULT_BUCKET = 128
# Cache lengths and text lengths are rounded up to these, so that shapes (and graphs) get reused.
CACHE_ROUND = 64
TEXT_ROUND = 32
MAX_CACHED_STATES = 2


@dataclass
class State:
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


class StaticLoop:
    """Runs a job (`fast.Job`) on static buffers; `pick(logits, batch, settings, noise)` is the fast
    loop's token choice, `prefill(job, enc_mask, kv, rows)` its audio-prompt prefill."""

    def __init__(self, decoder, start: int, pick, prefill, *, bucket: int = DEFAULT_BUCKET, graphs: bool = False):
        if bucket % CACHE_ROUND:
            raise ValueError(f"bucket must be a multiple of {CACHE_ROUND}")
        self.decoder, self.start, self.pick, self.prefill = decoder, start, pick, prefill
        self.bucket, self.graphs = bucket, graphs
        self._states: OrderedDict = OrderedDict()
        self._pool = None

    def _state(self, batch, rows, text_len, steps, sampled) -> State:
        cache_len = max(CACHE_ROUND, math.ceil(steps / CACHE_ROUND) * CACHE_ROUND)
        text_pad = max(TEXT_ROUND, math.ceil(text_len / TEXT_ROUND) * TEXT_ROUND)
        key = (batch, rows, text_pad, cache_len, sampled)
        if key in self._states:
            self._states.move_to_end(key)
            return self._states[key]
        while len(self._states) >= MAX_CACHED_STATES:
            self._states.popitem(last=False)
        d = self.decoder
        dev, dt, L, K = d.device, d.dtype, len(d.layers), d.K
        causal = torch.full((cache_len, cache_len), float("-inf"), device=dev, dtype=d.cache_dtype).triu_(1)
        st = State(
            batch=batch, rows=rows, text_len=text_pad, cache_len=cache_len, sampled=sampled,
            tok=torch.full((batch, K), self.start, dtype=torch.long, device=dev),
            pos=torch.zeros(1, dtype=torch.long, device=dev),
            kv=torch.zeros((L, 2, rows, d.H, cache_len, d.hd), device=dev, dtype=d.cache_dtype),
            cross_k=torch.zeros((L, rows, d.H, text_pad, d.hd), device=dev, dtype=dt),
            cross_v=torch.zeros((L, rows, d.H, text_pad, d.hd), device=dev, dtype=dt),
            cross_bias=torch.zeros((rows, 1, 1, text_pad), device=dev, dtype=dt),
            self_bias=causal,
            table=torch.zeros((batch, K, cache_len + 1), dtype=torch.long, device=dev),
            out=torch.zeros((batch, K, cache_len), dtype=torch.long, device=dev),
            bad=torch.zeros(1, dtype=torch.bool, device=dev),
            noise=torch.zeros((cache_len, batch, K, d.V), device=dev) if sampled else None,
        )  # fmt: skip
        self._states[key] = st
        return st

    def clear(self) -> None:
        self._states.clear()

    def _step(self, st: State, kv_len: int, settings, positions):
        """The graph body: reads and writes only `st`'s buffers; no host sync, no Python-side step count."""
        bias = st.self_bias[:, :kv_len].index_select(0, st.pos).view(1, 1, 1, kv_len)
        logits = self.decoder.step(st.tok, st.pos, st.kv, kv_len, bias, st.cross_k, st.cross_v, st.cross_bias, positions, st.rows)
        self._pick(st, logits, settings)

    def _pick(self, st: State, logits, settings):
        """Choose the tokens of position pos + 1 from the logits at pos, and move on."""
        noise = st.noise.index_select(0, st.pos).squeeze(0) if st.sampled else None
        chosen, guided = self.pick(logits, st.batch, settings, noise)
        st.bad.logical_or_(~torch.isfinite(guided).all().view(1))
        st.out.index_copy_(2, st.pos, chosen.unsqueeze(-1))
        held = st.table.index_select(2, st.pos + 1).view(st.batch, self.decoder.K)
        st.tok.copy_(torch.where(held < 0, chosen, held))
        st.pos.add_(1)

    def run(self, enc, enc_mask, job) -> torch.Tensor:
        """Raw tokens (batch, K, steps) of `job`."""
        st, positions = self._prepare(enc, enc_mask, job)
        first = job.prompt_frames
        if first:  # the prompt in one pass, then its last position's pick, eagerly
            self._pick(st, self.prefill(job, enc_mask, st.kv, st.rows), job.settings)
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
            raise NonFiniteLogits(f"non-finite logits in {self.decoder.dtype} decoding")
        return st.out[:, :, : job.steps]

    def _prepare(self, enc, enc_mask, job):
        """Fill the static buffers for this job; returns (state, position table)."""
        rows, text_len, _ = enc.shape
        batch, sampled, P = job.batch, job.settings[2], job.prompt_frames
        st = self._state(batch, rows, text_len, job.steps, sampled)
        positions = self.decoder.positions_for(st.cache_len)
        st.cross_k.zero_()
        st.cross_v.zero_()
        for i, layer in enumerate(self.decoder.layers):
            k, v = self.decoder.cross_kv(layer, enc)
            st.cross_k[i, :, :, :text_len].copy_(k)
            st.cross_v[i, :, :, :text_len].copy_(v)
        # Conditional rows: 0 where the prompt has a token, -inf on padding. Unconditional rows (CFG) attend
        # with bias 0 over all-zero keys/values: their output is 0, exactly what transformers' fully masked
        # rows give.
        bias = torch.zeros((rows, st.text_len), device=enc.device, dtype=st.cross_bias.dtype)
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

    def _runner(self, st: State, kv_len: int, settings, positions) -> Callable[[], None]:
        if not self.graphs:
            return lambda: self._step(st, kv_len, settings, positions)
        key = (kv_len, settings)
        graph = st.graphs.get(key)
        if graph is None:
            graph = self._capture(st, kv_len, settings, positions)
            st.graphs[key] = graph
        return graph.replay

    def _capture(self, st: State, kv_len: int, settings, positions):
        """Capture one step. Warm-up runs on a side stream first, then the state is put back as it was."""
        device = self.decoder.device
        saved = (st.tok.clone(), st.pos.clone(), st.bad.clone(), st.out.clone())
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step(st, kv_len, settings, positions)
                st.pos.copy_(saved[1])
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._step(st, kv_len, settings, positions)
        for buf, value in zip((st.tok, st.pos, st.bad, st.out), saved):
            buf.copy_(value)
        return graph

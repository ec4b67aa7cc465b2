"""MusicGen's decoder as the fast loop runs it: its weights in the loop's layout, and one decoding step.

The weights are the model's own, in the decoder's precision: fp32 (the same tensors: no copy), fp16 or
bf16 (copies, activations and KV cache in that dtype too), or int8 (`int8.Int8Linear` for every
per-step projection and the LM heads, q/k/v and the four heads each fused into one GEMM, on
`int8_kernel`'s few-row kernel where it runs; activations and norms stay fp32). The self-attention
KV cache is in `cache_dtype` (default: the decoder's dtype; int8 keeps it in bf16 on CPUs with
native bf16: at a few hundred positions reading the cache costs as much as reading the int8
weights, and bf16 halves it). Logits leave in fp32, so guidance and sampling
are fp32 at every precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import memory
from ..int8 import Int8Linear, fuse_groups

Weight = torch.Tensor | Int8Linear


@dataclass
class Layer:
    ln1: tuple
    ln2: tuple
    ln3: tuple
    q: Weight | None
    k: Weight | None
    v: Weight | None
    o: Weight
    cq: Weight
    ck: Weight
    cv: Weight
    co: Weight
    fc1: Weight
    fc2: Weight
    qkv: Weight | None = None  # fused [q; k; v] (fused or int8 decoding)


class Decoder:
    """`fused`: one QKV matmul, residual adds in the matmuls' epilogue, batched LM heads (fewer kernels);
    off, the step follows transformers op for op. `int8`: int8 linears (CPU). `kn`: (in, out) weight
    layout for the fused matmuls. `attention`: "sdpa" or "matmul". `gelu_epilogue`: tanh GELU in fc1's
    matmul (half precision, fused only). `cache_dtype`: the self-attention KV cache's dtype (None: `dtype`)."""

    def __init__(self, model, device, dtype, *, int8=False, fused=False, kn=False, attention="sdpa", gelu_epilogue=False,
                 cache_dtype=None):
        from transformers.activations import ACT2FN

        cfg = model.config.decoder
        self.device, self.dtype, self.int8 = device, dtype, int8
        self.cache_dtype = cache_dtype or dtype
        self.fused = fused and not int8  # int8 fuses its own way (Int8Linear.fused)
        self.kn = kn and self.fused
        self.attention = attention
        self.K, self.V, self.D, self.H = cfg.num_codebooks, cfg.vocab_size, cfg.hidden_size, cfg.num_attention_heads
        self.hd = self.D // self.H
        self.scaling = self.hd**-0.5  # as MusicgenAttention
        self.act = ACT2FN[cfg.activation_function]
        decoder = model.decoder.model.decoder
        with torch.no_grad():
            self.layers = [self._layer(layer) for layer in decoder.layers]
            self.final_ln = self._ln(decoder.layer_norm)
            self.embed = [self._w(e.weight) for e in decoder.embed_tokens]
            self._load_heads(list(model.decoder.lm_heads))
            self.positions = self._w(decoder.embed_positions.weights)
            if int8:
                self._fuse_int8(decoder.layers, list(model.decoder.lm_heads))
        self.kernel_layers = self._kernel_layers() if int8 else None
        self._position_module = decoder.embed_positions
        self.gelu_epilogue = bool(gelu_epilogue) and self.fused and dtype != torch.float32
        self._zero_ffn = torch.zeros(cfg.ffn_dim, device=device, dtype=dtype) if self.gelu_epilogue else None

    # ------------------------------------------------------------------ weights

    def _w(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(self.device, self.dtype)

    def _ln(self, m: torch.nn.LayerNorm) -> tuple:
        return (m.normalized_shape, self._w(m.weight), self._w(m.bias), m.eps)

    def _proj(self, linear: torch.nn.Module) -> Weight:
        return self._int8(linear) if self.int8 else self._w(linear.weight)

    @staticmethod
    def _int8(linear: torch.nn.Module) -> Int8Linear:
        """The model's own int8 layer where it holds one (`int8.quantize_linears`), else an int8 copy."""
        return linear if isinstance(linear, Int8Linear) else Int8Linear.quantize(linear.weight, on_kernel=True)

    def _layer(self, layer) -> Layer:
        sa, ca = layer.self_attn, layer.encoder_attn
        p = self._proj
        entry = Layer(
            ln1=self._ln(layer.self_attn_layer_norm), ln2=self._ln(layer.encoder_attn_layer_norm),
            ln3=self._ln(layer.final_layer_norm), q=None, k=None, v=None, o=p(sa.out_proj),
            cq=p(ca.q_proj), ck=p(ca.k_proj), cv=p(ca.v_proj), co=p(ca.out_proj), fc1=p(layer.fc1), fc2=p(layer.fc2),
        )  # fmt: skip
        if self.fused:
            entry.qkv = torch.cat([self._w(sa.q_proj.weight), self._w(sa.k_proj.weight), self._w(sa.v_proj.weight)])
        elif not self.int8:  # int8 fuses q, k, v for all layers at once (_fuse_int8)
            entry.q, entry.k, entry.v = p(sa.q_proj), p(sa.k_proj), p(sa.v_proj)
        if self.kn:
            for name in ("qkv", "o", "cq", "co", "fc1", "fc2"):
                setattr(entry, name, getattr(entry, name).t().contiguous())
        return entry

    def _fuse_int8(self, layers, heads: list[torch.nn.Module]) -> None:
        """int8: each layer's q, k, v as one GEMM, and the four LM heads as one, built a few at a time
        on a thread per core (`int8.fuse_groups`: unpacking, joining and packing again)."""
        groups = [[self._int8(a.q_proj), self._int8(a.k_proj), self._int8(a.v_proj)] for a in (x.self_attn for x in layers)]
        *qkv, self.heads_int8 = fuse_groups(groups + [[self._int8(h) for h in heads]])
        for entry, fused in zip(self.layers, qkv):
            entry.qkv = fused
        memory.trim()  # the unpacked and joined int8 copies

    def _kernel_layers(self) -> list | None:
        """Each layer's step as one call of the int8 kernel (`int8_kernel.DecoderLayer`), where every
        projection runs on it and the activation is transformers' exact GELU; else None (torch's ops)."""
        from transformers.activations import GELUActivation

        from ..int8_kernel import DecoderLayer, fused_layer_reason

        names = ("qkv", "o", "cq", "co", "fc1", "fc2")
        if fused_layer_reason() is not None or not isinstance(self.act, GELUActivation) or str(self.device) != "cpu":
            return None
        if not all(getattr(entry, name).on_kernel for entry in self.layers for name in names):
            return None
        return [
            DecoderLayer((e.ln1[1:], e.ln2[1:], e.ln3[1:]), {n: getattr(e, n)._rows for n in names}, self.H, self.hd, self.scaling)
            for e in self.layers
        ]

    def _load_heads(self, heads: list[torch.nn.Module]) -> None:
        self.heads = [self._w(h.weight) for h in heads] if not self.int8 else []
        self.heads_int8 = None  # int8: see _fuse_int8
        self.heads_stacked = torch.stack(self.heads).contiguous() if self.fused else None
        if self.kn:
            self.heads_stacked = self.heads_stacked.transpose(1, 2).contiguous()  # (K, hidden, vocab)

    def positions_for(self, length: int) -> torch.Tensor:
        """The sinusoidal position table, at least `length` long."""
        if length <= self.positions.shape[0]:
            return self.positions
        # as MusicgenSinusoidalPositionalEmbedding.make_weights when the sequence outgrows the table
        return self._position_module.get_embedding(length, self.D).to(self.device, self.dtype)

    # ------------------------------------------------------------------ pieces of a step

    def cross_kv(self, layer: Layer, enc: torch.Tensor):
        """Cross-attention keys and values (rows, heads, text, head_dim) of the text encoder output."""
        rows, length, _ = enc.shape
        k = self._lin(enc, layer.ck).view(rows, length, self.H, self.hd).transpose(1, 2)
        v = self._lin(enc, layer.cv).view(rows, length, self.H, self.hd).transpose(1, 2)
        if self.kernel_layers:  # the kernel reads them in this layout
            return k.contiguous(), v.contiguous()
        return k, v

    def _lin(self, h, w):
        if isinstance(w, Int8Linear):
            return w.forward(h)  # not through nn.Module.__call__: its hooks cost ~10 us a call
        return torch.mm(h, w) if self.kn else F.linear(h, w)

    def _residual(self, x, a, w):
        """x + a @ w.T; fused: in the matmul's epilogue (one kernel)."""
        if not self.fused:
            return x + self._lin(a, w)
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
    def _norm(x, norm):
        shape, weight, bias, eps = norm
        return F.layer_norm(x, shape, weight, bias, eps)

    def _self_qkv(self, h, layer: Layer, rows: int):
        """This step's query (rows, heads, 1, hd) and new key/value (2, rows, heads, 1, hd)."""
        R, H, hd, D = rows, self.H, self.hd, self.D
        if layer.qkv is not None:
            qkv = self._lin(h, layer.qkv)
            q = qkv[:, :D].view(R, 1, H, hd).transpose(1, 2)
            return q, qkv[:, D:].view(R, 2, H, hd).permute(1, 0, 2, 3).unsqueeze(3)
        q = F.linear(h, layer.q).view(R, 1, H, hd).transpose(1, 2)
        k = F.linear(h, layer.k).view(R, 1, H, hd).transpose(1, 2)
        v = F.linear(h, layer.v).view(R, 1, H, hd).transpose(1, 2)
        return q, torch.stack([k, v])

    def _feed_forward(self, x, layer: Layer):
        h = self._norm(x, layer.ln3)
        if self.gelu_epilogue:
            h = torch._addmm_activation(self._zero_ffn, h, layer.fc1 if self.kn else layer.fc1.t(), use_gelu=True)
        else:
            h = self.act(self._lin(h, layer.fc1))
        return self._residual(x, h, layer.fc2)

    def _logits(self, h, rows: int) -> torch.Tensor:
        if self.heads_int8 is not None:
            return self.heads_int8.forward(h).view(rows, self.K, self.V)
        if self.fused:
            heads = self.heads_stacked if self.kn else self.heads_stacked.transpose(1, 2)
            return torch.matmul(h.unsqueeze(0), heads).transpose(0, 1)
        return torch.stack([F.linear(h, head) for head in self.heads], dim=1)

    # ------------------------------------------------------------------ the step

    def step(self, x_tok, pos, kv, kv_len, self_bias, cross_k, cross_v, cross_mask, positions, rows):
        """One decoder step for input tokens (batch, K) at position `pos`; returns logits (rows, K, vocab).
        `pos`: an int (the eager loop: plain slicing, the cheapest on a CPU) or a one-element tensor on
        the device (the static loop: its CUDA graphs replay with the position read from memory)."""
        # as MusicgenDecoder: sum of the codebook embeddings (in order), then the sinusoidal position
        x = F.embedding(x_tok[:, 0], self.embed[0])
        for k in range(1, self.K):
            x = x + F.embedding(x_tok[:, k], self.embed[k])
        if rows != x_tok.shape[0]:
            x = torch.cat([x, x], dim=0)
        x = x + (positions[pos] if isinstance(pos, int) else positions.index_select(0, pos))
        if self.kernel_layers and isinstance(pos, int) and self_bias is None:
            mask = cross_mask.reshape(rows, -1)
            for i, layer in enumerate(self.kernel_layers):
                layer.step(x, kv[i], pos, cross_k[i], cross_v[i], mask)
            return self._logits(self._norm(x, self.final_ln), rows)
        for i, layer in enumerate(self.layers):
            cache = kv[i]  # (2, rows, heads, cache_len, head_dim)
            q, new_kv = self._self_qkv(self._norm(x, layer.ln1), layer, rows)
            if isinstance(pos, int):
                cache[:, :, :, pos].copy_(new_kv[:, :, :, 0])  # casts as it copies
            else:
                cache.index_copy_(3, pos, new_kv.to(self.cache_dtype))
            a = self._attend(q.to(self.cache_dtype), cache[0, :, :, :kv_len], cache[1, :, :, :kv_len], self_bias).to(x.dtype)
            x = self._residual(x, a.transpose(1, 2).reshape(rows, self.D), layer.o)
            q = self._lin(self._norm(x, layer.ln2), layer.cq).view(rows, 1, self.H, self.hd).transpose(1, 2)
            a = self._attend(q, cross_k[i], cross_v[i], cross_mask)
            x = self._residual(x, a.transpose(1, 2).reshape(rows, self.D), layer.co)
            x = self._feed_forward(x, layer)
        return self._logits(self._norm(x, self.final_ln), rows)

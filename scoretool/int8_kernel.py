"""scoretool's CPU kernels: an int8 matrix product made for a few rows (MusicGen's decoding step runs on
it; BLIP's int8 layers too), with AVX-512 VNNI or AMX, a MusicGen decoder layer's step in one call, and
bf16 attention for BLIP's vision encoder (`attention`, AVX-512 BF16).

Why: a decoding step multiplies 2-16 rows (each clip's conditional and unconditional row) by ~360 MB
of int8 weights, so it is bound by how fast the weights stream from memory. On this project's 2-core
Xeon fbgemm's dynamic int8 GEMM streams them at 10-14 GB/s where a plain read reaches ~25 GB/s (and
MKL's fp32 GEMM ~20 GB/s); this kernel (`kernels/int8_rows.c`) streams them at 15-26 GB/s
(benchmarks/precision_speed.py measures both). With more rows VNNI's multiply-adds, not the memory,
start to bound it (one `vpdpbusd` a cycle covers 64 weights for one row); on a CPU with AMX (Sapphire
Rapids and later) calls of 5 rows or more go through AMX's int8 tiles, 16 rows at once, with the same
int32 sums (and so the same bits) as VNNI (below 5 rows VNNI measured faster). It also quantizes each row on its own with 8 bits
(fbgemm's path here: 7 bits) in the same call, in place of the ~8 small torch ops `int8.Int8Linear`
wraps fbgemm in, and sums the products exactly in int32, so a row's result is bit for bit the same
whatever shares its call.

It is compiled once per machine with the C compiler (`cc`, or $CC), kept in the cache folder's
`kernels/`, and loaded with ctypes; it runs on torch's own OpenMP threads (it links `libgomp.so.1`,
the library torch has loaded). Where it cannot be built or run (no compiler, a CPU without AVX-512
VNNI, SCORETOOL_INT8_KERNEL=0), `unavailable_reason()` says why and int8 layers stay on fbgemm.
`uses_amx()` says whether it runs on AMX (SCORETOOL_INT8_AMX=0: VNNI even where AMX is there).
Many rows (BLIP's vision encoder: 577 an image) go in chunks that stay in the core's cache
(kernels/int8_rows.c); there the kernel runs at ~60 % of the cores' VNNI peak and beats fbgemm's
path, whose ~8 torch ops around the GEMM cost more than the GEMM's own gap.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import torch

from .cpu_flags import cpu_flags

log = logging.getLogger("scoretool")

KERNELS = Path(__file__).with_name("kernels")
SOURCES = (KERNELS / "int8_rows.c", KERNELS / "int8_layer.c", KERNELS / "attention_bf16.c")  # and int8_rows.h
HEADER = KERNELS / "int8_rows.h"
FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-fopenmp", "-shared", "-fPIC")
AMX_FLAGS = ("-mamx-tile", "-mamx-int8")  # a compiler without them (gcc < 11) builds the VNNI path only
STALE_DAYS = 30  # a build no run has used for this long is removed (`_sweep`)
BF16_FLAGS = ("-mavx512bf16",)  # gcc >= 10: `attention`; without it, attention stays torch's
NEEDS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")  # /proc/cpuinfo flags
AMX_NEEDS = ("amx_tile", "amx_int8")
TILE = 64  # output channels per packed tile (kernels/int8_rows.c)
DEPTH = 64  # inputs are padded to a multiple of this (an AMX tile's 64 bytes of a row)


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC") or "cc")


def _build(compiler: str) -> Path:
    """The kernel built with AMX and AVX-512 BF16 where the compiler can, else with what it can. A
    build kept from an earlier run is used as it is: one with fewer flags is there only because the
    builds with more failed with this same compiler (the name hashes it), so they are not tried again."""
    from .cache import default_dir

    folder = default_dir() / "kernels"
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    sources = "\0".join([*(path.read_text() for path in (*SOURCES, HEADER)), compiler, version])
    choices = [(flags, folder / _library_name(sources, flags))
               for flags in (FLAGS + AMX_FLAGS + BF16_FLAGS, FLAGS + BF16_FLAGS, FLAGS)]  # fmt: skip
    for _, library in choices:
        if library.is_file():
            os.utime(library)  # in use: `_sweep` keeps it
            return library
    folder.mkdir(parents=True, exist_ok=True)
    _sweep(folder)
    for flags, library in choices[:-1]:
        try:
            return _compile(compiler, flags, library)
        except subprocess.CalledProcessError:
            pass
    return _compile(compiler, *choices[-1])


def _library_name(sources: str, flags: tuple[str, ...]) -> str:
    """The build's file name: a hash of the sources, the compiler and its version (`sources`) and the flags."""
    tag = hashlib.sha256("\0".join([sources, *flags]).encode()).hexdigest()[:16]
    return f"int8_rows-{tag}.so"


def _compile(compiler: str, flags: tuple[str, ...], library: Path) -> Path:
    """`library` compiled (to a temp file, then renamed: another process may build it too)."""
    partial = library.with_name(f"{library.name}.{os.getpid()}-{threading.get_ident()}.part")
    try:
        command = [compiler, *flags, *map(str, SOURCES), "-o", str(partial)]
        subprocess.run(command, capture_output=True, text=True, check=True)
        os.replace(partial, library)
    finally:
        partial.unlink(missing_ok=True)
    return library


def _sweep(folder: Path) -> None:
    """Before a build: remove builds no run has used for STALE_DAYS (other versions' sources) and
    temp files a killed build left (a build takes seconds)."""
    now = time.time()
    for path in folder.iterdir():
        try:
            age = now - path.stat().st_mtime
            if (path.suffix == ".so" and age > STALE_DAYS * 86400) or (path.suffix == ".part" and age > 3600):
                path.unlink()
        except OSError:  # another process removed it first, or may not
            pass


_LOADING = threading.Lock()  # int8 layers are built on several threads: one of them builds the kernel


def _library() -> tuple[ctypes.CDLL | None, str | None]:
    with _LOADING:
        return _library_once()


@functools.cache
def _library_once() -> tuple[ctypes.CDLL | None, str | None]:
    lib, reason = _load()
    if reason:
        log.info("int8: fbgemm's kernels only: the few-row int8 kernel %s", reason)
    return lib, reason


def _load() -> tuple[ctypes.CDLL | None, str | None]:
    if _off("SCORETOOL_INT8_KERNEL"):
        return None, "is turned off (SCORETOOL_INT8_KERNEL)"
    missing = [flag for flag in NEEDS if flag not in cpu_flags()]
    if missing:
        return None, f"needs {', '.join(missing)}, which this CPU lacks"
    compiler = _compiler()
    if compiler is None:
        return None, f"has no C compiler ({os.environ.get('CC') or 'cc'}) to build it"
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or "").strip().splitlines()
        return None, f"did not compile ({lines[-1] if lines else f'{compiler} failed'})"
    except OSError as exc:
        return None, f"could not be built or loaded ({exc})"
    lib.int8_rows_linear.restype = ctypes.c_int
    lib.int8_rows_linear.argtypes = [ctypes.c_void_p, *[ctypes.c_int64] * 3, ctypes.c_void_p, *[ctypes.c_int64] * 2,
                                     *[ctypes.c_void_p] * 4, ctypes.c_int, ctypes.c_int]  # fmt: skip
    lib.int8_rows_amx_ready.restype = ctypes.c_int
    lib.kernels_attention_ready.restype = ctypes.c_int
    lib.attention_bf16.restype = ctypes.c_int
    lib.attention_bf16.argtypes = [ctypes.c_void_p, *[ctypes.c_int64] * 3, ctypes.c_float, ctypes.c_void_p]
    lib.int8_decoder_layer.restype = ctypes.c_int
    lib.int8_decoder_layer.argtypes = [ctypes.c_void_p, *[ctypes.c_int64] * 3, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                       ctypes.c_float, ctypes.c_int]  # fmt: skip
    return lib, None


def _off(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in ("0", "false", "no", "off")


@functools.cache
def uses_amx() -> bool:
    """Whether the kernel runs on AMX here: the CPU has it, the kernel was built with it, Linux lets
    this process use its tiles, and SCORETOOL_INT8_AMX is not 0."""
    lib, _ = _library()
    if lib is None or _off("SCORETOOL_INT8_AMX") or not all(flag in cpu_flags() for flag in AMX_NEEDS):
        return False
    return bool(lib.int8_rows_amx_ready())


def attention_unavailable_reason() -> str | None:
    """Why `attention` cannot run here, or None where it can."""
    lib, reason = _library()
    if lib is None:
        return f"the kernels' library {reason}"
    if _off("SCORETOOL_BF16_ATTENTION"):
        return "it is turned off (SCORETOOL_BF16_ATTENTION)"
    if "avx512_bf16" not in cpu_flags():
        return "it needs avx512_bf16, which this CPU lacks"
    if not lib.kernels_attention_ready():
        return "the C compiler could not build it (-mavx512bf16)"
    return None


def attention(qkv: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """softmax(scale q k^T) v for every head, no mask, with bf16 products and fp32 sums
    (kernels/attention_bf16.c): qkv (batch, tokens, 3 * heads * 64) fp32, as a fused qkv Linear writes
    it; returns (batch, tokens, heads * 64) fp32. Where `attention_unavailable_reason()` is None."""
    batch, tokens, three_width = qkv.shape
    if qkv.dtype != torch.float32 or three_width != 3 * heads * 64:
        raise ValueError(f"the bf16 attention kernel takes fp32 qkv with heads of 64, not {qkv.dtype} {tuple(qkv.shape)}")
    qkv = qkv.contiguous()
    out = torch.empty((batch, tokens, heads * 64), dtype=torch.float32)
    if _library()[0].attention_bf16(qkv.data_ptr(), batch, tokens, heads, scale, out.data_ptr()):
        raise MemoryError("the bf16 attention kernel could not allocate its scratch")
    return out


def unavailable_reason() -> str | None:
    """Why the kernel cannot run here, or None where it can (built on the first call)."""
    return _library()[1]


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class RowsWeight:
    """An int8 weight (out, in) with its per-channel scales, packed for the kernel."""

    def __init__(self, int8: torch.Tensor, scale: torch.Tensor, rowsum: torch.Tensor, bias: torch.Tensor | None):
        out_features, in_features = int8.shape
        n_pad, k_pad = _padded(out_features, TILE), _padded(in_features, DEPTH)
        if (n_pad, k_pad) != (out_features, in_features):
            w = torch.zeros((n_pad, k_pad), dtype=torch.int8)
            w[:out_features, :in_features] = int8
            int8 = w
        # tiles of 64 channels, each: for every 4 inputs, the 64 channels' 4 bytes in a row
        packed = int8.view(n_pad // TILE, TILE, k_pad // 4, 4).transpose(1, 2).contiguous()
        self._hold(packed, out_features, in_features, scale, rowsum, bias)

    @classmethod
    def joined(cls, parts: list[RowsWeight]) -> RowsWeight:
        """One weight for bias-free parts that read the same input, their outputs one after another.
        Parts of whole tiles (out_features a multiple of 64: q, k, v; LM heads) join tile by tile, with
        no unpacking; others are unpacked, joined and packed again."""
        if any(p.bias is not None for p in parts) or len({p.in_features for p in parts}) != 1:
            raise ValueError("joined weights take the same input and have no bias")
        rowsum = torch.cat([p.rowsum[: p.out_features] for p in parts])
        scale = torch.cat([p.scale[: p.out_features] for p in parts])
        if any(p.out_features % TILE for p in parts):
            return cls(torch.cat([p.int8() for p in parts]), scale, rowsum, None)
        joined = cls.__new__(cls)
        joined._hold(torch.cat([p.packed for p in parts]), len(scale), parts[0].in_features, scale, rowsum, None)
        return joined

    def _hold(self, packed, out_features: int, in_features: int, scale, rowsum, bias) -> None:
        lib, reason = _library()
        if lib is None:
            raise RuntimeError(f"the int8 rows kernel can't run: {reason}")
        self._lib, self.packed = lib, packed
        self.out_features, self.in_features = out_features, in_features
        self.k_pad, self.n_pad = _padded(in_features, DEPTH), _padded(out_features, TILE)
        self._amx = int(uses_amx())
        self.scale, self.rowsum = self._channels(scale), self._channels(rowsum)
        self.bias = None if bias is None else self._channels(bias)
        self._packed_ptr, self._scale_ptr, self._rowsum_ptr = (t.data_ptr() for t in (self.packed, self.scale, self.rowsum))
        self._bias_ptr = None if self.bias is None else self.bias.data_ptr()

    def _channels(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.n_pad, dtype=torch.float32)
        out[: self.out_features] = values.detach().float()
        return out

    def int8(self) -> torch.Tensor:
        """The int8 weight (out, in), unpacked."""
        w = self.packed.transpose(1, 2).reshape(self.n_pad, self.k_pad)
        return w[: self.out_features, : self.in_features].contiguous()

    def channel_scales(self) -> torch.Tensor:
        return self.scale[: self.out_features].clone()

    def linear(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        """x (rows, in) -> (rows, out) fp32; `gelu`: GELU (erf) of it, in the same pass."""
        if x.dtype != torch.float32 or not x.is_contiguous():
            x = x.float().contiguous()
        rows = x.shape[0]
        y = torch.empty((rows, self.out_features), dtype=torch.float32)
        if rows and self._lib.int8_rows_linear(
            x.data_ptr(), rows, self.in_features, self.k_pad, self._packed_ptr, self.out_features, self.n_pad,
            self._scale_ptr, self._rowsum_ptr, self._bias_ptr, y.data_ptr(), int(gelu), self._amx,
        ):  # fmt: skip
            raise MemoryError("the int8 rows kernel could not allocate its scratch")
        return y

    def struct(self) -> _Packed:
        """This weight as kernels/int8_rows.h's `packed_linear`."""
        return _Packed(self._packed_ptr, self._scale_ptr, self._rowsum_ptr, self._bias_ptr,
                       self.in_features, self.k_pad, self.out_features, self.n_pad)  # fmt: skip


# kernels/int8_rows.h's and kernels/int8_layer.c's structures
class _Packed(ctypes.Structure):
    _fields_ = [("w", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("rowsum", ctypes.c_void_p),
                ("bias", ctypes.c_void_p), *[(name, ctypes.c_int64) for name in ("k_in", "k_pad", "n_out", "n_pad")]]  # fmt: skip


class _Norm(ctypes.Structure):
    _fields_ = [("weight", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("eps", ctypes.c_float)]


class _Layer(ctypes.Structure):
    _fields_ = [*[(name, _Norm) for name in ("ln1", "ln2", "ln3")],
                *[(name, _Packed) for name in ("qkv", "o", "cq", "co", "fc1", "fc2")]]  # fmt: skip


class _KV(ctypes.Structure):
    _fields_ = [("k", ctypes.c_void_p), ("v", ctypes.c_void_p), ("length", ctypes.c_int64), ("bf16", ctypes.c_int)]


def describe() -> str:
    """How the kernel runs here (for `auto`'s reason), where it runs at all."""
    amx = ["AMX from 5 rows"] if uses_amx() else []
    layer = ["a decoder layer a call"] if fused_layer_reason() is None else []
    return ", ".join(["AVX-512 VNNI", *amx, *layer])


def fused_layer_reason() -> str | None:
    """Why decoding steps cannot run whole layers in the kernel (`DecoderLayer`), or None where they can."""
    if _off("SCORETOOL_INT8_LAYER"):
        return "is turned off (SCORETOOL_INT8_LAYER)"
    return unavailable_reason()


def _kv(keys: torch.Tensor, values: torch.Tensor) -> _KV:
    """Keys and values (rows, heads, length, head_dim), fp32 or bf16, each contiguous."""
    if keys.dtype not in (torch.float32, torch.bfloat16) or not (keys.is_contiguous() and values.is_contiguous()):
        raise ValueError(f"the fused int8 layer needs contiguous fp32 or bf16 keys and values, not {keys.dtype}")
    return _KV(keys.data_ptr(), values.data_ptr(), keys.shape[2], int(keys.dtype == torch.bfloat16))


class DecoderLayer:
    """One MusicGen decoder layer's decoding step in one call (kernels/int8_layer.c): the layer norms
    (`norms`: three (weight, bias, eps)), the int8 projections on the kernel (`linears`: qkv, o, cq, co,
    fc1, fc2 as `RowsWeight`s), attention over the KV cache and the text, the GELU. The same arithmetic
    as the layer's torch ops, not the same bits: its sums run in another order."""

    def __init__(self, norms, linears: dict[str, RowsWeight], heads: int, head_dim: int, scaling: float):
        self._lib, _ = _library()
        self._tensors = [t.detach().float().contiguous() for weight, bias, _ in norms for t in (weight, bias)]
        made = [_Norm(self._tensors[2 * i].data_ptr(), self._tensors[2 * i + 1].data_ptr(), eps) for i, (_, _, eps) in enumerate(norms)]
        self._linears = linears  # keeps their tensors alive
        self._layer = _Layer(*made, *(linears[name].struct() for name in ("qkv", "o", "cq", "co", "fc1", "fc2")))
        self.heads, self.head_dim, self.scaling = heads, head_dim, scaling
        self._amx = int(uses_amx())

    def step(self, x: torch.Tensor, cache: torch.Tensor, pos: int, cross_k: torch.Tensor, cross_v: torch.Tensor,
             cross_mask: torch.Tensor) -> None:  # fmt: skip
        """x (rows, hidden) fp32 contiguous, in place. `cache`: this layer's (2, rows, heads, length, head_dim)
        keys and values, positions before `pos` filled (this step's go in at `pos`); `cross_k`/`cross_v`
        (rows, heads, text, head_dim) fp32, `cross_mask` (rows, text) bool: which text positions a row sees."""
        rows = x.shape[0]
        self_kv, text_kv = _kv(cache[0], cache[1]), _kv(cross_k, cross_v)
        if not (x.dtype == torch.float32 and x.is_contiguous() and cross_mask.dtype == torch.bool and cross_mask.is_contiguous()):
            raise ValueError("the fused int8 layer needs a contiguous fp32 x and a contiguous bool mask")
        if self._lib.int8_decoder_layer(
            x.data_ptr(), rows, self.heads, self.head_dim, ctypes.byref(self._layer), ctypes.byref(self_kv), pos,
            ctypes.byref(text_kv), cross_k.shape[2], cross_mask.data_ptr(), self.scaling, self._amx,
        ):  # fmt: skip
            raise MemoryError("the fused int8 layer could not allocate its scratch")

"""A few-row int8 matrix product for the CPU, with AVX-512 VNNI: MusicGen's decoding step runs on it.

Why: a decoding step multiplies 2-16 rows (each clip's conditional and unconditional row) by ~360 MB
of int8 weights, so it is bound by how fast the weights stream from memory. On this project's 2-core
Xeon fbgemm's dynamic int8 GEMM streams them at 10-14 GB/s where a plain read reaches ~25 GB/s (and
MKL's fp32 GEMM ~20 GB/s); this kernel (`kernels/int8_rows.c`, ~60 lines) streams them at 15-26 GB/s
(benchmarks/precision_speed.py measures both). It also quantizes each row on its own with 8 bits
(fbgemm's path here: 7 bits) in the same call, in place of the ~8 small torch ops `int8.Int8Linear`
wraps fbgemm in, and sums the products exactly in int32, so a row's result is bit for bit the same
whatever shares its call.

It is compiled once per machine with the C compiler (`cc`, or $CC), kept in the cache folder's
`kernels/`, and loaded with ctypes; it runs on torch's own OpenMP threads (it links `libgomp.so.1`,
the library torch has loaded). Where it cannot be built or run (no compiler, a CPU without AVX-512
VNNI, SCORETOOL_INT8_KERNEL=0), `unavailable_reason()` says why and int8 layers stay on fbgemm.
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
from pathlib import Path

import torch

from .cpu_flags import cpu_flags

log = logging.getLogger("scoretool")

SOURCE = Path(__file__).with_name("kernels") / "int8_rows.c"
FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512vnni", "-fopenmp", "-shared", "-fPIC")
NEEDS = ("avx512f", "avx512bw", "avx512_vnni")  # /proc/cpuinfo flags
TILE = 64  # output channels per packed tile (kernels/int8_rows.c)


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC") or "cc")


def _build(compiler: str) -> Path:
    """The compiled kernel in the cache folder, built (to a temp file, then renamed) if not there yet."""
    from .cache import default_dir

    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    tag = hashlib.sha256("\0".join([SOURCE.read_text(), *FLAGS, compiler, version]).encode()).hexdigest()[:16]
    library = default_dir() / "kernels" / f"int8_rows-{tag}.so"
    if library.is_file():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_name(f"{library.name}.{os.getpid()}-{threading.get_ident()}.part")  # another process may build it too
    try:
        subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(partial)], capture_output=True, text=True, check=True)
        os.replace(partial, library)
    finally:
        partial.unlink(missing_ok=True)
    return library


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
    if os.environ.get("SCORETOOL_INT8_KERNEL", "").strip().lower() in ("0", "false", "no", "off"):
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
                                     *[ctypes.c_void_p] * 4]  # fmt: skip
    return lib, None


def unavailable_reason() -> str | None:
    """Why the kernel cannot run here, or None where it can (built on the first call)."""
    return _library()[1]


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class RowsWeight:
    """An int8 weight (out, in) with its per-channel scales, packed for the kernel."""

    def __init__(self, int8: torch.Tensor, scale: torch.Tensor, rowsum: torch.Tensor, bias: torch.Tensor | None):
        lib, reason = _library()
        if lib is None:
            raise RuntimeError(f"the int8 rows kernel can't run: {reason}")
        self._lib = lib
        self.out_features, self.in_features = int8.shape
        self.k_pad, self.n_pad = _padded(self.in_features, 4), _padded(self.out_features, TILE)
        w = torch.zeros((self.n_pad, self.k_pad), dtype=torch.int8)
        w[: self.out_features, : self.in_features] = int8
        # tiles of 64 channels, each: for every 4 inputs, the 64 channels' 4 bytes in a row
        self.packed = w.view(self.n_pad // TILE, TILE, self.k_pad // 4, 4).transpose(1, 2).contiguous()
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

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """x (rows, in) -> (rows, out) fp32."""
        if x.dtype != torch.float32 or not x.is_contiguous():
            x = x.float().contiguous()
        rows = x.shape[0]
        y = torch.empty((rows, self.out_features), dtype=torch.float32)
        if rows and self._lib.int8_rows_linear(
            x.data_ptr(), rows, self.in_features, self.k_pad, self._packed_ptr, self.out_features, self.n_pad,
            self._scale_ptr, self._rowsum_ptr, self._bias_ptr, y.data_ptr(),
        ):  # fmt: skip
            raise MemoryError("the int8 rows kernel could not allocate its scratch")
        return y

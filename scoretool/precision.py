"""Which precision a model runs in: `--precision auto|fp32|fp16|bf16|int8`, resolved per device.

`auto` picks, per device, the fastest precision this machine runs well; `choose` says which and why
(the console and `--json` repeat the reason). fp32 is the reference path everywhere.

On a CPU the choice follows what the CPU and this torch build can do, read from torch
(`torch.backends.cpu.get_cpu_capability()`, the quantized engines) and /proc/cpuinfo's flags, no
calibration run: int8 (fbgemm's int8 GEMM, ~10x fp32 per decoder matmul on an AVX2 or AVX-512 CPU)
wherever fbgemm runs with AVX2 or better, for MusicGen, and for BLIP but on CPUs with AMX, where BLIP
runs in bf16 on the matrix units; else, for MusicGen, bf16 where the
CPU has native bf16 (avx512_bf16 or AMX; without it bf16 matmuls are emulated and no faster than
fp32); else fp32. `fallback` names the precision
to try when one fails at load or while running (int8 -> bf16 where it is native -> fp32).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from .cpu_flags import cpu_flags
from .errors import ScoreToolError

Role = Literal["music", "caption"]
# fbgemm's int8 kernels need AVX2; "DEFAULT" (no AVX2) gets its slow reference path.
INT8_CAPABILITIES = ("AVX2", "AVX512")
AMX_BF16 = "amx_bf16"
NATIVE_BF16_FLAGS = ("avx512_bf16", AMX_BF16)


@dataclass(frozen=True)
class Choice:
    precision: str  # concrete: fp32 | fp16 | bf16 | int8
    why: str


@dataclass(frozen=True)
class CpuKernels:
    """What this CPU and torch build run fast (read once per process)."""

    capability: str  # torch's CPU capability: DEFAULT, AVX2, AVX512, ...
    flags: frozenset[str]  # /proc/cpuinfo flags (empty where there is none)
    int8_missing: str | None  # why fbgemm's int8 kernels can't run here, or None

    @property
    def int8(self) -> bool:
        return self.int8_missing is None and self.capability in INT8_CAPABILITIES

    @property
    def native_bf16(self) -> list[str]:
        return [f for f in NATIVE_BF16_FLAGS if f in self.flags]


@functools.cache
def cpu_kernels() -> CpuKernels:
    import torch

    from .int8 import int8_unavailable_reason

    return CpuKernels(torch.backends.cpu.get_cpu_capability(), cpu_flags(), int8_unavailable_reason())


def machine_summary() -> dict:
    """What `auto` decided from, for benchmarks and reports."""
    k = cpu_kernels()
    marks = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return {"cpu_capability": k.capability, "cpu_flags": [f for f in marks if f in k.flags], "int8_missing": k.int8_missing}


def choose(requested: str, device: str, role: Role) -> Choice:
    """The precision to load a `role` model in on `device`, for `--precision requested`."""
    cuda = device.startswith("cuda")
    if requested not in ("auto", "fp32", "fp16", "bf16", "int8"):
        raise ScoreToolError(f"unknown --precision {requested!r}: use auto, fp32, fp16, bf16 or int8")
    if requested == "fp16" and not cuda:
        raise ScoreToolError(f"--precision fp16 runs on a CUDA GPU only, not on {device}: use bf16 or int8")
    if requested == "int8" and device != "cpu":
        raise ScoreToolError(f"--precision int8 runs on the CPU only, not on {device}: use fp16 or bf16")
    if requested != "auto":
        return Choice(requested, f"--precision {requested}")
    if cuda:
        if role == "music":
            return Choice("fp16", "auto: fp16 on CUDA")
        return Choice("fp32", "auto: BLIP stays in fp32 on CUDA")
    if device != "cpu":
        return Choice("fp32", f"auto: fp32 on {device}")
    if role == "caption":
        return _cpu_caption()
    return _cpu_music()


def _cpu_caption() -> Choice:
    # BLIP's vision encoder is bound by arithmetic (577 patch tokens an image). With AMX, oneDNN runs
    # bf16 products on its matrix units: bf16 BLIP measured 2.5x fp32 and 1.5x int8 (on fbgemm) on an
    # AMX Xeon, and nearer fp32 (teacher-forced KL 0.00004 vs int8's 0.00026). Without AMX (the EPYC's
    # AVX-512 BF16), bf16 BLIP measured 1.8x fp32 and int8 on scoretool's kernels 3.1x and more.
    k = cpu_kernels()
    if AMX_BF16 in k.flags:
        return Choice("bf16", "auto: BLIP in bf16 on this CPU (AMX bf16 matrix units)")
    if k.int8:
        return Choice("int8", f"auto: BLIP in int8 on this CPU ({_caption_kernels(k)})")
    return Choice("fp32", f"auto: BLIP in fp32 on this CPU (no fast int8: {k.int8_missing or k.capability})")


def _caption_kernels(k: CpuKernels) -> str:
    from .int8_kernel import attention_unavailable_reason, unavailable_reason

    why_not = unavailable_reason()
    if why_not is not None:
        return f"fbgemm int8 kernels, {k.capability}; scoretool's int8 kernel {why_not}"
    attention = "with heads of 64 in bf16 products, AVX-512 BF16" if attention_unavailable_reason() is None else "in fp32"
    return f"scoretool's int8 kernel, AVX-512 VNNI; vision attention {attention}"


def _cpu_music() -> Choice:
    from .int8_kernel import describe, unavailable_reason

    k = cpu_kernels()
    if k.int8:
        why_not = unavailable_reason()
        steps = f"decoding on the few-row int8 kernel: {describe()}" if why_not is None else f"the few-row int8 kernel {why_not}"
        return Choice("int8", f"auto: int8 on this CPU (fbgemm int8 kernels, {k.capability}; {steps})")
    if k.native_bf16:
        return Choice("bf16", f"auto: bf16 on this CPU (native bf16: {', '.join(k.native_bf16)})")
    missing = k.int8_missing or f"CPU capability {k.capability}"
    return Choice("fp32", f"auto: fp32 on this CPU (no fast int8: {missing}; no native bf16)")


def fallback(precision: str, device: str) -> str | None:
    """The precision to try when `precision` fails on `device` (None: fp32 failed, nothing is left)."""
    if precision == "int8" and cpu_kernels().native_bf16:
        return "bf16"
    return None if precision == "fp32" else "fp32"

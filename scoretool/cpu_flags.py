"""The CPU's feature flags (Linux's /proc/cpuinfo), which `precision` and `int8_kernel` decide from."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The flags of the first CPU listed (avx512_vnni, amx_bf16, ...); empty where there is no cpuinfo."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()

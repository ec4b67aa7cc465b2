"""Handing freed memory back to the system.

glibc keeps what large freed blocks leave in its heap for reuse; quantizing a model frees hundreds of
MB of temporaries (each fp32 weight read, its absolute values, the unpacked int8 parts of a fused
layer), which would then count in the process's memory for the rest of the run. `trim()` returns
them (glibc's `malloc_trim`); where there is no glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to call
        return None


def trim() -> None:
    """Give the heap's free pages back to the system."""
    malloc_trim = _malloc_trim()
    if malloc_trim is not None:
        malloc_trim(0)

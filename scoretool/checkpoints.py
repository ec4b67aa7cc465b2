"""Single tensors read from a model folder's safetensors files with plain file reads.

transformers maps a safetensors checkpoint into memory, and the loaded parameters are views of that
mapping: a page becomes part of the process (its RSS) when something reads it, and stays so while the
model lives. Reading a weight with a file read instead leaves the mapping's pages untouched; that is
how a model quantized at load (`int8.quantize_linears`) never holds its fp32 weights in memory.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a JSON
header {name: {dtype, shape, data_offsets: [begin, end]}} and the data; a sharded checkpoint has a
`model.safetensors.index.json` whose `weight_map` names each tensor's file.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64, "I8": torch.int8}


class Checkpoint:
    """The tensors of a model folder's safetensors files, by name."""

    def __init__(self, entries: dict[str, tuple[Path, dict, int]]):
        self._entries = entries  # name -> (file, header entry, offset of the data)

    @classmethod
    def find(cls, folder: str | os.PathLike | None) -> Checkpoint | None:
        """The checkpoint in `folder`, or None where it holds no safetensors (or can't be read)."""
        if folder is None or not os.path.isdir(folder):
            return None
        folder = Path(folder)
        try:
            index = folder / "model.safetensors.index.json"
            if index.is_file():
                files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            elif (folder / "model.safetensors").is_file():
                files = ["model.safetensors"]
            else:
                return None
            entries = {}
            for name in files:
                entries.update(_header(folder / name))
            return cls(entries)
        except (OSError, ValueError, KeyError):
            return None

    @classmethod
    def open(cls, path: str | os.PathLike) -> Checkpoint | None:
        """The tensors of one safetensors file, or None where it is missing or unreadable."""
        try:
            return cls(_header(Path(path)))
        except (OSError, ValueError, KeyError, struct.error):
            return None

    def names(self) -> set[str]:
        return set(self._entries)

    def tensor(self, name: str) -> torch.Tensor | None:
        """The tensor `name` (a float or int8 dtype), or None where the checkpoint has no such tensor."""
        entry = self._entries.get(name)
        if entry is None or entry[1].get("dtype") not in DTYPES:
            return None
        path, info, data_start = entry
        begin, end = info["data_offsets"]
        data = bytearray(end - begin)
        with open(path, "rb") as f:
            f.seek(data_start + begin)
            if not data or f.readinto(data) != len(data):
                return None
        return torch.frombuffer(data, dtype=DTYPES[info["dtype"]]).reshape(info["shape"])


def _header(path: Path) -> dict[str, tuple[Path, dict, int]]:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return {name: (path, info, 8 + length) for name, info in header.items()}

"""Making a model part int8 at load: from the int8 store where an earlier run kept its layers, else
quantized from the checkpoint (each fp32 weight read from the file, see `checkpoints`) and then kept.

Quantizing musicgen-small's decoder (420 M weights) costs several seconds on 2 CPU cores at every
load; rebuilding its layers from their int8 state costs about a third of that (fbgemm's prepacking
only). The store is one safetensors file per model part in the cache folder's `int8/`, named by a
hash of the checkpoint's identity (`cache.model_identity`: its folder, its files' sizes and times),
the part, torch's version and `FORMAT`, so a changed checkpoint or torch is quantized again. A store
that cannot be read is quantized again; one that cannot be written is a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .checkpoints import Checkpoint
from .errors import ScoreToolError
from .int8 import Int8Linear, quantize_linears

log = logging.getLogger("scoretool")

FORMAT = 1  # of the stored state (Int8Linear.state): bump when it changes
SEP = "::"  # between a layer's name and its state's key in the file


def store_path(folder: str, part: str) -> Path:
    from . import cache

    name = cache.key(cache.model_identity(os.path.abspath(folder)), part, torch.__version__, FORMAT)
    return cache.default_dir() / "int8" / f"{name[:32]}.safetensors"


class StoredLayers:
    """The layers of an int8 store by name, each read from the file when asked for (so a model's
    int8 weights are never in memory twice while its layers are rebuilt)."""

    def __init__(self, stored: Checkpoint):
        self._file = stored
        self._keys: dict[str, list[str]] = {}
        for full in stored.names():
            layer, _, key = full.rpartition(SEP)
            self._keys.setdefault(layer, []).append(key)
        self.damaged = False  # a tensor could not be read: write the store again

    def keys(self):
        return self._keys.keys()

    def get(self, name: str) -> dict[str, torch.Tensor] | None:
        state = {key: self._file.tensor(f"{name}{SEP}{key}") for key in self._keys.get(name, [])}
        if not state or any(t is None for t in state.values()):
            self.damaged = self.damaged or bool(state)
            return None
        return state


def read_store(path: Path) -> StoredLayers | None:
    stored = Checkpoint.open(path)
    return None if stored is None else StoredLayers(stored)


def write_store(path: Path, layers: dict[str, Int8Linear]) -> None:
    from safetensors.torch import save_file

    from .files import write_atomic

    flat = {f"{name}{SEP}{key}": t.contiguous() for name, layer in layers.items() for key, t in layer.state().items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(str(path), lambda tmp: save_file(flat, tmp))
    except (OSError, ScoreToolError) as exc:
        log.warning("int8 weights not kept for the next run: %s", exc)


def in_place(folder: str | None) -> Callable[..., None]:
    """`to_int8(module, prefix, skip=..., on_kernel=...)`: `module`'s Linear layers (but those `skip(name)`
    names) replaced by int8 ones (`int8.Int8Linear`, with `on_kernel`), in place; `prefix` is the module's name in the model (its weights' names in
    the checkpoint start with it). Without a local `folder` (nothing to read or key by) the layers are
    quantized from their own weights."""
    checkpoint = Checkpoint.find(folder)

    def to_int8(module: torch.nn.Module, prefix: str, skip: Callable[[str], bool] = lambda name: False,
                on_kernel: bool = False) -> None:  # fmt: skip
        if checkpoint is None:
            quantize_linears(module, skip=skip, on_kernel=on_kernel)
            return
        path = store_path(folder, prefix)
        stored = read_store(path)
        read = lambda name: checkpoint.tensor(f"{prefix}.{name}.weight")  # noqa: E731
        layers = quantize_linears(module, read, stored, skip, on_kernel)
        if stored is None or stored.damaged or stored.keys() != layers.keys():
            write_store(path, layers)

    return to_int8

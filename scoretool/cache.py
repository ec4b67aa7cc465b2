"""A content-addressed cache of captions, prompts and generated clips.

Each entry is keyed by a hash of everything that determines it (frame pixels, model identity,
settings, prompt, seed, duration), so editing one scene's prompt re-renders that scene only.
Entries are written through `files.write_atomic`, so an interrupted run never leaves a broken one;
a write that fails (disk full, read-only folder) is a warning, never a failed run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from .errors import OutputError
from .files import write_bytes_atomic

log = logging.getLogger("scoretool")


def default_dir() -> Path:
    """$SCORETOOL_CACHE_DIR, else the platform's user cache folder (~/.cache/scoretool on Linux)."""
    import platformdirs

    return Path(os.environ.get("SCORETOOL_CACHE_DIR") or platformdirs.user_cache_dir("scoretool"))


def key(*parts) -> str:
    """A stable hash of JSON-able parts (numpy arrays and bytes are hashed by content)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()


def model_identity(model: str) -> str:
    """A hub id stands for itself; a local folder also by its config and weights' size and time,
    so rebuilding a folder under the same path doesn't serve stale entries."""
    if not os.path.isdir(model):
        return model
    stamps = []
    for name in sorted(os.listdir(model)):
        if name.endswith((".json", ".safetensors", ".bin", ".model")):
            st = os.stat(os.path.join(model, name))
            stamps.append((name, st.st_size, st.st_mtime_ns))
    return key(os.path.abspath(model), stamps)


class Cache:
    """`get`/`put` of numpy arrays and JSON values under a kind ("clip", "caption", "prompt")."""

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True):
        self.root = Path(root) if root else default_dir()
        self.enabled = enabled
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.warned = False  # a failed write was reported

    def _path(self, kind: str, k: str, suffix: str) -> Path:
        return self.root / kind / k[:2] / f"{k}{suffix}"

    def get_array(self, kind: str, k: str) -> np.ndarray | None:
        return self._get(kind, k, ".npy", lambda p: np.load(p, allow_pickle=False))

    def put_array(self, kind: str, k: str, value: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        self._put(kind, k, ".npy", buffer.getvalue())

    def get_json(self, kind: str, k: str):
        return self._get(kind, k, ".json", lambda p: json.loads(p.read_text(encoding="utf-8")))

    def put_json(self, kind: str, k: str, value) -> None:
        self._put(kind, k, ".json", json.dumps(value, ensure_ascii=False).encode())

    def _get(self, kind, k, suffix, read):
        if self.enabled:
            path = self._path(kind, k, suffix)
            try:
                value = read(path)
            except (OSError, ValueError):  # absent, or damaged by something outside our control
                pass
            else:
                self.hits[kind] += 1
                return value
        self.misses[kind] += 1
        return None

    def _put(self, kind, k, suffix, data: bytes) -> None:
        if not self.enabled:
            return
        path = self._path(kind, k, suffix)
        try:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"Cannot write {path}: {e.strerror or e}.") from None
            write_bytes_atomic(str(path), data)
        except OutputError as e:  # a full or read-only cache must never fail a render: say so once
            if not self.warned:
                self.warned = True
                log.warning("Warning: %s The run goes on without caching it.", e)

    def stats(self) -> dict:
        kinds = sorted(set(self.hits) | set(self.misses))
        return {kind: {"hits": self.hits[kind], "misses": self.misses[kind]} for kind in kinds}

    def info(self) -> dict:
        entries, size = Counter(), Counter()
        if self.root.is_dir():
            for path in self.root.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    kind = path.relative_to(self.root).parts[0]
                    entries[kind] += 1
                    size[kind] += path.stat().st_size
        return {"path": str(self.root), "entries": dict(entries), "bytes": sum(size.values())}

    def clear(self) -> int:
        """Remove every entry; returns the bytes freed."""
        freed = self.info()["bytes"]
        if self.root.is_dir():
            shutil.rmtree(self.root)
        return freed

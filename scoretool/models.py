"""Model names, where their files come from, and which device runs them.

A model argument is an alias (`musicgen-small`), a Hugging Face id, or a local folder. Files come
from the folder, else the Hugging Face cache, else the hub; when none of these works, the user
gets one line naming the model and the fix, not a 30-second retry loop and a traceback.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse

from .errors import ModelUnavailable

ALIASES = {
    "blip-base": "Salesforce/blip-image-captioning-base",
    "blip-large": "Salesforce/blip-image-captioning-large",
    "musicgen-small": "facebook/musicgen-small",
    "musicgen-medium": "facebook/musicgen-medium",
    "musicgen-large": "facebook/musicgen-large",
    "musicgen-stereo-small": "facebook/musicgen-stereo-small",
}

T = TypeVar("T")


def resolve(name: str) -> str:
    """An alias becomes its Hugging Face id; an id or a folder stays as it is."""
    return ALIASES.get(name, name)


def _cached_snapshot(repo_id: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached, or not a valid repo id: both mean "not here"
        return None


def local_folder(name: str) -> str | None:
    """The folder a model loaded from: the folder itself, or the hub id's cached snapshot (None: neither)."""
    model_id = resolve(name)
    return model_id if os.path.isdir(model_id) else _cached_snapshot(model_id)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load(name: str, role: str, loader: Callable[[str], T]) -> T:
    """Call `loader(source)` with a local folder or a hub id, turning every failure into one line.

    `role` names the option in messages, e.g. "music model (--music-model)".
    """
    _quiet_transformers()
    model_id = resolve(name)
    if os.path.isdir(model_id):
        source = model_id
    elif model_id.startswith((".", "/", "~")) or model_id.count("/") > 1:  # a path, not a hub id
        raise ModelUnavailable(f"{role}: folder not found: {model_id}")
    else:
        source = _cached_snapshot(model_id)
        if source is None:
            if not _hub_reachable():
                raise ModelUnavailable(
                    f"{role} '{model_id}' is not in the Hugging Face cache and the hub cannot be reached: "
                    f"run `scoretool models fetch` where there is network, or pass a local model folder"
                )
            source = model_id
    try:
        return loader(source)
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(f"{role} '{model_id}' could not be loaded: {first_line}") from None


def _quiet_transformers() -> None:
    """transformers' loading bars and config notes would break through our own progress display."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def pick_device(device: str = "auto") -> str:
    """`auto` picks CUDA, then Apple's MPS, then the CPU."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelUnavailable(f"--device {device} was asked for, but no CUDA GPU is available")
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# What `from_pretrained` needs; skips the duplicate TF/Flax/.bin weights some repos also carry.
FETCH_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.spm"]


def fetch(name: str) -> str:
    """Download a model into the Hugging Face cache so later runs work offline. Returns its folder."""
    from huggingface_hub import snapshot_download

    model_id = resolve(name)
    if os.path.isdir(model_id):
        return model_id
    if not _hub_reachable():
        raise ModelUnavailable(f"cannot fetch '{model_id}': the Hugging Face hub cannot be reached from here")
    try:
        return snapshot_download(model_id, allow_patterns=FETCH_PATTERNS)
    except Exception as exc:  # hub errors come in many classes; the user needs the first line
        raise ModelUnavailable(f"cannot fetch '{model_id}': {str(exc).strip().splitlines()[0]}") from None

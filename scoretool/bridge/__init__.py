"""Bridge stage: from what the pictures show to what the music should sound like.

Two protocols. `LLM` is a chat model (`complete(system, messages) -> str`): the Anthropic and
local backends implement it, and `LLMBridge` (llm.py) turns any LLM into a `Bridge`, checking
every answer and falling back to the offline bridge per step. `Bridge` is what the pipeline
calls; the `offline` and `none` backends implement it directly.

Every `Bridge` method returns an `Answer`: the text plus where it came from (`source`) and, when
a step fell back to the offline bridge, why (`reason`). The plan records both per scene.

    load_bridge("auto")       # anthropic if ANTHROPIC_API_KEY is set, else offline
    load_bridge("anthropic", llm_model="claude-haiku-5-5")
    load_bridge("local", llm_model="Qwen/Qwen2.5-0.5B-Instruct", device="cpu")
    load_bridge("offline") / load_bridge("none")
"""

from __future__ import annotations

import os
from typing import Literal, get_args

from .base import API_KEY_ENV, PROMPT_LIMIT, LLM, Answer, Bridge, LLMError, LLMUnavailable, trim_prompt

__all__ = [
    "API_KEY_ENV", "BACKENDS", "BRIDGES", "PROMPT_LIMIT", "LLM", "Answer", "Bridge", "BridgeName", "LLMError",
    "LLMUnavailable", "load_bridge", "resolve_bridge", "trim_prompt",
]


def resolve_bridge(name: str) -> tuple[str, str]:
    """`auto` becomes `anthropic` when ANTHROPIC_API_KEY is set, else `offline`. Returns (name, why)."""
    if name != "auto":
        return name, f"--bridge {name}"
    if os.environ.get(API_KEY_ENV, "").strip():
        return "anthropic", f"{API_KEY_ENV} is set"
    return "offline", f"{API_KEY_ENV} is not set; --bridge local runs a local LLM"


def _offline(llm_model, device, **options) -> Bridge:
    from .offline import OfflineBridge

    return OfflineBridge()


def _passthrough(llm_model, device, **options) -> Bridge:
    from .passthrough import PassthroughBridge

    return PassthroughBridge()


def _anthropic(llm_model, device, **options) -> Bridge:
    from .anthropic_llm import AnthropicLLM
    from .llm import LLMBridge

    return LLMBridge(AnthropicLLM.from_env(model=llm_model, **options))


def _local(llm_model, device, **options) -> Bridge:
    from ..models import pick_device
    from .llm import LLMBridge
    from .local_llm import LocalLLM

    return LLMBridge(LocalLLM(llm_model, device=pick_device(device), **options))


# Each backend by its own name (the name its answers are recorded under); `auto` picks one of them.
BACKENDS = {"anthropic": _anthropic, "local": _local, "offline": _offline, "none": _passthrough}
BRIDGES = ("auto", *BACKENDS)
BridgeName = Literal["auto", "anthropic", "local", "offline", "none"]
assert get_args(BridgeName) == BRIDGES, "BridgeName must list BRIDGES"


def load_bridge(name: str, llm_model: str | None = None, device: str = "auto", **llm_options) -> Bridge:
    """The one factory. `llm_options` go to the LLM backend (e.g. timeout, retries for anthropic)."""
    name, _ = resolve_bridge(name)
    if name not in BACKENDS:
        raise ValueError(f"unknown bridge '{name}' (choose from {', '.join(BRIDGES)})")
    return BACKENDS[name](llm_model, device, **llm_options)



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
from dataclasses import dataclass
from typing import Protocol

from ..errors import ScoreToolError

PROMPT_LIMIT = 200
BRIDGES = ("auto", "anthropic", "local", "offline", "none")
API_KEY_ENV = "ANTHROPIC_API_KEY"


@dataclass(frozen=True)
class Answer:
    """One bridge step's result. `source`: "anthropic", "local", "offline", "none" or
    "offline-fallback" (the LLM failed; `reason` says how)."""

    text: str
    source: str
    reason: str | None = None

    def __str__(self) -> str:
        return self.text


class LLM(Protocol):
    name: str  # "anthropic", "local": recorded as the source of its answers
    model: str  # the model id, recorded in the plan's settings
    concurrency: int  # how many calls may run at once

    def complete(self, system: str, messages: list[dict[str, str]], max_tokens: int = 256) -> str:
        """The assistant's reply to `messages` (`{"role": "user"|"assistant", "content": ...}`).

        Raises `LLMError` when no answer could be had (after the backend's own retries), and
        `LLMUnavailable` when no call can succeed (a bad key, an unknown model): that stops the run.
        """
        ...


class Bridge(Protocol):
    name: str

    def scene_caption(self, frame_captions: list[str], user_prompt: str | None = None) -> Answer:
        """One short caption for a scene from its frames' captions; the user's prompt wins conflicts."""
        ...

    def video_summary(self, scene_captions: list[str]) -> Answer:
        """One line about the whole video, shared by every scene's prompt so they sound like one score."""
        ...

    def music_prompt(
        self, caption: str, *, summary: str | None, user_prompt: str | None, kind: str, style: str | None = None
    ) -> Answer:
        """A music prompt under PROMPT_LIMIT characters; `kind` is "video" or "image".

        Priority: `user_prompt` > `style` (a preset's description, when presets set one) > the picture.
        """
        ...


class LLMError(Exception):
    """One call got no usable answer (timeout, rate limit or server error after retries): the
    step falls back to the offline bridge. The message is safe to store in a plan."""


class LLMUnavailable(ScoreToolError):
    """No call to this LLM can succeed (bad key, unknown model, missing key): the run stops."""


def resolve_bridge(name: str) -> tuple[str, str]:
    """`auto` becomes `anthropic` when ANTHROPIC_API_KEY is set, else `offline`. Returns (name, why)."""
    if name != "auto":
        return name, f"--bridge {name}"
    if os.environ.get(API_KEY_ENV, "").strip():
        return "anthropic", f"{API_KEY_ENV} is set"
    return "offline", f"{API_KEY_ENV} is not set; --bridge local runs a local LLM"


def load_bridge(name: str, llm_model: str | None = None, device: str = "auto", **llm_options) -> Bridge:
    """The one factory. `llm_options` go to the LLM backend (e.g. timeout, retries for anthropic)."""
    name, _ = resolve_bridge(name)
    if name == "offline":
        from .offline import OfflineBridge

        return OfflineBridge()
    if name == "none":
        from .passthrough import PassthroughBridge

        return PassthroughBridge()
    if name == "anthropic":
        from .anthropic_llm import AnthropicLLM
        from .llm import LLMBridge

        return LLMBridge(AnthropicLLM.from_env(model=llm_model, **llm_options))
    if name == "local":
        from ..models import pick_device
        from .llm import LLMBridge
        from .local_llm import LocalLLM

        return LLMBridge(LocalLLM(llm_model, device=pick_device(device), **llm_options))
    raise ValueError(f"unknown bridge '{name}' (choose from {', '.join(BRIDGES)})")


_DANGLING = frozenset("and with in of a an the at for to by or on from into over under that which while then as but so".split())


def trim_prompt(text: str, limit: int = PROMPT_LIMIT) -> str:
    """Cut at the last word boundary within `limit`, dropping a dangling comma, 'and', 'with'..."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    cut = cut.rsplit(" ", 1)[0] if " " in cut else cut[:limit]
    words = cut.rstrip(" ,;:-(").split(" ")
    while len(words) > 1 and words[-1].lower().strip(",;:-") in _DANGLING:
        words.pop()
    cut = " ".join(words).rstrip(" ,;:-(")
    if cut.count("(") > cut.count(")"):
        cut = cut[: cut.rindex("(")].rstrip(" ,;:-")
    return cut

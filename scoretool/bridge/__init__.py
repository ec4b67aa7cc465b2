"""Bridge stage: from what the pictures show to what the music should sound like.

Two protocols. `LLM` is a chat model (`complete(system, messages) -> str`): the Anthropic and
local backends implement it, and an LLM-driven `Bridge` turns it into captions and prompts.
`Bridge` is what the pipeline calls; the `offline` and `none` backends implement it directly.
"""

from __future__ import annotations

from typing import Protocol


class LLM(Protocol):
    name: str

    def complete(self, system: str, messages: list[dict[str, str]], max_tokens: int = 256) -> str:
        """The assistant's reply to `messages` (`{"role": "user"|"assistant", "content": ...}`)."""
        ...


class Bridge(Protocol):
    name: str

    def scene_caption(self, frame_captions: list[str], user_prompt: str | None = None) -> str:
        """One short caption for a scene from its frames' captions; the user's prompt wins conflicts."""
        ...

    def video_summary(self, scene_captions: list[str]) -> str:
        """One line about the whole video, shared by every scene's prompt so they sound like one score."""
        ...

    def music_prompt(self, caption: str, *, summary: str | None, user_prompt: str | None, kind: str) -> str:
        """A music prompt under PROMPT_LIMIT characters; `kind` is "video" or "image"."""
        ...


PROMPT_LIMIT = 200
BRIDGES = ("offline", "none")  # "anthropic" and "local" arrive with the LLM backends


def load_bridge(name: str) -> Bridge:
    if name == "offline":
        from .offline import OfflineBridge

        return OfflineBridge()
    if name == "none":
        from .passthrough import PassthroughBridge

        return PassthroughBridge()
    raise ValueError(f"unknown bridge '{name}' (choose from {', '.join(BRIDGES)})")


def trim_prompt(text: str, limit: int = PROMPT_LIMIT) -> str:
    """Cut at the last word boundary within `limit`, dropping a dangling comma or 'and'."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-").removesuffix(" and").removesuffix(" with").rstrip(" ,;:-")

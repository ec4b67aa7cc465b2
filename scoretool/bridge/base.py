"""The bridge's shared types: `Answer`, the `LLM` and `Bridge` protocols, their errors, prompt trimming."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import ScoreToolError

PROMPT_LIMIT = 200
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

    def preflight(self) -> None:
        """Raise `LLMUnavailable` now when no call can succeed (a bad key, an unknown model)."""
        ...

    def complete(self, system: str, messages: list[dict[str, str]], max_tokens: int = 256) -> str:
        """The assistant's reply to `messages` (`{"role": "user"|"assistant", "content": ...}`).

        Raises `LLMError` when no answer could be had (after the backend's own retries), and
        `LLMUnavailable` when no call can succeed (a bad key, an unknown model): that stops the run.
        """
        ...

class Bridge(Protocol):
    name: str  # the backend's name, recorded as the source of its answers
    model: str | None  # the LLM's id (recorded in the plan), None for a bridge without a model
    concurrency: int  # scenes bridged at once
    cacheable: bool  # whether answers are worth caching (an LLM's are slow; the lexicon's instant)

    def preflight(self) -> None:
        """Fail fast, before any captioning, when no call can succeed (a no-op where nothing can fail)."""
        ...

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

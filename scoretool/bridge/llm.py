"""`LLMBridge`: any `LLM` (Anthropic, local) as a `Bridge`, with checks and a per-step fallback.

Each step sends its template (prompts.py) and checks the answer (validate.py). An unusable answer
gets one more try, with the problem named; an answer that is only too long is trimmed at a word
boundary if the second try is long too. When the LLM fails (no answer after the backend's own
retries, or two unusable answers) the step falls back to the offline bridge and the `Answer`
says so: source "offline-fallback" and the reason. `LLMUnavailable` (bad key, unknown model) is
not caught: it stops the run.
"""

from __future__ import annotations

import threading

from .base import LLM, Answer, LLMError, trim_prompt
from . import prompts as P
from .offline import OfflineBridge
from .validate import LIMITS, check

FALLBACK = "offline-fallback"
# Output budgets in tokens: a scene caption or prompt is one line; a bit of room for a model
# that starts with a label we strip, not for essays.
MAX_TOKENS = {"caption": 120, "summary": 140, "prompt": 120}


class InvalidAnswer(LLMError):
    """The LLM answered, but not usably, on every try."""


class LLMBridge:
    def __init__(self, llm: LLM, fallback=None, attempts: int = 2, breaker: int = 3) -> None:
        """`attempts`: answers asked for per step when they fail the checks. `breaker`: after this
        many calls in a row got no answer at all (the backend already retried each), the LLM is
        left alone for the rest of the run and every step goes straight to the offline bridge."""
        self.llm = llm
        self.fallback = fallback or OfflineBridge()
        self.attempts = max(1, attempts)
        self.breaker = max(1, breaker)
        self._failures = 0
        self._tripped: str | None = None
        self._lock = threading.Lock()
        self.name = llm.name
        self.model = llm.model
        self.concurrency = llm.concurrency

    cacheable = True  # an LLM's answers are slow to get: worth keeping

    def preflight(self) -> None:
        """Fail fast (before minutes of captioning) when no call can succeed: a bad key, say."""
        self.llm.preflight()

    # ------------------------------------------------------------------ Bridge

    def scene_caption(self, frame_captions: list[str], user_prompt: str | None = None) -> Answer:
        captions = [c.strip() for c in frame_captions if c and c.strip()]
        if not captions:  # nothing to aggregate: the offline rule (the user's prompt, or nothing)
            return self._fallback_answer(self.fallback.scene_caption(frame_captions, user_prompt), None)
        user = P.CAPTION_USER.format(frame_captions=P.bullet_list(captions), brief=user_prompt or "none")
        return self._step("caption", P.CAPTION_SYSTEM, [{"role": "user", "content": user}],
                          lambda: self.fallback.scene_caption(frame_captions, user_prompt))

    def video_summary(self, scene_captions: list[str]) -> Answer:
        user = P.SUMMARY_USER.format(scene_captions=P.bullet_list([c or "(no caption)" for c in scene_captions], numbered=True))
        return self._step("summary", P.SUMMARY_SYSTEM, [{"role": "user", "content": user}],
                          lambda: self.fallback.video_summary(scene_captions))

    def music_prompt(
        self, caption: str, *, summary: str | None, user_prompt: str | None, kind: str, style: str | None = None
    ) -> Answer:
        brief, style_text = user_prompt or "none", style or "none"
        if kind == "image" or not summary:
            system, examples = P.IMAGE_PROMPT_SYSTEM, P.IMAGE_PROMPT_EXAMPLES
            user = P.IMAGE_PROMPT_USER.format(caption=caption, style=style_text, brief=brief)
        else:
            system, examples = P.VIDEO_PROMPT_SYSTEM, P.VIDEO_PROMPT_EXAMPLES
            user = P.VIDEO_PROMPT_USER.format(summary=summary, caption=caption, style=style_text, brief=brief)
        messages = P.examples_as_messages(examples) + [{"role": "user", "content": user}]
        return self._step(
            "prompt", system, messages,
            lambda: self.fallback.music_prompt(caption, summary=summary, user_prompt=user_prompt, kind=kind, style=style),
        )

    # ------------------------------------------------------------------ machinery

    def _step(self, step: str, system: str, messages: list[dict[str, str]], fallback) -> Answer:
        if self._tripped:
            return self._fallback_answer(fallback(), f"{self.name} not asked: {self._tripped}")
        try:
            text = self.ask(step, system, messages)
        except InvalidAnswer as exc:  # it answers, just not usably: no reason to stop asking
            self._count(None)
            return self._fallback_answer(fallback(), f"{self.name}: {exc}")
        except LLMError as exc:
            self._count(exc)
            return self._fallback_answer(fallback(), f"{self.name}: {exc}")
        self._count(None)
        return Answer(text, self.name)

    def _count(self, failure: LLMError | None) -> None:
        with self._lock:
            self._failures = self._failures + 1 if failure else 0
            if failure and self._failures >= self.breaker and not self._tripped:
                self._tripped = f"{self._failures} calls in a row failed, the last with {failure}"

    def _fallback_answer(self, answer: Answer, reason: str | None) -> Answer:
        return Answer(answer.text, FALLBACK if reason else answer.source, reason)

    def ask(self, step: str, system: str, messages: list[dict[str, str]]) -> str:
        """The checked answer to `messages`, or `InvalidAnswer` / `LLMError`."""
        conversation = list(messages)
        trimmed = None
        problem = None
        for _ in range(self.attempts):
            raw = self.llm.complete(system, conversation, max_tokens=MAX_TOKENS[step])
            checked = check(raw, step)
            if checked.problem is None:
                return checked.text
            problem = checked.problem
            if checked.soft:
                trimmed = checked.text
            if raw and raw.strip():  # show the model its answer and what was wrong with it
                shown = trim_prompt(raw, 4 * LIMITS[step])
                conversation = conversation + [
                    {"role": "assistant", "content": shown},
                    {"role": "user", "content": P.RETRY_USER.format(problem=problem, what=P.WHAT[step])},
                ]
        if trimmed:
            return trimmed
        tries = f"{self.attempts} answers" if self.attempts > 1 else "the answer"
        raise InvalidAnswer(f"{tries} failed the checks, the last because {problem}")

"""`--bridge anthropic`: Claude through the official `anthropic` SDK (Messages API).

- Key from ANTHROPIC_API_KEY; base URL from ANTHROPIC_BASE_URL (the SDK reads it itself).
- Model from `--llm-model`, default DEFAULT_MODEL: the newest Haiku in the SDK's own model list
  (`anthropic.types.Model`), Anthropic's small, fast, cheap line; a prompt is a one-line job.
- Our own retry loop (the SDK's is switched off, `max_retries=0`) so the policy is explicit and
  testable: a per-request timeout, and up to `retries` more tries on 408/409/429/5xx/529 and on
  timeouts or dropped connections, waiting `backoff * 2**n` seconds (with jitter, capped at
  `max_backoff`), or what the server's retry-after header asks for when it says (also capped).
- 401 (bad key), 403 (no permission) and 404 (unknown model) raise `LLMUnavailable`: every call
  would fail the same way, so the run stops with one line, and later calls fail at once without a
  request. `preflight()` asks for the model's details (GET /v1/models/{id}: no tokens spent) so a
  bad key or model id stops the run before any captioning.
- The key is never part of a message, an exception, the plan or a log line: it lives only inside
  the SDK client, and every message built from a server answer has it masked.
"""

from __future__ import annotations

import os
import random
import threading
import time

from .base import API_KEY_ENV, LLMError, LLMUnavailable

DEFAULT_MODEL = "claude-haiku-5-5"
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class AnthropicLLM:
    name = "anthropic"

    def __init__(
        self,
        api_key: str,
        model: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 20.0,
        concurrency: int = 4,
    ) -> None:
        import anthropic

        if not api_key or not api_key.strip():
            raise LLMUnavailable(f"--bridge anthropic needs an API key: set {API_KEY_ENV}")
        self.model = model or DEFAULT_MODEL
        self.timeout, self.retries = timeout, max(0, retries)
        self.backoff, self.max_backoff = backoff, max_backoff
        self.concurrency = max(1, concurrency)
        self._secret = api_key.strip()
        self._fatal: LLMUnavailable | None = None
        self._lock = threading.Lock()
        self._client = anthropic.Anthropic(api_key=self._secret, base_url=base_url, timeout=timeout, max_retries=0)

    @classmethod
    def from_env(cls, model: str | None = None, **options) -> AnthropicLLM:
        return cls(os.environ.get(API_KEY_ENV, ""), model, **options)

    def __repr__(self) -> str:  # no key in reprs, ever
        return f"AnthropicLLM(model={self.model!r}, base_url={str(self._client.base_url)!r})"

    # ------------------------------------------------------------------ LLM

    def complete(self, system: str, messages: list[dict[str, str]], max_tokens: int = 256) -> str:
        message = self._call(
            lambda: self._client.messages.create(model=self.model, max_tokens=max_tokens, system=system, messages=messages)
        )
        if getattr(message, "stop_reason", None) == "refusal":
            raise LLMError("the model refused to answer")
        return "".join(getattr(block, "text", "") for block in message.content if getattr(block, "type", "") == "text")

    def preflight(self) -> None:
        """Stop now on a bad key or model id; anything else (a slow or busy server) is left to the calls."""
        try:
            self._call(lambda: self._client.models.retrieve(self.model), retries=0)
        except LLMError:
            pass

    # ------------------------------------------------------------------ machinery

    def _call(self, request, retries: int | None = None):
        import anthropic

        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            if self._fatal:  # a bad key stays bad: no more requests
                raise LLMUnavailable(str(self._fatal))
            try:
                return request()
            except anthropic.APIStatusError as exc:
                status, headers = exc.status_code, exc.response.headers
                detail = self._mask(exc.api_message or "")
                if status in (401, 403, 404):
                    raise self._stop(status, detail) from None
                failure = f"HTTP {status}" + (f" ({detail})" if detail else "")
                if status not in RETRY_STATUS:
                    raise LLMError(failure) from None
                wait = self._wait(attempt, headers)
            except anthropic.APITimeoutError:
                failure, wait = f"no answer within {self.timeout:g} s", self._wait(attempt)
            except anthropic.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                failure = self._mask(f"cannot connect to {self._client.base_url} ({type(cause).__name__})")
                wait = self._wait(attempt)
            except anthropic.AnthropicError as exc:  # e.g. an answer the SDK cannot parse
                raise LLMError(self._mask(f"{type(exc).__name__}: {exc}")) from None
            if attempt < retries:
                time.sleep(wait)
        tries = f"{retries + 1} tries" if retries else "1 try"
        raise LLMError(f"{failure} after {tries}")

    def _wait(self, attempt: int, headers=None) -> float:
        asked = _retry_after(headers)
        if asked is not None:
            return min(asked, self.max_backoff)
        return min(self.backoff * 2**attempt, self.max_backoff) * random.uniform(0.75, 1.0)

    def _stop(self, status: int, detail: str) -> LLMUnavailable:
        if status == 401:
            message = f"the Anthropic API rejected the key (401): check {API_KEY_ENV}"
        elif status == 403:
            message = f"the Anthropic API refused this key access (403){': ' + detail if detail else ''}"
        else:
            where = " and ANTHROPIC_BASE_URL" if os.environ.get("ANTHROPIC_BASE_URL") else ""
            message = (
                f"the Anthropic API answered 404 for model '{self.model}'{' (' + detail + ')' if detail else ''}: "
                f"check --llm-model{where}"
            )
        with self._lock:
            if self._fatal is None:
                self._fatal = LLMUnavailable(self._mask(message))
            return self._fatal

    def _mask(self, text: str) -> str:
        return text.replace(self._secret, "[key]") if self._secret else text


def _retry_after(headers) -> float | None:
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name)) * scale
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value
    return None

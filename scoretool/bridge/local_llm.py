"""`--bridge local`: a transformers chat model (a Hugging Face id or a folder) on CPU or GPU.

The model's own chat template builds the input (control tokens inside captions are encoded as
plain text, so a caption cannot end a turn); decoding is greedy and bounded. Calls run one at a
time: a local model is compute-bound, and one generate per device is what it can do.
"""

from __future__ import annotations

import threading

from .base import LLMError
from ..errors import ModelUnavailable

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"  # Apache-2.0, ~1 GB, quick enough on a CPU


class LocalLLM:
    name = "local"
    concurrency = 1

    def __init__(self, model: str | None = None, device: str = "cpu", max_new_tokens: int = 160) -> None:
        from .. import models

        self.model = model or DEFAULT_MODEL
        self.device = device
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()
        self.tokenizer, self.lm = models.load(self.model, "LLM (--llm-model)", self._load)
        pad = self.tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelUnavailable(f"LLM (--llm-model) '{self.model}' has no chat template: use an instruct/chat model")

    def preflight(self) -> None:
        """Loaded already (a missing model or template failed in __init__): nothing more can fail up front."""

    def _load(self, source: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        dtype = torch.float32 if self.device == "cpu" else "auto"
        lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(self.device).eval()
        return tokenizer, lm

    def complete(self, system: str, messages: list[dict[str, str]], max_tokens: int = 256) -> str:
        import torch

        conversation = [{"role": "system", "content": system}, *messages]
        try:
            inputs = self._encode(conversation)
        except Exception:  # some templates refuse a system turn (Gemma...): fold it into the first user turn
            first = {"role": "user", "content": f"{system}\n\n{messages[0]['content']}"}
            inputs = self._encode([first, *messages[1:]])
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        prompt_length = inputs["input_ids"].shape[1]
        with self._lock, torch.inference_mode():
            try:
                output = self.lm.generate(
                    **inputs,
                    max_new_tokens=min(max_tokens, self.max_new_tokens),
                    do_sample=False,
                    pad_token_id=self._pad_id,
                )
            except RuntimeError as exc:  # out of memory, a device problem: this call fails, the step falls back
                raise LLMError(f"generation failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        return self.tokenizer.decode(output[0, prompt_length:], skip_special_tokens=True)

    def _encode(self, conversation):
        return self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True, sanitize_control_tokens=True
        )

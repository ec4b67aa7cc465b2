"""`--bridge none`: captions go to MusicGen as they are (the paper's "w/o LUBM" ablation)."""

from __future__ import annotations

from .base import Answer, trim_prompt


class PassthroughBridge:
    name = "none"
    model = None
    concurrency = 1
    cacheable = False  # instant and deterministic: nothing to gain from a cache

    def preflight(self) -> None:
        """Nothing can fail: no network, no model."""

    def scene_caption(self, frame_captions, user_prompt=None) -> Answer:
        # The middle frame stands for the scene; a user prompt replaces the pictures entirely.
        return Answer(user_prompt or (frame_captions[len(frame_captions) // 2] if frame_captions else ""), self.name)

    def video_summary(self, scene_captions) -> Answer:
        return Answer("; ".join(dict.fromkeys(scene_captions)), self.name)

    def music_prompt(self, caption, *, summary, user_prompt, kind, style=None) -> Answer:
        return Answer(trim_prompt(user_prompt or caption), self.name)

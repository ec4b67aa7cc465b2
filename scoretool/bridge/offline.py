"""`--bridge offline`: deterministic prompts from a curated lexicon, no network, no model.

The whole video gets one tonal frame (a genre family, a key and a tempo centre, read from the
video summary), and each scene gets its own setting, mood, instruments and tempo within it:
one score with contrast where the pictures change. Prompts have the LLM bridges' shape:
"<Mood> <genre> with <instruments>, <tempo word> tempo, <N> BPM, in <key>".
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from .base import Answer, trim_prompt
from .lexicon import (
    AGENT_WORDS,
    DEFAULT_SETTING,
    GENRE_WORDS,
    INSTRUMENT_CUES,
    INSTRUMENT_WORDS,
    KEYS,
    MODIFIERS,
    SETTINGS,
    TEMPO_WORDS,
    Modifier,
    Setting,
    tempo_word,
)

_STOPWORDS = frozenset(
    "a an the of in on at to with and or is are was were be by for from its it this that there their his her "
    "some two three into onto near next front top over under up down out off large small big little "
    "close view image picture photo background side shot standing looking".split()
)
_KNOWN = frozenset({w for s in SETTINGS for w in s.words} | {w for m in MODIFIERS for w in m.words} | AGENT_WORDS)


def words(text: str) -> list[str]:
    """Lower-case words, plurals folded onto the singular form the lexicon knows."""
    out = []
    for w in re.findall(r"[a-z]+(?:-[a-z]+)?", (text or "").lower()):
        if w not in _KNOWN and w.endswith("s") and w[:-1] in _KNOWN:
            w = w[:-1]
        out.append(w)
    return out


def best_setting(text: str) -> Setting:
    """The setting whose words weigh most in `text`; ties go to the earlier word's setting."""
    found = words(text)
    scores: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for position, w in enumerate(found):
        for s in SETTINGS:
            if w in s.words:
                scores[s.name] += s.weight
                first_seen.setdefault(s.name, position)
    if not scores:
        return DEFAULT_SETTING
    name = max(scores, key=lambda n: (scores[n], -first_seen[n]))
    return next(s for s in SETTINGS if s.name == name)


def modifiers(text: str) -> list[Modifier]:
    found = set(words(text))
    moving = bool(found & AGENT_WORDS)
    return [m for m in MODIFIERS if m.words & found and (moving or not m.needs_agent)]


def _stable_index(text: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % n


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _family(instrument: str) -> str:
    return instrument.split()[-1].removesuffix("s")


class OfflineBridge:
    name = "offline"
    model = None
    concurrency = 1
    cacheable = False  # instant and deterministic: nothing to gain from a cache

    def preflight(self) -> None:
        """Nothing can fail: no network, no model."""

    def scene_caption(self, frame_captions: list[str], user_prompt: str | None = None) -> Answer:
        """The frame caption that shares most with the others, plus one that differs from it."""
        distinct: list[str] = []
        for caption in frame_captions:
            caption = " ".join(caption.split()).rstrip(".")
            if caption and all(_overlap(caption, d) < 0.6 for d in distinct):
                distinct.append(caption)
        if not distinct:
            return Answer(user_prompt or "", self.name)
        central = max(distinct, key=lambda c: sum(_overlap(c, o) for o in distinct))
        others = [c for c in distinct if c != central]
        caption = central if not others else f"{central}; {min(others, key=lambda c: _overlap(c, central))}"
        return Answer(f"{user_prompt} ({caption})" if user_prompt else caption, self.name)

    def video_summary(self, scene_captions: list[str]) -> Answer:
        """The content words of all scenes, most frequent first: enough to find the video's setting."""
        counts = Counter(w for c in scene_captions for w in words(c) if w not in _STOPWORDS and len(w) > 2)
        top = [w for w, _ in counts.most_common(16)]
        return Answer(f"{len(scene_captions)} scene(s): " + ", ".join(top), self.name)

    def music_prompt(
        self, caption: str, *, summary: str | None, user_prompt: str | None, kind: str, style: str | None = None
    ) -> Answer:
        # The user's prompt leads, then a preset's style text; their words take the slots they fill.
        user = ", ".join(t.strip().rstrip(".") for t in (user_prompt, style) if t and t.strip())
        scene = best_setting(f"{user} {caption}")
        video = best_setting(summary) if summary else scene
        mods = modifiers(user) + [m for m in modifiers(caption) if m not in modifiers(user)]
        major, minor = KEYS[_stable_index(summary or caption, len(KEYS))]
        darker = next((m.minor for m in mods if m.minor is not None), None)
        key = minor if (darker or (darker is None and scene.mood in ("brooding", "mysterious", "wistful"))) else major

        # Tempo: halfway between the video's centre and the scene's own, then nudged by motion and light.
        bpm = round((video.bpm + scene.bpm) / 2 + sum(m.bpm_shift for m in mods))
        bpm = max(56, min(160, bpm))
        moods = list(dict.fromkeys([mods[0].mood, scene.mood] if mods else [scene.mood]))
        if tempo_word(bpm) in moods:  # "gentle and warm ..., gentle tempo" reads badly
            moods.remove(tempo_word(bpm))
            moods = moods or [scene.mood]
        genre = video.genre if kind == "video" else scene.genre
        # The setting's signature instrument, one more that the caption calls for (so different pictures
        # of one setting still differ), and the video's signature as the colour every scene shares.
        first, rest = scene.instruments[0], scene.instruments[1:]
        seen = set(words(f"{user} {caption}"))
        cued = [i for i in rest if INSTRUMENT_CUES.get(i, frozenset()) & seen]
        instruments = [first, cued[0] if cued else rest[_stable_index(caption, len(rest))]]
        shared = video.instruments[0]
        if all(_family(i) != _family(shared) for i in instruments):
            instruments.append(shared)
        else:
            instruments.append(next(i for i in rest if i not in instruments))

        taken = set(words(user))
        if "minor" in taken or "major" in taken:  # the user's or preset's mode wins over the picture's
            key = minor if "minor" in taken else major
        parts = [user] if user else []
        if not style and not taken & GENRE_WORDS:  # a preset always names its genre: don't add a second
            parts.append(f"{_join(moods)} {genre}")
        elif not user:
            parts.append(_join(moods))
        if not taken & INSTRUMENT_WORDS:
            parts.append(f"with {_join(instruments)}")
        if not taken & TEMPO_WORDS:
            parts.append(f"{tempo_word(bpm)} tempo, {bpm} BPM")
        parts.append(f"in {key}")
        text = ", ".join(parts).replace(", with", " with")
        return Answer(trim_prompt(text[0].upper() + text[1:]), self.name)


def _overlap(a: str, b: str) -> float:
    """Jaccard overlap of content words: how much two captions say the same thing."""
    wa = {w for w in words(a) if w not in _STOPWORDS}
    wb = {w for w in words(b) if w not in _STOPWORDS}
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0

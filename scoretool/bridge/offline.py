"""`--bridge offline`: deterministic prompts from a curated lexicon, no network, no model.

The whole video gets one tonal frame (a genre family, a key and a tempo centre, read from the
video summary), and each scene gets its own setting, mood, instruments and tempo within it:
one score with contrast where the pictures change.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from . import trim_prompt
from .lexicon import DEFAULT_SETTING, GENRE_WORDS, INSTRUMENT_WORDS, KEYS, MODIFIERS, SETTINGS, TEMPO_WORDS, Modifier, Setting, tempo_word

_STOPWORDS = frozenset(
    "a an the of in on at to with and or is are was were be by for from its it this that there their his her "
    "some two three into onto near next front top over under up down out off large small big little".split()
)


def words(text: str) -> list[str]:
    """Lower-case words, plurals folded onto the singular form the lexicon knows."""
    known = {w for s in SETTINGS for w in s.words} | {w for m in MODIFIERS for w in m.words}
    out = []
    for w in re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower()):
        if w not in known and w.endswith("s") and w[:-1] in known:
            w = w[:-1]
        out.append(w)
    return out


def best_setting(text: str) -> Setting:
    """The setting whose words occur most often in `text`; ties go to the earlier word's setting."""
    found = words(text)
    scores = Counter()
    first_seen: dict[str, int] = {}
    for position, w in enumerate(found):
        for s in SETTINGS:
            if w in s.words:
                scores[s.name] += 1
                first_seen.setdefault(s.name, position)
    if not scores:
        return DEFAULT_SETTING
    name = max(scores, key=lambda n: (scores[n], -first_seen[n]))
    return next(s for s in SETTINGS if s.name == name)


def modifiers(text: str) -> list[Modifier]:
    found = set(words(text))
    return [m for m in MODIFIERS if m.words & found]


def _stable_index(text: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % n


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class OfflineBridge:
    name = "offline"

    def scene_caption(self, frame_captions: list[str], user_prompt: str | None = None) -> str:
        """The frame caption that shares most with the others, plus one that differs from it."""
        distinct: list[str] = []
        for caption in frame_captions:
            caption = caption.strip().rstrip(".")
            if caption and all(_overlap(caption, d) < 0.6 for d in distinct):
                distinct.append(caption)
        if not distinct:
            return user_prompt or ""
        central = max(distinct, key=lambda c: sum(_overlap(c, o) for o in distinct))
        others = [c for c in distinct if c != central]
        caption = central if not others else f"{central}; {min(others, key=lambda c: _overlap(c, central))}"
        return f"{user_prompt} ({caption})" if user_prompt else caption

    def video_summary(self, scene_captions: list[str]) -> str:
        """The content words of all scenes, most frequent first: enough to find the video's setting."""
        counts = Counter(w for c in scene_captions for w in words(c) if w not in _STOPWORDS and len(w) > 2)
        top = [w for w, _ in counts.most_common(12)]
        return f"{len(scene_captions)} scene(s): " + ", ".join(top)

    def music_prompt(self, caption: str, *, summary: str | None, user_prompt: str | None, kind: str) -> str:
        user = user_prompt.strip().rstrip(".") if user_prompt else ""
        scene = best_setting(f"{user} {caption}")
        video = best_setting(summary) if summary else scene
        mods = modifiers(user) + [m for m in modifiers(caption) if m not in modifiers(user)]
        major, minor = KEYS[_stable_index(summary or caption, len(KEYS))]
        darker = next((m.minor for m in mods if m.minor is not None), None)
        key = minor if (darker or (darker is None and scene.mood in ("brooding", "mysterious", "wistful"))) else major

        # Tempo: halfway between the video's centre and the scene's own, then nudged by motion and light.
        bpm = round((video.bpm + scene.bpm) / 2 + sum(m.bpm_shift for m in mods))
        bpm = max(56, min(160, bpm))
        mood = _join(list(dict.fromkeys([mods[0].mood, scene.mood] if mods else [scene.mood])))
        genre = video.genre if kind == "video" else scene.genre
        instruments = list(scene.instruments[:2])
        if not any(i.split()[-1] == video.instruments[0].split()[-1] for i in instruments):
            instruments.append(video.instruments[0])  # one shared colour across all scenes
        else:
            instruments.append(scene.instruments[2])

        taken = set(words(user))
        parts = [user] if user else []
        if not taken & GENRE_WORDS:
            parts.append(f"{mood} {genre}")
        elif not user:
            parts.append(mood)
        if not taken & INSTRUMENT_WORDS:
            parts.append(f"with {_join(instruments)}")
        if not taken & TEMPO_WORDS:
            parts.append(f"{tempo_word(bpm)} tempo, {bpm} BPM")
        parts.append(f"in {key}")
        text = ", ".join(parts).replace(", with", " with")
        return trim_prompt(text[0].upper() + text[1:])


def _overlap(a: str, b: str) -> float:
    """Jaccard overlap of content words: how much two captions say the same thing."""
    wa = {w for w in words(a) if w not in _STOPWORDS}
    wb = {w for w in words(b) if w not in _STOPWORDS}
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0

"""`--bridge offline`: deterministic prompts from a curated lexicon, no network, no model.

The whole video gets one tonal frame (a genre, a key and a tempo centre, from the family of
footage its summary names, `families.py`), and each scene gets its own family's moods,
instruments and tempo within it: one score with contrast where the pictures change. The mood
words of a prompt always agree (`lexicon.agree`): the first is the one of the scene family's
moods nearest to what the picture's light, motion or weather suggests, the second that
suggestion itself where it agrees with the first and with the tempo, else another of the
family's. A darker pair of moods moves the key to its relative minor. Prompts have the LLM
bridges' shape: "<Mood> and <mood> <genre> with <instruments>, <tempo word> tempo, <N> BPM, in <key>".
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from .base import Answer, trim_prompt
from .families import DEFAULT, FAMILIES, Family
from .lexicon import (
    AGENT_WORDS,
    GENRE_WORDS,
    INSTRUMENT_CUES,
    INSTRUMENT_WORDS,
    KEYS,
    MODIFIERS,
    TEMPO_WORDS,
    Modifier,
    agree,
    distance,
    tempo_word,
    valence,
)

_STOPWORDS = frozenset(
    "a an the of in on at to with and or is are was were be by for from its it this that there their his her "
    "some two three into onto near next front top over under up down out off large small big little "
    "close view image picture photo background side shot standing looking".split()
)
NEEDED_BOOST = 1.25  # a family that needs a word and has it is the more specific (see families.py)
_PHRASES = frozenset(c for f in FAMILIES for c in f.cues if " " in c)
_KNOWN = frozenset(
    {w for f in FAMILIES for c in f.cues for w in c.split()} | {w for f in FAMILIES for w in f.needs}
    | {w for m in MODIFIERS for w in m.words} | AGENT_WORDS
)
_CUED: dict[str, list[tuple[Family, float]]] = {}
for _family in FAMILIES:
    for _cue, _weight in _family.cues.items():
        _CUED.setdefault(_cue, []).append((_family, _weight))


def words(text: str) -> list[str]:
    """Lower-case words, plurals folded onto the singular form the lexicon knows."""
    out = []
    for w in re.findall(r"[a-z]+(?:-[a-z]+)?", (text or "").lower()):
        if w not in _KNOWN and w.endswith("s"):
            singular = (w[:-1], w[:-2], w[:-3] + "y" if w.endswith("ies") else "")
            w = next((x for x in singular if x in _KNOWN), w)
        out.append(w)
    return out


def terms(text: str) -> list[str]:
    """The words of `text`, with the two-word phrases the families know ("cell phone") as one term."""
    found, out, i = words(text), [], 0
    while i < len(found):
        pair = " ".join(found[i : i + 2])
        out.append(pair if pair in _PHRASES else found[i])
        i += 2 if pair in _PHRASES else 1
    return out


def best_family(text: str) -> Family:
    """The family whose cues weigh most in `text`; ties go to the family whose cue comes first in it."""
    found = terms(text)
    present = set(words(text))
    scores: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for position, term in enumerate(found):
        for family, weight in _CUED.get(term, ()):
            if family.needs and not family.needs & present:
                continue
            scores[family.name] += weight * (NEEDED_BOOST if family.needs else 1.0)
            first_seen.setdefault(family.name, position)
    if not scores:
        return DEFAULT
    name = max(scores, key=lambda n: (scores[n], -first_seen[n]))
    return next(f for f in FAMILIES if f.name == name)


def modifiers(text: str) -> list[Modifier]:
    found = set(words(text))
    moving = bool(found & AGENT_WORDS)
    return [m for m in MODIFIERS if m.words & found and (moving or not m.needs_agent)]


def scene_bpm(scene: Family, video: Family, mods: list[Modifier]) -> int:
    """Halfway between the video's tempo centre and the scene's, nudged by motion and light,
    and kept inside the scene family's range (whose tempo words agree with its moods)."""
    bpm = round((sum(video.bpm) + sum(scene.bpm)) / 4 + sum(m.bpm_shift for m in mods))
    return max(scene.bpm[0], min(scene.bpm[1], bpm))


def scene_moods(family: Family, suggested: list[str], tempo: str, caption: str) -> list[str]:
    """Two mood words that agree with each other and with the tempo word (see the module's doc)."""
    palette = [m for m in family.moods if agree(m, tempo)]
    first = min(palette, key=lambda m: distance(m, suggested[0])) if suggested else palette[0]
    second = [m for m in dict.fromkeys(suggested) if m != first and agree(m, first) and agree(m, tempo)]
    if not second:
        others = [m for m in palette if m != first and agree(m, first)]
        second = [others[_stable_index(caption, len(others))]] if others else []
    return [first, *second[:1]]


def _stable_index(text: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % n


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _kind(instrument: str) -> str:
    return instrument.split()[-1].removesuffix("s")


def scene_instruments(scene: Family, video: Family, seen: set[str], caption: str) -> list[str]:
    """The scene family's signature, one more that the caption calls for (so different pictures of
    one family still differ), and the video's signature as the colour every scene shares."""
    first, rest = scene.instruments[0], scene.instruments[1:]
    cued = [i for i in rest if INSTRUMENT_CUES.get(i, frozenset()) & seen]
    instruments = [first, cued[0] if cued else rest[_stable_index(caption, len(rest))]]
    shared = video.instruments[0]
    if all(_kind(i) != _kind(shared) for i in instruments):
        instruments.append(shared)
    else:
        instruments.append(next(i for i in rest if i not in instruments and _kind(i) not in map(_kind, instruments)))
    return instruments


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
        scene = best_family(f"{user} {caption}")
        video = best_family(summary) if summary else scene
        mods = modifiers(user) + [m for m in modifiers(caption) if m not in modifiers(user)]
        bpm = scene_bpm(scene, video, mods)
        moods = scene_moods(scene, [m.mood for m in mods], tempo_word(bpm), caption)
        major, minor = KEYS[_stable_index(summary or caption, len(KEYS))]
        key = minor if valence(moods) < 0 else major
        genre = video.genre if kind == "video" else scene.genre
        instruments = scene_instruments(scene, video, set(words(f"{user} {caption}")), caption)

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

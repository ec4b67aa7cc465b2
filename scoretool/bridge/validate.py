"""Checks on every LLM answer before it goes into a plan.

`check(text, step)` cleans an answer (labels, quotes, markdown, whitespace) and says what is
wrong with it, if anything: empty, chatter ("Sure! Here is..."), several lines, not English,
word salad, no musical terms (prompts), or too long. "Too long" is the one soft problem: the
bridge asks once more, and if the answer is still long it is trimmed at a word boundary.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .base import PROMPT_LIMIT, trim_prompt
from .lexicon import GENRE_WORDS, INSTRUMENT_WORDS, TEMPO_WORDS
from .prompts import CAPTION_LIMIT, SUMMARY_LIMIT

LIMITS = {"caption": CAPTION_LIMIT, "summary": SUMMARY_LIMIT, "prompt": PROMPT_LIMIT}

# A music prompt names at least one of these (plurals fold onto them).
MUSIC_WORDS = GENRE_WORDS | INSTRUMENT_WORDS | TEMPO_WORDS | frozenset(
    "music musical melody melodic harmony harmonies chord chords rhythm rhythmic beat beats groove score "
    "orchestra orchestral ensemble quartet pad pads synthesizer bassline arpeggio arpeggios ostinato drone "
    "major minor key tremolo pizzicato staccato legato crescendo percussive acoustic electric symphonic "
    "ballad lullaby waltz march anthem soundtrack instrumental vocals choral".split()
)

_LABEL = re.compile(r"^\W*(?:music\s+prompt|prompt|scene\s+caption|caption|scene|summary|answer)\s*\**\s*:\s*\**\s*", re.I)
_CHATTER = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|absolutely|great|here(?:'s| is| are)|below is|i(?:'m| am|'d| would| will"
    r"| can| cannot|'ve)|as an ai|sorry|unfortunately|let me|this (?:prompt|caption))\b",
    re.I,
)
_QUOTES = "\"'`“”‘’«»*_"


@dataclass(frozen=True)
class Checked:
    text: str  # cleaned; trimmed to the limit when `problem` is "too long..."
    problem: str | None = None  # None: usable as it is
    soft: bool = False  # only too long: usable once trimmed


def clean(text: str) -> str:
    text = (text or "").strip()
    text = _LABEL.sub("", text).strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _has_music_word(text: str) -> bool:
    for w in words(text):
        if w in MUSIC_WORDS or (w.endswith("s") and w[:-1] in MUSIC_WORDS) or w in ("bpm",):
            return True
    return bool(re.search(r"\b\d{2,3}\s*bpm\b", text, re.I))


def _not_plain_text(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") or c == "\ufffd" for c in text)


def _not_english(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    foreign = sum(1 for c in letters if not c.isascii() and unicodedata.name(c, "").split()[0] not in ("LATIN",))
    accented = sum(1 for c in letters if not c.isascii())
    return bool(letters) and (foreign > 0 or accented / len(letters) > 0.05)


def _repetitive(text: str) -> bool:
    ws = [w for w in words(text) if len(w) > 2]
    if not ws:
        return False
    most = max(ws.count(w) for w in set(ws))
    return most > 3 or (len(ws) >= 8 and len(set(ws)) / len(ws) < 0.5)


def check(text: str, step: str) -> Checked:
    """What is wrong with an answer to `step` ("caption", "summary" or "prompt"), if anything."""
    raw = text or ""
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    if len(lines) == 2 and lines[0].rstrip().endswith(":") and _CHATTER.match(clean(lines[0])):
        lines = lines[1:]  # "Here is a prompt:" then the prompt on its own line: take the prompt
        raw = lines[0]
    text = clean(raw)
    if not text:
        return Checked("", "the answer was empty")
    if _CHATTER.match(text):
        return Checked(text, "it talks about the answer instead of giving it (no 'Sure', 'Here is'...)")
    if len(lines) > 1:
        return Checked(text, f"it has {len(lines)} lines; give one line")
    if _not_plain_text(text):
        return Checked(text, "it contains control or unreadable characters")
    if _not_english(text):
        return Checked(text, "it is not in English")
    ws = words(text)
    if len(ws) < 3:
        return Checked(text, "it is too short (fewer than 3 words)")
    if _repetitive(text):
        return Checked(text, "it repeats the same words")
    if step == "prompt" and not _has_music_word(text):
        return Checked(text, "it has no musical terms (genre, instruments, tempo)")
    limit = LIMITS[step]
    if len(text) > limit:
        return Checked(trim_prompt(text, limit), f"it is too long ({len(text)} characters; the limit is {limit})", soft=True)
    return Checked(text)

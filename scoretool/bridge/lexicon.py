"""The offline bridge's vocabulary: what a word in a caption suggests musically, and which mood
words may share a prompt.

Plain data, meant to be read and extended. Every mood word has a place on the two axes of
Russell's circumplex: valence (unpleasant -1 .. pleasant +1) and arousal (calm -1 .. excited +1).
Two moods *agree* unless, on either axis, they lean clearly opposite ways ("brooding" and
"warm" on valence, "driving" and "serene" on arousal). The kinds of footage, each with its genre,
its palette of moods and its instruments, are in `families.py`; a `Modifier` (light, motion,
weather, emotion, colour) proposes a mood and nudges the tempo of whatever family it appears with.
"""

from __future__ import annotations

from dataclasses import dataclass

# (valence, arousal) of each mood word the offline bridge writes.
MOODS: dict[str, tuple[float, float]] = {
    # pleasant, excited
    "joyful": (0.8, 0.6), "euphoric": (0.9, 0.9), "triumphant": (0.8, 0.8), "energetic": (0.6, 0.8),
    "playful": (0.7, 0.5), "cheerful": (0.8, 0.4), "festive": (0.8, 0.7), "bouncy": (0.7, 0.6),
    "uplifting": (0.8, 0.5), "heroic": (0.6, 0.8), "adventurous": (0.6, 0.6), "proud": (0.7, 0.5),
    "radiant": (0.8, 0.4), "sparkling": (0.7, 0.5), "confident": (0.5, 0.5), "bold": (0.4, 0.7),
    "bustling": (0.3, 0.6), "driving": (0.2, 0.8), "electric": (0.4, 0.8), "passionate": (0.4, 0.6),
    "determined": (0.3, 0.6), "grand": (0.6, 0.3),
    # pleasant, between
    "majestic": (0.6, 0.2), "awestruck": (0.5, 0.2), "carefree": (0.7, 0.2), "whimsical": (0.6, 0.2),
    "hopeful": (0.6, 0.1), "wholesome": (0.6, 0.0), "fresh": (0.5, 0.1), "expansive": (0.4, 0.1),
    "curious": (0.3, 0.2), "sleek": (0.3, 0.2), "focused": (0.2, 0.2),
    # pleasant, calm
    "serene": (0.6, -0.7), "calm": (0.4, -0.7), "tranquil": (0.5, -0.8), "peaceful": (0.6, -0.7),
    "tender": (0.6, -0.5), "warm": (0.6, -0.2), "cozy": (0.6, -0.5), "dreamy": (0.4, -0.5),
    "romantic": (0.7, -0.2), "graceful": (0.5, -0.3), "relaxed": (0.5, -0.6), "intimate": (0.4, -0.4),
    "airy": (0.5, -0.3), "hushed": (0.2, -0.7), "crystalline": (0.4, -0.3), "elegant": (0.5, -0.1),
    "timeless": (0.2, -0.3),
    # neither pleasant nor unpleasant
    "reflective": (0.0, -0.4), "nostalgic": (0.1, -0.4), "cool": (0.1, -0.1), "hypnotic": (0.0, 0.2),
    "mysterious": (-0.2, 0.1), "restless": (-0.2, 0.6), "intense": (-0.2, 0.9), "urgent": (-0.2, 0.8),
    # unpleasant, calm
    "melancholic": (-0.6, -0.5), "mournful": (-0.8, -0.5), "somber": (-0.6, -0.4), "wistful": (-0.3, -0.4),
    "brooding": (-0.5, -0.1), "elegiac": (-0.7, -0.5), "solemn": (-0.3, -0.4),
    # unpleasant, excited
    "tense": (-0.6, 0.7), "menacing": (-0.8, 0.7), "ominous": (-0.7, 0.4), "eerie": (-0.6, 0.2),
    "chilling": (-0.7, 0.4), "suspenseful": (-0.4, 0.6),
    # tempo words: arousal only ("serene ..., fast tempo" clashes; "tense ..., gentle tempo" is a slow burn)
    "slow": (0.0, -0.5), "gentle": (0.0, -0.2), "moderate": (0.0, 0.0), "upbeat": (0.0, 0.4), "fast": (0.0, 0.7),
}
LEAN = 0.25  # how far from the middle of an axis a mood must be to lean one way on it


def agree(a: str, b: str) -> bool:
    """Whether two mood (or tempo) words may share a prompt: on no axis do they lean opposite ways."""
    return not any(x * y < 0 and min(abs(x), abs(y)) >= LEAN for x, y in zip(MOODS[a], MOODS[b]))


def valence(words: list[str]) -> float:
    return sum(MOODS[w][0] for w in words) / len(words) if words else 0.0


def distance(a: str, b: str) -> float:
    (va, aa), (vb, ab) = MOODS[a], MOODS[b]
    return (va - vb) ** 2 + (aa - ab) ** 2


def _w(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class Modifier:
    words: frozenset[str]
    mood: str
    bpm_shift: int = 0
    needs_agent: bool = False  # motion: only when someone or something moves ("a river running" is not a chase)


MODIFIERS: tuple[Modifier, ...] = (
    Modifier(_w("dark night nighttime shadow shadows gloomy dim"), "brooding", -6),
    Modifier(_w("sunny sun bright sunlight sunset sunrise golden colorful daylight"), "radiant", 4),
    Modifier(_w("neon lights glowing"), "electric", 6),
    Modifier(_w("running flying driving racing jumping dancing riding speeding fast chasing"), "driving", 16, needs_agent=True),
    # Stillness needs someone too: BLIP says a phone is "sitting on a table".
    Modifier(_w("sitting sleeping lying resting still quiet alone perched asleep peaceful"), "tranquil", -8, needs_agent=True),
    Modifier(_w("rain rainy storm thunder fog foggy cloudy grey gray"), "melancholic", -6),
    Modifier(_w("mist misty haze hazy smoke"), "dreamy", -4),
    Modifier(_w("smiling happy laughing playing fun"), "cheerful", 6),
    Modifier(_w("sad crying lonely empty abandoned"), "melancholic", -10),
    Modifier(_w("scary creepy horror skull ghost"), "tense", -4),
    Modifier(_w("flag parade anthem"), "proud", 2),
    Modifier(_w("hole burrow cave tunnel underground"), "curious", -2),
    Modifier(_w("old ancient ruins ruin"), "timeless", -4),
    Modifier(_w("cartoon animated"), "whimsical", 4),
    Modifier(_w("red orange"), "passionate", 2),
    Modifier(_w("blue"), "cool", -2),
    Modifier(_w("green"), "fresh", 0),
)

# Someone or something that can move: motion words only count when one of these is in the picture.
AGENT_WORDS = _w(
    "man woman person people girl boy child children kid kids baby family friends couple player rider skier surfer "
    "dancer crowd dog puppy cat kitten bird birds horse rabbit bunny llama squirrel fox deer duck animal "
    "car cars bus truck train bike bicycle motorcycle boat plane airplane helicopter robot astronaut athlete runner"
)

# What in a picture calls for one instrument of a family's palette over the others. A scene's
# second instrument is the first of its family's that a word of the caption calls for (else one
# chosen by the caption's hash), so two scenes of one family still sound different.
INSTRUMENT_CUES: dict[str, frozenset[str]] = {
    "flute": _w("bird birds butterfly flower flowers breeze owl"),
    "harp": _w("stream river waterfall sky clouds"),
    "oboe": _w("sheep cow horse farm valley"),
    "acoustic guitar": _w("forest woods trail path jungle backpack"),
    "cello": _w("portrait face alone old"),
    "warm pads": _w("sunset sunrise lake fog"),
    "soft strings": _w("boat shore harbor harbour canal"),
    "marimba": _w("beach island surf pool"),
    "electric guitar": _w("traffic car cars bus taxi subway"),
    "deep bass": _w("skyline downtown"),
    "electric piano": _w("bar crowd rain"),
    "glassy celesta": _w("screen screens monitor monitors computer hologram control laboratory"),
    "swelling strings": _w("space planet stars astronaut rocket sky"),
    "pulsing bass": _w("robot robotic machine android cyborg"),
    "upright bass": _w("wine bar dinner restaurant"),
    "brushed drums": _w("coffee espresso cup mug"),
    "vibraphone": _w("cake dessert tea"),
    "glockenspiel": _w("kitten puppy bunny rabbit"),
    "clarinet": _w("cat dog llama duck"),
    "french horns": _w("castle palace monument tower"),
    "church organ": _w("church cathedral abbey chapel"),
    "low strings": _w("ruins ruin stone"),
    "celesta": _w("snow snowy frost"),
    "bowed vibraphone": _w("ice glacier frozen"),
    "harmonica": _w("truck highway road"),
    "soft choir": _w("church candles candle"),
}

# Keys with their relative minors: a darker scene moves to the relative minor, keeping the
# key signature, so the whole score stays in one tonal family.
KEYS: tuple[tuple[str, str], ...] = (
    ("C major", "A minor"),
    ("D major", "B minor"),
    ("E-flat major", "C minor"),
    ("F major", "D minor"),
    ("G major", "E minor"),
    ("A major", "F-sharp minor"),
    ("B-flat major", "G minor"),
)

# Words in a user's prompt that take a slot over from the pictures (and that name a genre or an
# instrument in a prompt). Every family's genre names one genre word and its instruments name
# instrument words.
GENRE_WORDS = _w(
    "jazz rock pop folk ambient orchestral classical electronic techno house edm hip hop rap lofi lo-fi "
    "synthwave cinematic country blues metal punk funk soul reggae trap piano-only choral americana "
    "chiptune neoclassical ballad"
)
INSTRUMENT_WORDS = _w(
    "piano guitar guitars strings string violin violins viola cello flute harp drums drum bass synth synths saxophone "
    "sax trumpet brass choir organ ukulele banjo marimba glockenspiel clarinet horns horn percussion oboe bassoon "
    "celesta vibraphone harmonica accordion timpani pads synthesizer mandolin sitar koto quartet taiko kalimba "
    "handpan bells cymbals claps handclaps"
)
TEMPO_WORDS = _w("bpm tempo slow fast upbeat downtempo uptempo andante allegro adagio moderato largo presto")


def tempo_word(bpm: int) -> str:
    if bpm < 76:
        return "slow"
    if bpm < 96:
        return "gentle"
    if bpm < 116:
        return "moderate"
    if bpm < 132:
        return "upbeat"
    return "fast"

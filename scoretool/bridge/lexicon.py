"""The offline bridge's vocabulary: what a word in a caption suggests musically.

Plain data, meant to be read and extended. A `Setting` is a kind of scene (a place or a subject)
with the music that suits it; a `Modifier` (light, motion, weather, emotion, colour) nudges the
mood and tempo of whatever setting it appears with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    words: frozenset[str]
    genre: str
    mood: str
    instruments: tuple[str, ...]
    bpm: int


@dataclass(frozen=True)
class Modifier:
    words: frozenset[str]
    mood: str
    bpm_shift: int = 0
    minor: bool | None = None  # True: darker (relative minor), False: brighter, None: no say


def _w(text: str) -> frozenset[str]:
    return frozenset(text.split())


SETTINGS: tuple[Setting, ...] = (
    Setting("pastoral", _w("meadow field grass flower flowers hill hills countryside farm garden butterfly sheep cow horse tree trees valley park"),
            "pastoral orchestral", "serene", ("strings", "flute", "harp"), 84),
    Setting("forest", _w("forest woods jungle moss fern path trail"),
            "ambient folk", "mysterious", ("acoustic guitar", "woodwinds", "soft hand percussion"), 86),
    Setting("water", _w("ocean sea beach wave waves surf lake river stream water boat shore island waterfall pond canal"),
            "ambient", "calm", ("felt piano", "warm pads", "soft strings"), 76),
    Setting("city", _w("city street streets building buildings traffic skyline bus taxi downtown crowd subway bridge car cars"),
            "electronic", "restless", ("synths", "drum machine", "deep bass"), 112),
    Setting("scifi", _w("space astronaut rocket planet stars spaceship robot computer screen screens hologram control desk laboratory monitor futuristic cyborg machine"),
            "cinematic electronic", "awestruck", ("analog synths", "pulsing bass", "string swells"), 100),
    Setting("cafe", _w("coffee cup mug espresso food kitchen restaurant table plate cake breakfast dinner cafe bar wine saucer spoon"),
            "lounge jazz", "cozy", ("piano", "upright bass", "brushed drums"), 92),
    Setting("animals", _w("dog puppy cat kitten bird birds rabbit bunny llama squirrel animal animals fox deer duck chicken owl"),
            "whimsical orchestral", "playful", ("pizzicato strings", "glockenspiel", "clarinet"), 104),
    Setting("people", _w("man woman person people face portrait girl boy child children family friends couple smiling"),
            "acoustic pop", "warm", ("acoustic guitar", "piano", "light percussion"), 96),
    Setting("heritage", _w("ruins ruin castle church abbey cathedral arch arches stone temple monument tower palace statue"),
            "choral orchestral", "majestic", ("choir", "low strings", "french horns"), 68),
    Setting("action", _w("race racing football soccer skateboard bike motorcycle fight chase game stadium player ball"),
            "rock", "intense", ("electric guitars", "driving drums", "bass"), 140),
    Setting("winter", _w("snow ice mountain mountains winter glacier frost snowy"),
            "cinematic ambient", "wistful", ("celesta", "strings", "piano"), 72),
    Setting("party", _w("party dance dancing concert wedding birthday festival celebration stage audience fireworks"),
            "upbeat pop", "joyful", ("bright synths", "claps", "punchy bass"), 122),
    Setting("desert", _w("desert road highway truck sand dune canyon"),
            "americana", "open", ("slide guitar", "acoustic guitar", "kick drum"), 98),
    Setting("titles", _w("title text sign logo letters words poster"),
            "cinematic", "grand", ("brass", "timpani", "strings"), 90),
    Setting("work", _w("office laptop meeting desk keyboard presentation phone business"),
            "corporate pop", "focused", ("plucked synths", "piano", "soft kick"), 108),
)

DEFAULT_SETTING = Setting("default", frozenset(), "cinematic", "reflective", ("piano", "strings", "soft pads"), 90)

MODIFIERS: tuple[Modifier, ...] = (
    Modifier(_w("dark night shadow shadows black gloomy dim"), "brooding", -8, minor=True),
    Modifier(_w("sunny sun bright sunlight sunset sunrise golden colorful daylight"), "radiant", 4, minor=False),
    Modifier(_w("neon lights glowing"), "electric", 6),
    Modifier(_w("running flying driving racing jumping dancing riding speeding fast chasing"), "driving", 16),
    Modifier(_w("sitting standing sleeping lying resting still quiet alone"), "gentle", -8),
    Modifier(_w("rain rainy storm thunder fog foggy cloudy grey gray"), "melancholic", -6, minor=True),
    Modifier(_w("smiling happy laughing playing fun"), "cheerful", 6, minor=False),
    Modifier(_w("sad crying lonely empty abandoned"), "melancholic", -10, minor=True),
    Modifier(_w("scary creepy horror skull ghost"), "tense", -4, minor=True),
    Modifier(_w("red orange"), "passionate", 2),
    Modifier(_w("blue"), "cool", -2),
    Modifier(_w("green"), "fresh", 0),
)

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

# Words in a user's prompt that take a slot over from the pictures.
GENRE_WORDS = _w(
    "jazz rock pop folk ambient orchestral classical electronic techno house edm hip hop rap lofi lo-fi "
    "synthwave cinematic country blues metal punk funk soul reggae trap piano-only choral americana"
)
INSTRUMENT_WORDS = _w(
    "piano guitar guitars strings violin cello flute harp drums bass synth synths saxophone sax trumpet brass "
    "choir organ ukulele banjo marimba glockenspiel clarinet horns percussion"
)
TEMPO_WORDS = _w("bpm tempo slow fast upbeat downtempo uptempo andante allegro adagio")


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

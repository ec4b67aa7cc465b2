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
    instruments: tuple[str, ...]  # the first is the setting's signature; one of the others joins it
    bpm: int
    weight: float = 1.0  # how much one word of this setting counts when settings compete


@dataclass(frozen=True)
class Modifier:
    words: frozenset[str]
    mood: str
    bpm_shift: int = 0
    minor: bool | None = None  # True: darker (relative minor), False: brighter, None: no say
    needs_agent: bool = False  # motion: only when someone or something moves ("a river running" is not a chase)


def _w(text: str) -> frozenset[str]:
    return frozenset(text.split())


SETTINGS: tuple[Setting, ...] = (
    Setting("pastoral", _w("meadow field grass grassy flower flowers hill hills countryside farm garden butterfly sheep cow horse tree trees valley park orchard"),
            "pastoral orchestral", "serene", ("strings", "flute", "harp", "oboe"), 84),
    Setting("forest", _w("forest woods wood jungle moss fern path trail"),
            "ambient folk", "mysterious", ("acoustic guitar", "woodwinds", "soft hand percussion", "cello"), 86),
    Setting("water", _w("ocean sea beach wave waves surf lake river stream water boat shore island waterfall pond canal harbor harbour"),
            "ambient", "calm", ("felt piano", "warm pads", "soft strings", "marimba"), 76),
    Setting("city", _w("city street streets building buildings traffic skyline bus taxi downtown crowd subway bridge car cars"),
            "electronic", "restless", ("synths", "drum machine", "deep bass", "electric piano"), 112),
    Setting("scifi", _w("space astronaut rocket planet stars spaceship robot robotic computer screen screens hologram control laboratory monitor monitors futuristic cyborg machine android"),
            "cinematic electronic", "awestruck", ("analog synths", "pulsing bass", "string swells", "glassy arpeggios"), 100),
    Setting("cafe", _w("coffee cup mug espresso food kitchen restaurant table plate cake breakfast dinner cafe bar wine saucer spoon tea"),
            "lounge jazz", "cozy", ("piano", "upright bass", "brushed drums", "vibraphone"), 92),
    Setting("animals", _w("dog puppy cat kitten bird birds rabbit bunny llama squirrel animal animals fox deer duck chicken owl tabby"),
            "whimsical orchestral", "playful", ("pizzicato strings", "glockenspiel", "clarinet", "flute"), 104),
    Setting("people", _w("man woman person people face portrait girl boy child children family friends couple"),
            "acoustic pop", "warm", ("acoustic guitar", "piano", "light percussion", "cello"), 96, weight=0.5),
    Setting("heritage", _w("ruins ruin castle church abbey cathedral arch arches stone temple monument tower palace statue"),
            "choral orchestral", "majestic", ("choir", "low strings", "french horns", "church organ"), 68),
    Setting("action", _w("race racing football soccer skateboard bike motorcycle fight chase game stadium player ball"),
            "rock", "intense", ("electric guitars", "driving drums", "bass", "synth stabs"), 140),
    Setting("winter", _w("snow ice mountain mountains winter glacier frost snowy"),
            "cinematic ambient", "wistful", ("celesta", "strings", "piano", "bowed vibraphone"), 72),
    Setting("party", _w("party dance dancing concert wedding birthday festival celebration stage audience fireworks"),
            "upbeat pop", "joyful", ("bright synths", "claps", "punchy bass", "brass stabs"), 122),
    Setting("desert", _w("desert road highway truck sand dune canyon"),
            "americana", "open", ("slide guitar", "acoustic guitar", "kick drum", "harmonica"), 98),
    Setting("air", _w("airplane plane aircraft helicopter balloon kite"),
            "soaring orchestral", "uplifting", ("french horns", "strings", "timpani", "harp"), 96),
    Setting("titles", _w("title text sign logo letters words poster"),
            "cinematic", "grand", ("brass", "timpani", "strings", "piano"), 90, weight=0.5),
    Setting("work", _w("office laptop meeting desk keyboard presentation phone business"),
            "corporate pop", "focused", ("plucked synths", "piano", "soft kick", "marimba"), 108),
)

DEFAULT_SETTING = Setting("default", frozenset(), "cinematic", "reflective", ("piano", "strings", "soft pads", "cello"), 90)

# What in a picture calls for one instrument of a setting's palette over the others. A scene's
# second instrument is the first of its setting's that a word of the caption calls for (else one
# chosen by the caption's hash), so two scenes of one setting still sound different.
INSTRUMENT_CUES: dict[str, frozenset[str]] = {
    "flute": _w("bird birds butterfly flower flowers breeze owl"),
    "harp": _w("stream river waterfall sky clouds"),
    "oboe": _w("sheep cow horse farm valley"),
    "woodwinds": _w("bird birds owl fern moss"),
    "soft hand percussion": _w("path trail jungle"),
    "cello": _w("portrait face alone old"),
    "warm pads": _w("sunset sunrise lake fog"),
    "soft strings": _w("boat shore harbor harbour canal"),
    "marimba": _w("beach island surf pool"),
    "drum machine": _w("traffic car cars bus taxi subway"),
    "deep bass": _w("night skyline downtown"),
    "electric piano": _w("bar crowd rain"),
    "glassy arpeggios": _w("screen screens monitor monitors computer hologram control laboratory"),
    "string swells": _w("space planet stars astronaut rocket sky"),
    "pulsing bass": _w("robot robotic machine android cyborg"),
    "upright bass": _w("wine bar dinner restaurant"),
    "brushed drums": _w("coffee espresso cup mug"),
    "vibraphone": _w("cake dessert tea"),
    "glockenspiel": _w("kitten puppy bunny rabbit"),
    "clarinet": _w("cat dog llama duck"),
    "light percussion": _w("children family friends smiling"),
    "french horns": _w("castle palace monument tower"),
    "church organ": _w("church cathedral abbey"),
    "low strings": _w("ruins ruin stone"),
    "celesta": _w("snow snowy frost"),
    "bowed vibraphone": _w("ice glacier"),
    "harmonica": _w("truck highway road"),
    "kick drum": _w("canyon dune"),
}

# Someone or something that can move: motion words only count when one of these is in the picture.
AGENT_WORDS = _w(
    "man woman person people girl boy child children kid kids family friends couple player rider skier surfer "
    "dancer crowd dog puppy cat kitten bird birds horse rabbit bunny llama squirrel fox deer duck animal "
    "car cars bus truck train bike bicycle motorcycle boat plane airplane helicopter robot astronaut"
)

MODIFIERS: tuple[Modifier, ...] = (
    Modifier(_w("dark night shadow shadows black gloomy dim"), "brooding", -8, minor=True),
    Modifier(_w("sunny sun bright sunlight sunset sunrise golden colorful daylight"), "radiant", 4, minor=False),
    Modifier(_w("neon lights glowing"), "electric", 6),
    Modifier(_w("running flying driving racing jumping dancing riding speeding fast chasing"), "driving", 16, needs_agent=True),
    Modifier(_w("sitting sleeping lying resting still quiet alone perched asleep peaceful"), "tranquil", -8),
    Modifier(_w("rain rainy storm thunder fog foggy cloudy grey gray"), "melancholic", -6, minor=True),
    Modifier(_w("mist misty haze hazy smoke"), "dreamy", -4),
    Modifier(_w("smiling happy laughing playing fun"), "cheerful", 6, minor=False),
    Modifier(_w("sad crying lonely empty abandoned"), "melancholic", -10, minor=True),
    Modifier(_w("scary creepy horror skull ghost"), "tense", -4, minor=True),
    Modifier(_w("flag parade anthem"), "proud", 2, minor=False),
    Modifier(_w("hole burrow cave tunnel underground"), "curious", -2),
    Modifier(_w("old ancient ruins ruin"), "timeless", -4),
    Modifier(_w("cartoon animated"), "whimsical", 4),
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
    "piano guitar guitars strings violin violins viola cello flute harp drums bass synth synths saxophone sax trumpet "
    "brass choir organ ukulele banjo marimba glockenspiel clarinet horns horn percussion oboe bassoon celesta "
    "vibraphone harmonica accordion timpani pads synthesizer mandolin sitar koto"
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

"""The offline bridge's moods agree and its families fit the footage, on BLIP-style captions.

The captions are written as BLIP-base writes them: short, lower-case, "a man ...", objects
"sitting on top of" things. `pytest -s tests/test_offline_moods.py` (or
`python -m tests.test_offline_moods`) prints the caption -> family -> prompt table.
"""

import itertools
import re

import pytest

from scoretool.bridge import PROMPT_LIMIT, load_bridge
from scoretool.bridge.families import DEFAULT, FAMILIES
from scoretool.bridge.lexicon import GENRE_WORDS, INSTRUMENT_WORDS, MODIFIERS, MOODS, agree, tempo_word
from scoretool.bridge.offline import best_family

CAPTIONS = [
    # ceremonies
    ("a bride and groom standing at the altar", "ceremony"),
    ("a group of graduates in caps and gowns", "ceremony"),
    ("a man and a woman cutting a wedding cake", "ceremony"),
    # celebration
    ("a birthday cake with lit candles on a table", "celebration"),
    ("a group of people at a party with balloons", "celebration"),
    ("fireworks in the night sky over a city", "celebration"),
    ("a group of friends toasting with champagne", "celebration"),
    # performance
    ("a band playing on stage in front of a crowd", "performance"),
    ("a man playing a guitar on stage", "performance"),
    # sport
    ("a soccer player kicking a ball on a field", "sport"),
    ("a basketball player jumping to dunk the ball", "sport"),
    ("a man riding a wave on top of a surfboard", "sport"),
    ("a person skiing down a snowy slope", "sport"),
    ("a group of runners running a marathon", "sport"),
    # products and tech
    ("a cell phone sitting on top of a wooden table", "products"),
    ("a pair of headphones on a white background", "products"),
    ("a close up of a smart watch on a wrist", "products"),
    ("a black camera sitting on a table", "products"),
    # work
    ("a group of people sitting around a conference table", "work"),
    ("a woman giving a presentation in an office", "work"),
    ("a laptop computer sitting on top of a desk", "work"),
    ("a construction worker wearing a hard hat", "industry"),
    ("a man welding a piece of metal in a factory", "industry"),
    # kids
    ("a little girl playing with a toy", "kids"),
    ("a baby sleeping in a crib", "kids"),
    ("two children playing on a playground", "kids"),
    # nature, sea, winter, desert
    ("a green field with trees and a blue sky", "nature"),
    ("a waterfall in the middle of a forest", "nature"),
    ("a field of flowers with mountains in the background", "nature"),
    ("a beach with waves crashing on the shore", "sea"),
    ("a sailboat on the ocean at sunset", "sea"),
    ("a snow covered tree in the winter", "winter"),
    ("a car driving through the desert", "desert"),
    # animals and wildlife
    ("a dog running on the beach", "animals"),
    ("a cat sleeping on a couch", "animals"),
    ("a herd of elephants walking across a field", "wildlife"),
    ("a lion lying in the grass", "wildlife"),
    # the city by day and by night
    ("a man riding a bike down a street", "city"),
    ("a busy city street with people walking", "city"),
    ("a city street at night with neon lights", "city at night"),
    ("a city skyline at night", "city at night"),
    # travel
    ("a suitcase sitting on a bed in a hotel room", "travel"),
    ("an airplane flying over the clouds", "travel"),
    ("a train pulling into a station", "travel"),
    ("a woman with a backpack looking at a map", "travel"),
    # grief
    ("a group of people standing around a coffin", "grief"),
    ("a funeral service in a church", "grief"),
    ("a woman crying at a grave", "grief"),
    ("a cemetery with tombstones", "grief"),
    ("a casket covered in flowers", "grief"),
    # horror
    ("a creepy doll in a dark room", "horror"),
    ("a ghost standing in a dark hallway", "horror"),
    ("a skull on a table with candles", "horror"),
    # food
    ("a plate of pasta on a table", "food"),
    ("a chef cooking in a kitchen", "food"),
    ("a pizza sitting on top of a wooden table", "food"),
    ("a bowl of fruit on a counter", "food"),
    # gaming
    ("a man playing a video game on a television", "gaming"),
    ("a close up of a game controller", "gaming"),
    # heritage, space, action, romance, wellness, portraits
    ("the ruins of an old abbey with stone arches", "heritage"),
    ("an astronaut floating in space", "space"),
    ("a rocket launching into the sky", "space"),
    ("a police car chasing a man down the street", "action"),
    ("an explosion in the middle of a city street", "action"),
    ("a couple kissing on a bench at sunset", "romance"),
    ("a man and a woman holding hands on the beach", "romance"),
    ("a woman doing yoga on a mat", "wellness"),
    ("a man with a beard looking at the camera", "portrait"),
    ("a blurry photo of a white wall", "default"),
    # cues that pull apart: the moods must still agree
    ("a funeral on a sunny day", "grief"),
    ("a man running through a field at night", "nature"),
    ("a happy child crying in the rain", "kids"),
    ("a dark scary forest with fog", "horror"),
]


# The offline bridge's prompt: "<Mood> and <mood> <genre> with <instruments>, <tempo> tempo, <N> BPM, in <key>".
SHAPE = re.compile(r"^(?P<a>[a-z]+) and (?P<b>[a-z]+) (?P<genre>.+?) with (?P<instruments>.+), "
                   r"(?P<tempo>[a-z]+) tempo, (?P<bpm>\d+) BPM, in (?P<key>[A-G](?:-sharp|-flat)? (?:major|minor))$")
FAMILY = {f.name: f for f in FAMILIES + (DEFAULT,)}


def parts(prompt: str) -> dict[str, str]:
    found = SHAPE.match(prompt[0].lower() + prompt[1:])
    assert found, prompt
    return found.groupdict()


def mood_words(prompt: str) -> list[str]:
    """The prompt's two mood words and its tempo word."""
    p = parts(prompt)
    return [p["a"], p["b"], p["tempo"]]


@pytest.fixture(scope="module")
def bridge():
    return load_bridge("offline")


def table(bridge) -> list[tuple[str, str, str]]:
    return [(c, best_family(c).name, bridge.music_prompt(c, summary=None, user_prompt=None, kind="image").text) for c, _ in CAPTIONS]


def markdown(rows: list[tuple[str, str, str]]) -> str:
    return "\n".join(["| caption | family | prompt |", "|---|---|---|", *(f"| {c} | {f} | {p} |" for c, f, p in rows)])


def test_each_caption_finds_its_family_and_its_moods_agree(bridge):
    rows = table(bridge)
    print("\n" + markdown(rows))
    assert len(CAPTIONS) >= 40
    for (caption, expected), (_, family, prompt) in zip(CAPTIONS, rows):
        assert family == expected, (caption, family)
        p = parts(prompt)
        assert p["genre"] == FAMILY[family].genre and p["instruments"].startswith(FAMILY[family].instruments[0]), prompt
        assert len(prompt) <= PROMPT_LIMIT
        moods = mood_words(prompt)
        assert all(m in MOODS for m in moods) and moods[0] != moods[1], prompt
        for a, b in itertools.combinations(moods, 2):
            assert agree(a, b), f"{caption!r}: {a!r} and {b!r} clash in {prompt!r}"


def test_darker_moods_are_in_a_minor_key_and_brighter_in_a_major(bridge):
    for caption, family in CAPTIONS:
        prompt = bridge.music_prompt(caption, summary=None, user_prompt=None, kind="image").text
        moods = mood_words(prompt)[:2]
        if all(MOODS[m][0] < -0.25 for m in moods):
            assert prompt.endswith("minor"), prompt
        if all(MOODS[m][0] > 0.25 for m in moods):
            assert prompt.endswith("major"), prompt


def test_the_mood_model_tells_the_pairs_that_clash():
    # The issue's own examples, and their like: opposite on valence, or on arousal.
    for a, b in [("brooding", "warm"), ("driving", "serene"), ("mournful", "joyful"), ("tense", "peaceful"),
                 ("melancholic", "cheerful"), ("euphoric", "somber"), ("serene", "fast"), ("energetic", "slow")]:
        assert not agree(a, b), (a, b)
    for a, b in [("serene", "airy"), ("mournful", "solemn"), ("tense", "ominous"), ("brooding", "cool"),
                 ("joyful", "festive"), ("tense", "gentle"), ("calm", "moderate")]:
        assert agree(a, b), (a, b)


def test_every_family_is_consistent_data():
    for family in FAMILIES + (DEFAULT,):
        assert not set(family.genre.split()) & set(MOODS), family.name  # a genre names no mood: any scene's moods may join it
        for a, b in itertools.combinations(family.moods, 2):
            assert agree(a, b), (family.name, a, b)
        for bpm in range(family.bpm[0], family.bpm[1] + 1):
            assert any(agree(m, tempo_word(bpm)) for m in family.moods), (family.name, bpm)
        assert set(family.genre.split()) & GENRE_WORDS, family.name  # "... pop", "... orchestral": a user's genre replaces it
        assert all(set(i.split()) & INSTRUMENT_WORDS for i in family.instruments), family.name
        kinds = [i.split()[-1].rstrip("s") for i in family.instruments]
        assert len(kinds) == len(set(kinds)), family.name
    assert all(m.mood in MOODS for m in MODIFIERS)


def test_a_video_keeps_one_genre_while_scene_moods_follow_their_pictures(bridge):
    captions = ["a bride and groom standing at the altar", "a group of people at a party with balloons",
                "a birthday cake with lit candles on a table", "people dancing at a wedding party"]
    summary = bridge.video_summary(captions).text
    assert best_family(summary).name == "ceremony"  # a wedding, with its party
    prompts = [bridge.music_prompt(c, summary=summary, user_prompt=None, kind="video").text for c in captions]
    assert {parts(p)["genre"] for p in prompts} == {"chamber orchestral"}, prompts
    for caption, prompt in zip(captions, prompts):
        scene = best_family(caption)
        assert mood_words(prompt)[0] in scene.moods and scene.instruments[0] in prompt, (scene.name, prompt)
        for a, b in itertools.combinations(mood_words(prompt), 2):
            assert agree(a, b), prompt
    assert {best_family(c).name for c in captions} == {"ceremony", "celebration"}


def test_the_old_fallbacks_are_gone(bridge):
    """Unrecognised scenes used to get "warm acoustic pop"; a phone on a table got lounge jazz."""
    funeral = bridge.music_prompt("a group of people standing around a coffin in a church", summary=None, user_prompt=None, kind="image").text
    phone = bridge.music_prompt("a cell phone sitting on top of a wooden table", summary=None, user_prompt=None, kind="image").text
    assert "neoclassical" in funeral and "minor" in funeral and "acoustic pop" not in funeral
    assert "electronic" in phone and "jazz" not in phone


if __name__ == "__main__":
    print(markdown(table(load_bridge("offline"))))

from pathlib import Path

import pytest

from scoretool.bridge import PROMPT_LIMIT, load_bridge, trim_prompt
from scoretool.bridge.lexicon import GENRE_WORDS

# Captions of the shared media's scenes, as BLIP-base writes them for these pictures.
SCENES = {
    "bbb meadow": ["a green field with trees and a blue sky", "a field of grass with trees", "a tree in a field"],
    "bbb stream": ["a stream in the woods", "a small river in a forest"],
    "bbb bird": ["a bird sitting on a branch", "the peach open movie project presents"],
    "tos desk": ["two people sitting at a desk with computer screens", "a control room with neon lights"],
    "tos robot": ["a robot head in the dark", "a woman's face with glowing lights"],
    "coffee": ["a cup of coffee on a red saucer on a wooden table"],
    "abbey": ["the ruins of an old abbey with stone arches and blue sky"],
    "astronaut": ["a woman in an orange space suit smiling"],
}


class TextBridge:
    """The offline bridge with its answers as plain text (source and reason are tested elsewhere)."""

    def __init__(self, bridge):
        self.bridge = bridge

    def __getattr__(self, name):
        method = getattr(self.bridge, name)
        return lambda *args, **kwargs: method(*args, **kwargs).text


@pytest.fixture
def bridge():
    return TextBridge(load_bridge("offline"))


def test_prompts_have_a_genre_a_tempo_a_key_and_fit_the_limit(bridge):
    captions = {k: bridge.scene_caption(v) for k, v in SCENES.items()}
    summary = bridge.video_summary(list(captions.values()))
    for name, caption in captions.items():
        prompt = bridge.music_prompt(caption, summary=summary, user_prompt=None, kind="video")
        assert 20 < len(prompt) <= PROMPT_LIMIT, name
        assert " BPM" in prompt and (" major" in prompt or " minor" in prompt), prompt
        assert any(g in prompt.lower() for g in ("orchestral", "ambient", "jazz", "electronic", "pop", "cinematic", "folk", "rock")), prompt


def test_different_pictures_give_different_prompts(bridge):
    prompts = [bridge.music_prompt(bridge.scene_caption(c), summary=None, user_prompt=None, kind="image") for c in SCENES.values()]
    assert len(set(prompts)) == len(prompts)


def test_one_video_shares_one_key_family(bridge):
    captions = [bridge.scene_caption(SCENES[k]) for k in ("bbb meadow", "bbb stream", "bbb bird")]
    summary = bridge.video_summary(captions)
    prompts = [bridge.music_prompt(c, summary=summary, user_prompt=None, kind="video") for c in captions]
    keys = {p.rsplit(" in ", 1)[1] for p in prompts}
    assert len(keys) <= 2  # the key, or its relative minor for a darker scene


def test_dark_scene_moves_to_the_minor(bridge):
    prompt = bridge.music_prompt("a man standing on a bridge at night", summary=None, user_prompt=None, kind="image")
    assert "minor" in prompt


def test_users_prompt_comes_first_and_takes_over_its_slots(bridge):
    prompt = bridge.music_prompt("a green field with trees", summary=None, user_prompt="melancholic jazz with solo piano", kind="image")
    assert prompt.startswith("Melancholic jazz with solo piano")
    assert "orchestral" not in prompt and "strings" not in prompt  # genre and instruments were the user's


def test_deterministic(bridge):
    a = bridge.music_prompt("a cup of coffee", summary="x", user_prompt=None, kind="video")
    b = load_bridge("offline").music_prompt("a cup of coffee", summary="x", user_prompt=None, kind="video").text
    assert a == b


def test_scene_caption_merges_near_duplicates(bridge):
    caption = bridge.scene_caption(["a bird on a branch", "a bird sitting on a branch", "a title over a bird"])
    assert caption.count("branch") == 1


def test_none_bridge_passes_the_caption_through():
    none = load_bridge("none")
    caption = none.scene_caption(["a", "a dog on a beach", "c"])
    assert caption.text == "a dog on a beach" and caption.source == "none"
    assert none.music_prompt(caption.text, summary="s", user_prompt=None, kind="video").text == "a dog on a beach"


def test_trim_prompt_cuts_at_a_word_boundary():
    text = "word " * 100
    trimmed = trim_prompt(text, 42)
    assert len(trimmed) <= 42 and trimmed.endswith("word")

"""The offline bridge on the shared sample media: sensible, varied prompts a person would accept.

The frame captions are what BLIP-base says about these pictures, per scene (3 frames at 20/50/80 %
of each scene; the photos give three near-identical captions). They are written out here so that
the test needs neither the media nor the 1 GB captioner.

    python -m tests.test_bridge_media      # prints the caption -> prompt table
"""

import re

import pytest

from scoretool.bridge import PROMPT_LIMIT, load_bridge
from scoretool.bridge.lexicon import GENRE_WORDS, INSTRUMENT_WORDS

MEDIA = {
    "big_buck_bunny_0_30.webm": [
        ["a green field with trees and a blue sky", "a field of grass with trees in the background", "a tree in a grassy field with clouds"],
        ["a stream running through a forest", "a small river in the woods", "a stream in the woods with rocks"],
        ["a bird sitting on a tree branch", "a bird on a branch with the words the peach open movie project presents", "a small bird perched on a branch"],
        ["a hole in the ground under a tree", "the title big buck bunny over a grassy hill", "a rabbit hole in a grassy hill"],
    ],
    "clip_01_tears_of_steel.mp4": [
        ["a close up of a robot face", "a man standing on a bridge over a canal", "a man standing on a bridge in the city"],
        ["two people sitting at a desk with computer screens", "a man and a woman in a control room with neon lights", "two people looking at monitors in a dark room"],
        ["a robot head in the dark", "a close up of a robot with glowing lights", "a woman's face with glowing lights"],
    ],
    "clip_02_caminandes.mp4": [
        ["a llama standing on the side of a road", "a llama standing next to a road with mountains", "a cartoon llama in a desert landscape"],
    ],
    "bigbuckbunny.mp4": [
        ["a cartoon rabbit standing in the grass", "a large white rabbit stretching in front of a tree", "a cartoon bunny in a field"],
    ],
    "astronaut.png": [["a woman in an orange space suit smiling", "a woman in an orange space suit holding a helmet", "an astronaut posing in front of an american flag"]],
    "coffee.png": [["a cup of coffee on a red saucer on a wooden table", "a red cup of coffee with a spoon", "a cup of coffee on a wooden table"]],
    "chelsea.png": [["a close up of a cat's face", "a tabby cat looking at the camera", "a close up of a cat with green eyes"]],
    "Wall.jpg": [["the ruins of an old abbey with stone arches and blue sky", "a stone arch in the ruins of a church", "the ruins of an abbey against a blue sky"]],
}

SHAPE = re.compile(r"^[A-Z][^,]* (?:" + "|".join(sorted(GENRE_WORDS, key=len, reverse=True)) + r")\b.* with .+, \w+ tempo, \d{2,3} BPM, in [A-G](?:-flat|-sharp)? (?:major|minor)$")


def table():
    """[(media, scene number, scene caption, prompt)] as the pipeline would make them."""
    bridge = load_bridge("offline")
    rows = []
    for name, scenes in MEDIA.items():
        kind = "image" if name.endswith((".png", ".jpg")) else "video"
        captions = [bridge.scene_caption(frames).text for frames in scenes]
        summary = bridge.video_summary(captions).text
        for number, caption in enumerate(captions, 1):
            rows.append((name, number, caption, bridge.music_prompt(caption, summary=summary, user_prompt=None, kind=kind).text))
    return rows


def instruments(prompt: str) -> str:
    return re.search(r" with (.+), \w+ tempo, ", prompt).group(1)


@pytest.fixture(scope="module")
def rows():
    return table()


def test_every_prompt_has_the_llm_shape_a_genre_instruments_a_tempo_and_a_key(rows):
    for name, number, caption, prompt in rows:
        assert len(prompt) <= PROMPT_LIMIT, prompt
        assert SHAPE.match(prompt), prompt
        assert sum(w in INSTRUMENT_WORDS for w in re.findall(r"[a-z]+", instruments(prompt))) >= 2, prompt


def test_no_repeated_words_or_instrument_families_inside_a_prompt(rows):
    for *_, prompt in rows:
        head = prompt.split(" with ", 1)[0].lower().split(" and ")
        assert len(head) == len(set(head)), prompt
        families = [i.split()[-1].rstrip("s") for i in instruments(prompt).replace(" and ", ", ").split(", ")]
        assert len(families) == len(set(families)), prompt


def test_different_captions_give_different_prompts(rows):
    prompts = [r[3] for r in rows]
    assert len(set(prompts)) == len(prompts)


def test_scenes_of_one_video_share_a_genre_and_a_key_family(rows):
    for name in ("big_buck_bunny_0_30.webm", "clip_01_tears_of_steel.mp4"):
        prompts = [r[3] for r in rows if r[0] == name]
        keys = {p.rsplit(" in ", 1)[1] for p in prompts}
        assert len(keys) <= 2  # the key and its relative minor
        genres = {" ".join(p.split(" with ")[0].split()[-2:]) for p in prompts}
        assert len(genres) == 1, genres


def test_what_the_pictures_show_is_heard(rows):
    by = {(r[0], r[1]): r[3].lower() for r in rows}
    assert "jazz" in by["coffee.png", 1]
    assert "choral" in by["Wall.jpg", 1] and "choir" in by["Wall.jpg", 1]
    assert "electronic" in by["clip_01_tears_of_steel.mp4", 2] and "minor" in by["clip_01_tears_of_steel.mp4", 3]
    assert "electronic" in by["astronaut.png", 1]
    assert "storybook orchestral" in by["chelsea.png", 1]
    assert "driving" not in by["big_buck_bunny_0_30.webm", 2]  # a river running is not a chase
    tempo = {k: int(re.search(r"(\d+) bpm", v).group(1)) for k, v in by.items()}
    assert tempo["Wall.jpg", 1] < tempo["coffee.png", 1] < tempo["astronaut.png", 1]


def test_a_users_prompt_still_leads_and_keeps_its_slots():
    bridge = load_bridge("offline")
    prompt = bridge.music_prompt("a cup of coffee on a red saucer", summary=None, user_prompt="lo-fi hip hop, 80 BPM", kind="image").text
    assert prompt.startswith("Lo-fi hip hop, 80 BPM") and "jazz" not in prompt and prompt.count("BPM") == 1


def test_style_hook_acts_after_the_user_and_before_the_picture():
    bridge = load_bridge("offline")
    styled = bridge.music_prompt("a cup of coffee", summary=None, user_prompt=None, kind="image", style="cinematic orchestral").text
    assert styled.startswith("Cinematic orchestral") and "jazz" not in styled
    both = bridge.music_prompt("a cup of coffee", summary=None, user_prompt="solo piano", kind="image", style="cinematic orchestral").text
    assert both.startswith("Solo piano, cinematic orchestral")


if __name__ == "__main__":
    print("| media | scene | scene caption (offline aggregation of BLIP frame captions) | offline prompt | chars |")
    print("|---|---|---|---|---|")
    for name, number, caption, prompt in table():
        print(f"| {name} | {number} | {caption} | {prompt} | {len(prompt)} |")

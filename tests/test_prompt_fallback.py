"""A scene always gets a prompt (#13 item 7), even when the captioner gives its frames no text.

The captioner here is the real tiny BLIP behind a `Captioner` that returns empty text for frames
of one colour, as a captioner that comes back empty for some pictures does: the frames, the
captioning stage, the bridge and the plan are the real ones.
"""

import json

import numpy as np
import pytest

import scoretool
from scoretool import Plan, Settings
from scoretool.caption import load_captioner
from scoretool.stages.prompts import NEUTRAL_CAPTION, write_prompts
from scoretool.bridge import load_bridge

from .helpers import make_clip


class BlankFor:
    """The tiny BLIP, except that frames whose mean colour is mostly `channel` get "" (a Captioner)."""

    def __init__(self, spec, channel: int | None):
        self.inner = load_captioner(spec)
        self.name, self.spec, self.batch_size = self.inner.name, self.inner.spec, self.inner.batch_size
        self.channel = channel  # 0 red, 1 green, 2 blue; None: every frame comes back empty

    def caption(self, images):
        texts = self.inner.caption(images)
        return ["" if self._blank(image) else text for image, text in zip(images, texts)]

    def _blank(self, image) -> bool:
        mean = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0)
        return self.channel is None or int(mean.argmax()) == self.channel


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "rgb.mp4", colours=("red", "green", "blue"), seconds=2.5)


@pytest.fixture(scope="module")
def settings(tiny_models):
    return Settings(caption_model=str(tiny_models["blip"]), music_model=str(tiny_models["musicgen"]), device="cpu",
                    bridge="offline")


def plan_with(clip, settings, channel, **kw):
    return scoretool.plan(str(clip), settings, captioners=lambda spec: BlankFor(spec, channel), **kw)


def test_a_scene_with_empty_captions_takes_its_neighbours_and_the_video_is_scored(clip, settings, tmp_path):
    the_plan = plan_with(clip, settings, channel=1)  # the green scene's frames come back empty
    first, blank, last = the_plan.scenes
    assert blank.frame_captions == ["", "", ""] and not blank.caption
    assert all(c for c in first.frame_captions + last.frame_captions)  # the other scenes were captioned
    assert blank.prompt == first.prompt  # the offline bridge on scene 1's caption, the same summary
    assert blank.prompt_source == "neighbour" and first.prompt_source == "offline" == last.prompt_source
    assert blank.fallback_reason == ("caption: no caption (the captioner returned empty text for its frames); "
                                     "prompt from scene 1's caption")
    assert first.fallback_reason is None and last.fallback_reason is None
    the_plan.save(tmp_path / "rgb.plan.json")
    assert Plan.load(tmp_path / "rgb.plan.json").scenes[1].prompt_source == "neighbour"  # the plan keeps it
    result = scoretool.render(str(tmp_path / "rgb.plan.json"), str(tmp_path / "music.wav"))
    assert (tmp_path / "music.wav").stat().st_size > 0 and result.plan.scenes[1].prompt == first.prompt


def test_when_no_scene_has_a_caption_each_gets_the_neutral_brief_with_the_presets_style(clip, settings):
    bare = plan_with(clip, settings, channel=None)
    assert bare.video_summary is None  # nothing to summarise: no summary made up
    neutral = load_bridge("offline").music_prompt(NEUTRAL_CAPTION, summary=None, user_prompt=None, kind="video").text
    for scene in bare.scenes:
        assert scene.prompt == neutral and scene.prompt_source == "default"
        assert scene.fallback_reason.endswith("nor has any other scene; prompt from a neutral brief")
    styled = plan_with(clip, Settings(**{**settings.__dict__, "preset": "lofi"}), channel=None)
    for scene in styled.scenes:
        assert scene.prompt_source == "default" and "lo-fi" in scene.prompt.lower(), scene.prompt
        assert scene.fallback_reason.endswith("a neutral brief in the style of preset lofi")


def test_an_edited_plan_falls_back_to_a_neighbours_prompt_then_the_summary(clip, settings, tmp_path):
    path = tmp_path / "edited.plan.json"
    plan_with(clip, settings, channel=None).save(path)
    data = json.loads(path.read_text())
    data["video_summary"] = "3 scene(s): snow, glacier, frost"
    data["scenes"][0]["prompt"], data["scenes"][0]["prompt_source"] = "solo piano, tender", "user"
    data["scenes"][1]["prompt"], data["scenes"][2]["prompt"] = "", "  "  # emptied (blanks count as empty)
    path.write_text(json.dumps(data))

    edited = Plan.load(path)
    write_prompts(edited)
    _, second, third = edited.scenes
    assert second.prompt == third.prompt == "solo piano, tender" and second.prompt_source == "neighbour"
    assert second.fallback_reason.endswith("; prompt copied from scene 1")

    edited = Plan.load(path)
    edited.scenes[0].prompt = ""
    write_prompts(edited)
    summary = load_bridge("offline").music_prompt(data["video_summary"], summary=data["video_summary"], user_prompt=None,
                                                  kind="video").text
    assert {s.prompt for s in edited.scenes} == {summary} and {s.prompt_source for s in edited.scenes} == {"summary"}
    assert "celesta" in summary  # the summary's snow is heard (the winter family)


def test_the_none_bridge_takes_the_neighbours_caption_as_it_is(clip, settings):
    the_plan = plan_with(clip, Settings(**{**settings.__dict__, "bridge": "none"}), channel=2)  # blue: the last scene
    *_, before, blank = the_plan.scenes
    assert not blank.caption and blank.prompt_source == "neighbour"
    assert blank.prompt == before.prompt and before.caption.startswith(blank.prompt)  # as it is (cut to the limit)
    assert blank.fallback_reason.endswith("prompt from scene 2's caption")


def test_an_llm_bridge_is_not_asked_about_nothing_and_writes_the_stand_in_from_the_neighbours_caption():
    from scoretool.bridge.llm import LLMBridge

    from .test_bridge_anthropic import SCENES, FakeAnthropic, Notes, Reply, llm, make_plan

    def script(n, body):
        text = body["messages"][-1]["content"]
        if text.startswith("Frame captions"):
            return Reply(text=f"Scene showing {text.splitlines()[1].removeprefix('- ')}")
        if text.startswith("Scene captions"):
            return Reply(text="A gentle day in a sunny cartoon meadow, from field to forest to a rabbit hole.")
        scene = text.split("This scene: ")[1].splitlines()[0]
        return Reply(text=f"Calm pastoral orchestral with flute and strings, 84 BPM, in D major, for {scene[14:40]}")

    with FakeAnthropic(script) as server:
        the_plan = make_plan([SCENES[0], ["", " "], SCENES[2]])
        notes = Notes()
        write_prompts(the_plan, LLMBridge(llm(server)), notes)
    asked = [r["body"]["messages"][-1]["content"] for r in server.requests if r["method"] == "POST"]
    assert sum(a.startswith("Frame captions") for a in asked) == 2  # not for the blank scene
    first, blank, _ = the_plan.scenes
    assert not blank.caption and blank.prompt_source == "neighbour" and first.prompt_source == "anthropic"
    assert blank.prompt == first.prompt and first.caption[len("Scene showing "):][:26] in blank.prompt
    assert any(n.startswith("scene 2: no caption") for n in notes.notes), notes.notes

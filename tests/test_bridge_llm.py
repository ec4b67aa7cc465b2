"""The checks every LLM answer goes through, and LLMBridge's retry / fallback bookkeeping,
with a scripted in-process LLM (an ordinary implementation of the `LLM` protocol)."""

import threading

import pytest

from scoretool.stages.prompts import write_prompts
from scoretool.bridge import PROMPT_LIMIT, LLMError, load_bridge, trim_prompt
from scoretool.bridge import prompts as P
from scoretool.bridge.llm import LLMBridge
from scoretool.bridge.validate import check
from scoretool.plans import Plan, Scene, Settings
from scoretool.progress import Reporter

from .helpers import media_info

GOOD = "Calm ambient with felt piano, warm pads and soft strings, slow 72 BPM, in A minor"


# --------------------------------------------------------------------------- the checks


@pytest.mark.parametrize("answer, cleaned", [
    (GOOD, GOOD),
    (f'"{GOOD}"', GOOD),
    (f"Prompt: {GOOD}", GOOD),
    (f"**Music prompt:** {GOOD}", GOOD),
    (f"Here is the prompt:\n{GOOD}", GOOD),  # a one-line preamble before the answer is dropped
    ("Upbeat lo-fi hip hop, dusty drums and mellow Rhodes, 84 BPM", "Upbeat lo-fi hip hop, dusty drums and mellow Rhodes, 84 BPM"),
    ("Tender café jazz with brushed drums and piano, 90 BPM", "Tender café jazz with brushed drums and piano, 90 BPM"),
])
def test_valid_looking_prompts_pass(answer, cleaned):
    result = check(answer, "prompt")
    assert result.problem is None and result.text == cleaned


@pytest.mark.parametrize("answer, problem", [
    ("", "empty"),
    ("   \n ", "empty"),
    (f"Sure! {GOOD}", "talks about the answer"),
    ("Certainly, here is a calm piano prompt for you", "talks about the answer"),
    ("I'm sorry, I can't help with that.", "talks about the answer"),
    (f"{GOOD}\nThis fits the quiet lake.", "2 lines"),
    ("Спокойная музыка с фортепиано, 72 BPM", "not in English"),
    ("平静的钢琴音乐 72 BPM", "not in English"),
    ("a dog on a beach at sunset", "no musical terms"),
    ("electron electron electron electron synth", "repeats"),
    ("minortball sports\x06 s\x06 fare cinemest", "control or unreadable"),
    ("piano", "too short"),
])
def test_junk_is_rejected_with_a_reason(answer, problem):
    result = check(answer, "prompt")
    assert result.problem and problem in result.problem


def test_too_long_is_soft_and_trimmed_at_a_word_boundary():
    long = GOOD + (", with a slowly rising cello line and distant chimes that drift in and out like fog over still water, "
                   "before a soft choir enters")
    result = check(long, "prompt")
    assert result.soft and "too long" in result.problem
    assert len(result.text) <= PROMPT_LIMIT and long.startswith(result.text) and long[len(result.text)] in " ,"


def test_captions_need_no_musical_terms_and_have_their_own_limit():
    assert check("A green meadow with trees under a blue sky.", "caption").problem is None
    assert check("word " * 80, "caption").problem  # repetitive
    assert check(" ".join(f"w{i}x" for i in range(90)), "caption").soft  # 300+ characters


def test_trim_prompt_never_ends_on_a_dangling_word():
    assert trim_prompt("calm piano with strings and harp", 28) == "calm piano with strings"
    assert trim_prompt("a" * 300, 200) == "a" * 200
    assert trim_prompt("calm piano (soft strings, warm pads)", 30) == "calm piano"


def test_templates_examples_are_within_the_limit_and_distinct():
    for examples in (P.VIDEO_PROMPT_EXAMPLES, P.IMAGE_PROMPT_EXAMPLES):
        assert len(examples) == 2
        for _, answer in examples:
            assert check(answer, "prompt").problem is None, answer
    assert P.VIDEO_PROMPT_SYSTEM != P.IMAGE_PROMPT_SYSTEM


# --------------------------------------------------------------------------- LLMBridge


class ScriptedLLM:
    """Answers from a list (the last repeats); a string "!..." raises LLMError with that message."""

    name, model, concurrency = "scripted", "scripted-1", 4

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []
        self._lock = threading.Lock()

    def preflight(self):
        pass

    def complete(self, system, messages, max_tokens=256):
        with self._lock:
            self.calls.append((system, messages))
            answer = self.answers[min(len(self.calls) - 1, len(self.answers) - 1)]
        if answer.startswith("!"):
            raise LLMError(answer[1:])
        return answer


def prompt_of(bridge, **kwargs):
    args = {"summary": "a quiet lake at dawn", "user_prompt": None, "kind": "video", **kwargs}
    return bridge.music_prompt("a boat on a calm lake", **args)


def test_a_bad_answer_is_shown_back_to_the_model_with_the_problem():
    llm = ScriptedLLM(["Sure! Here you go.", GOOD])
    answer = prompt_of(LLMBridge(llm))
    assert answer.text == GOOD and answer.source == "scripted"
    _, second = llm.calls[1]
    assert second[-2] == {"role": "assistant", "content": "Sure! Here you go."}
    assert second[-1]["role"] == "user" and "talks about the answer" in second[-1]["content"]


def test_a_failed_call_falls_back_without_a_second_ask():
    llm = ScriptedLLM(["!HTTP 500 after 4 tries"])
    answer = prompt_of(LLMBridge(llm))
    assert answer.source == "offline-fallback" and answer.reason == "scripted: HTTP 500 after 4 tries"
    assert len(llm.calls) == 1


def test_templates_image_video_style_and_users_brief():
    llm = ScriptedLLM([GOOD])
    bridge = LLMBridge(llm)
    prompt_of(bridge, kind="image")
    prompt_of(bridge, user_prompt="solo harp", style="cinematic: brass and timpani")
    image_system, image_messages = llm.calls[0]
    video_system, video_messages = llm.calls[1]
    assert image_system == P.IMAGE_PROMPT_SYSTEM and image_messages[-1]["content"].startswith("Picture: a boat")
    assert video_system == P.VIDEO_PROMPT_SYSTEM
    last = video_messages[-1]["content"]
    assert "Whole video: a quiet lake at dawn" in last and "User's brief: solo harp" in last
    assert "Style preset: cinematic: brass and timpani" in last


def test_write_prompts_keeps_edits_and_records_sources_per_scene():
    llm = ScriptedLLM(["A calm lake.", "A calm lake at dawn, then a storm.", GOOD])
    plan = Plan(input=media_info(), settings=Settings(bridge="anthropic"), scenes=[
        Scene(number=1, start=0, end=1, frame_captions=["a lake"]),
        Scene(number=2, start=1, end=2, frame_captions=["a storm"], caption="a storm", prompt="solo piano", prompt_source="user"),
    ])
    write_prompts(plan, LLMBridge(llm), Reporter())
    assert plan.scenes[1].prompt == "solo piano" and plan.scenes[1].prompt_source == "user"
    assert plan.scenes[0].prompt == GOOD and plan.scenes[0].prompt_source == "scripted"
    assert plan.scenes[0].caption_source == "scripted" and plan.video_summary_source == "scripted"
    assert len(llm.calls) == 3  # one caption, the summary, one prompt: scene 2's prompt was never asked for


def test_the_offline_and_none_bridges_say_where_their_answers_come_from():
    assert load_bridge("offline").music_prompt("a lake", summary=None, user_prompt=None, kind="image").source == "offline"
    assert load_bridge("none").video_summary(["a", "b"]).source == "none"

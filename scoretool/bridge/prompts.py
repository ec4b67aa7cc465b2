"""Every text the LLM bridges send, as plain templates: read them, change them, nothing else to touch.

Four steps, as in Mozart's Touch (captions -> LLM -> MusicGen), plus a whole-video pass:

1. CAPTION: a scene's frame captions (BLIP, a few per scene) -> one short scene caption.
2. SUMMARY: all scene captions -> one line about the whole video (given to every scene in step 3).
3. VIDEO_PROMPT: a scene caption + the summary -> a music prompt for that scene.
   IMAGE_PROMPT: a picture's caption -> a music prompt (a still image has no neighbours).
4. RETRY: when an answer fails the checks (validate.py), the model is told what was wrong once.

Templates are `str.format` strings; each `*_EXAMPLES` list holds (user message, assistant answer)
pairs sent as earlier turns of the chat: two few-shot examples per bridging template.
"""

from __future__ import annotations

from .base import PROMPT_LIMIT

CAPTION_LIMIT = 300  # characters; a scene caption is one sentence
SUMMARY_LIMIT = 300

# --------------------------------------------------------------------------- 1. scene caption

CAPTION_SYSTEM = """\
You describe one scene of a video for a film composer. You are given captions of a few frames \
of the scene, written by an automatic image captioner: they repeat each other, are sometimes \
wrong, and may quote titles or text shown on screen. Write one plain English sentence of at most \
25 words saying what the scene shows: the place, the main subject and what it does, and the \
light, colours or weather when the captions mention them. Keep what the captions agree on and \
drop captioner noise. If the user gave a brief, keep the details that matter for it. Answer with \
the sentence only."""

CAPTION_USER = """\
Frame captions:
{frame_captions}
User's brief: {brief}"""

# --------------------------------------------------------------------------- 2. whole video

SUMMARY_SYSTEM = """\
You summarise a whole video in one line for a film composer who will score it scene by scene. \
You are given one caption per scene, in order. Write one plain English sentence of at most 35 \
words: what the video is about as a whole, its overall mood, and how it develops from the first \
scene to the last. Answer with the sentence only."""

SUMMARY_USER = """\
Scene captions, in order:
{scene_captions}"""

# --------------------------------------------------------------------------- 3. music prompts

_PROMPT_RULES = f"""\
The prompt is one line of plain English under {PROMPT_LIMIT} characters, in musical terms: a \
mood, a genre, two or three instruments, a tempo feel with a BPM number, and a key. Describe \
sound, not pictures: no story, no names, no lyrics. If the user gave a brief, it wins over what \
the picture suggests: keep its genre, instruments, mood and tempo, and use the picture only to \
fill what it leaves open. A style preset, when given, comes next, before the picture. Answer with \
the prompt only: no quotes, no label, no explanation."""

VIDEO_PROMPT_SYSTEM = f"""\
You are a film composer writing briefs for a text-to-music model (MusicGen), one scene of a \
video at a time. The scenes of one video must sound like parts of one score: keep the key (or \
its relative minor), the tempo family and the core instruments that suit the whole-video \
summary, and change mood, energy and texture where this scene's picture changes.
{_PROMPT_RULES}"""

VIDEO_PROMPT_USER = """\
Whole video: {summary}
This scene: {caption}
Style preset: {style}
User's brief: {brief}"""

# Two scenes of one video: the second keeps the key family (D major -> B minor), the tempo
# and the guitar of the first, and changes the mood and texture with the picture.
VIDEO_PROMPT_EXAMPLES = [
    (
        VIDEO_PROMPT_USER.format(
            summary="A day in a small fishing village, from a calm sunrise over the harbour to a storm at night.",
            caption="Fishing boats resting on a still harbour at sunrise, gulls over the water.",
            style="none",
            brief="none",
        ),
        "Serene folk-orchestral, fingerpicked acoustic guitar, warm strings and soft flute, gentle 80 BPM, "
        "in D major, morning stillness",
    ),
    (
        VIDEO_PROMPT_USER.format(
            summary="A day in a small fishing village, from a calm sunrise over the harbour to a storm at night.",
            caption="Waves crash over the harbour wall in heavy rain at night.",
            style="none",
            brief="no drums, keep it sparse",
        ),
        "Stormy, sparse orchestral, tremolo acoustic guitar, surging low strings and dark horns, no drums, "
        "restless 80 BPM, in B minor",
    ),
]

IMAGE_PROMPT_SYSTEM = f"""\
You are a composer writing a brief for a text-to-music model (MusicGen): music to accompany one \
still picture, a short self-contained piece that fits what the picture shows and how it feels.
{_PROMPT_RULES}"""

IMAGE_PROMPT_USER = """\
Picture: {caption}
Style preset: {style}
User's brief: {brief}"""

IMAGE_PROMPT_EXAMPLES = [
    (
        IMAGE_PROMPT_USER.format(
            caption="A red vintage car parked on a sunny street in a small town.", style="none", brief="none"
        ),
        "Sunny retro soul, warm Hammond organ, twangy electric guitar and tight drums, laid-back groove at "
        "96 BPM, in F major",
    ),
    (
        IMAGE_PROMPT_USER.format(
            caption="A lone hiker on a snowy mountain ridge under a grey sky.",
            style="none",
            brief="ambient, no vocals",
        ),
        "Vast, solitary ambient, slow-swelling synth pads, distant felt piano and airy cello, no vocals, "
        "slow 66 BPM, in E minor",
    ),
]

# --------------------------------------------------------------------------- 4. second try

RETRY_USER = """\
That answer cannot be used: {problem}. Reply again with only {what}, on one line."""

WHAT = {
    "caption": "the one-sentence scene description",
    "summary": "the one-sentence summary of the whole video",
    "prompt": f"the music prompt (under {PROMPT_LIMIT} characters)",
}


def bullet_list(lines: list[str], numbered: bool = False) -> str:
    return "\n".join(f"{i}. {line}" if numbered else f"- {line}" for i, line in enumerate(lines, start=1))


def examples_as_messages(examples: list[tuple[str, str]]) -> list[dict[str, str]]:
    messages = []
    for user, assistant in examples:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages

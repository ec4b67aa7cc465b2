"""The default scene detector on real footage: clips from the labelled set (tests/data/scene_set.json),
built with ffmpeg once per test session. The whole set, every detector, is benchmarks/detection.py."""

import pytest

from scoretool.media.scenes import DEFAULT_DETECTOR, DETECTORS, detect_cuts
from scoretool.plans import Settings
from tests.conftest import needs_shared_media
from tests.scene_clips import at_rate, available, build, clip_frames, implied_labels, load_set

SET = load_set()
CLIPS = {clip["name"]: clip for clip in SET["clips"]}
TOLERANCE = 2  # frames, as in the benchmark


@pytest.fixture(scope="session")
def found(tmp_path_factory):
    """name -> the frames at which the default detector starts a new scene; each clip built and
    analysed once per session."""
    folder = tmp_path_factory.mktemp("scene-set")
    seen: dict[tuple[str, int], list[int]] = {}

    def frames_of(name: str, fps: int = SET["fps"]) -> list[int]:
        if (name, fps) not in seen:
            scene_set = SET if fps == SET["fps"] else at_rate(SET, fps)
            clip = next(c for c in scene_set["clips"] if c["name"] == name)
            if not available(scene_set, clip):
                pytest.skip(f"the footage of {name} is not here (shared sample media)")
            path = build(scene_set, clip, cache=folder)
            seen[name, fps] = [round(t * fps) for t in detect_cuts(str(path))]
        return seen[name, fps]

    return frames_of


def test_labels_are_what_the_recipes_make():
    """Every synthetic clip's labels are where its recipe puts the cuts and transition middles."""
    for clip in SET["clips"]:
        if "shots" in clip:
            assert clip["labels"] == implied_labels(clip), clip["name"]
            assert all(0 < label["frame"] < clip_frames(clip) for label in clip["labels"]), clip["name"]
            assert (clip["kind"] in ("flash", "motion")) == (not clip["labels"]), clip["name"]


def test_the_combined_detector_is_the_default_and_the_single_ones_stay():
    assert DEFAULT_DETECTOR == "combined" == Settings().detector
    assert {"content", "adaptive", "histogram"} <= set(DETECTORS)


@needs_shared_media
@pytest.mark.parametrize("name", [
    "montage_fast",  # the case: 7 cuts between similar shots 0.75-1.5 s apart
    "cut_desk_cut_in",  # a tighter framing of the same shot
    "dissolve_bridge_desk",  # 1 s crossfade: one boundary, at its middle
    "dissolve_pixels",  # 1 s pixel dissolve
    "fadeblack_fast",  # half a second through black
    "dip_white_slow",  # fade to white, hold, fade in
])
def test_finds_the_labelled_boundaries(found, name):
    labels = [label["frame"] for label in CLIPS[name]["labels"]]
    frames = found(name)
    assert len(frames) == len(labels), (frames, labels)
    for frame, label in zip(frames, labels):
        assert abs(frame - label) <= TOLERANCE, (frames, labels)


@needs_shared_media
@pytest.mark.parametrize("name", [
    "flash_white_desk",  # one white frame
    "flash_bright_llama",  # one over-exposed frame
    "sweep_llama",  # a light shape across the whole picture in 4 frames
    "sweep_desk",  # a dark one in 6
    "whip_astronaut",  # a half-second whip pan
    "pan_desk_fast",
])
def test_no_boundary_in_a_flash_or_motion(found, name):
    assert found(name) == []


@needs_shared_media
def test_repeated_frames_are_no_motion(found):
    """At 30 fps from 24 fps footage every fifth frame repeats the one before: a moving shot's
    neighbours must not look still, or its motion passes for a cut (AdaptiveDetector's does)."""
    frames = found("h_cut_bird_recrop", fps=30)
    assert len(frames) == 1 and abs(frames[0] - 50) <= TOLERANCE, frames  # the cut: 40 frames at 24 fps


@needs_shared_media
def test_real_clips(found):
    """The shared clips' known cuts; no boundary for the cars crossing the llama shot, nor for Big
    Buck Bunny's fade in from black at the very start."""
    assert found("caminandes") == []
    bbb = found("big_buck_bunny_0_30")
    assert len(bbb) == 3 and all(abs(f - g) <= TOLERANCE for f, g in zip(bbb, [283, 376, 551])), bbb

"""The tiny offline models of scoretool.testing load and behave like the real ones."""

import os
import re
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image

from scoretool import testing

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def offline():
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: patch the constant as well.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return testing.make_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def musicgen(tiny, offline):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny["musicgen"])
    return model, AutoProcessor.from_pretrained(tiny["musicgen"])


@pytest.fixture(scope="module")
def blip(tiny, offline):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(tiny["blip"])
    return model, BlipProcessor.from_pretrained(tiny["blip"])


def test_make_tiny_writes_ordinary_model_folders(tiny):
    assert set(tiny) == {"musicgen", "blip", "chat"}
    files = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json")
    for folder in tiny.values():
        for name in files:
            assert (folder / name).is_file(), folder / name


def test_musicgen_matches_musicgen_small_layout(musicgen):
    model, processor = musicgen
    config = model.config
    assert config.sampling_rate == 32_000
    assert config.audio_encoder.frame_rate == 50
    assert config.audio_encoder.hop_length == 640
    assert config.audio_encoder.num_quantizers == config.decoder.num_codebooks == 4
    assert config.decoder.audio_channels == 1
    assert processor.feature_extractor.sampling_rate == 32_000

    generation = model.generation_config
    special = config.decoder.vocab_size  # the id after the codes, like 2048 in musicgen-small
    assert generation.decoder_start_token_id == special
    assert generation.pad_token_id == generation.bos_token_id == special
    assert config.decoder.pad_token_id == config.decoder.bos_token_id == special
    assert generation.do_sample is True
    assert generation.guidance_scale == 3.0

    assert sum(p.numel() for p in model.parameters()) < 500_000


def test_musicgen_tokenizer_knows_prompt_words(musicgen):
    _, processor = musicgen
    ids = processor.tokenizer("Upbeat pop, 120 BPM: bright synths & drums!")["input_ids"]
    assert ids[-1] == processor.tokenizer.eos_token_id
    assert processor.tokenizer.unk_token_id not in ids


@pytest.mark.parametrize("frames", [3, 4, 50])
def test_musicgen_frames_plus_3_new_tokens_give_frames_times_640_samples(musicgen, frames):
    model, processor = musicgen
    inputs = processor(text=["a", "bb cc"], padding=True, return_tensors="pt")
    assert inputs["attention_mask"][0].tolist().count(0) > 0  # prompts of different lengths

    new_tokens = testing.musicgen_new_tokens(frames)
    assert new_tokens == frames + 3
    audio = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=True, guidance_scale=3.0)

    assert audio.shape == (2, 1, frames * 640)
    assert torch.isfinite(audio).all()
    assert (audio.std(dim=-1) > 0.01).all()  # not silent


def test_musicgen_audio_follows_the_generated_codes(musicgen):
    model, processor = musicgen
    inputs = processor(text=["calm piano", "calm piano"], padding=True, return_tensors="pt")
    audio = model.generate(**inputs, max_new_tokens=testing.musicgen_new_tokens(25))
    # Same prompt, independent samples: different codes must decode to different audio.
    assert not torch.allclose(audio[0], audio[1])
    assert audio.abs().max() < 1.0
    assert abs(audio.mean()) < 0.05  # no DC offset


def test_musicgen_new_tokens_refuses_too_few_frames():
    with pytest.raises(ValueError):
        testing.musicgen_new_tokens(2)


def _test_images() -> list[Image.Image]:
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return [Image.fromarray(noise), Image.new("RGB", (640, 480), (200, 30, 30))]


def test_blip_captions_two_images_with_vocabulary_words(blip):
    model, processor = blip
    inputs = processor(images=_test_images(), return_tensors="pt")
    assert inputs["pixel_values"].shape == (2, 3, testing.BLIP_IMAGE_SIZE, testing.BLIP_IMAGE_SIZE)

    out = model.generate(**inputs, max_new_tokens=12)
    captions = processor.batch_decode(out, skip_special_tokens=True)

    assert len(captions) == 2
    vocab = processor.tokenizer.get_vocab()
    for caption in captions:
        words = caption.split()
        assert words, "empty caption"
        assert all(re.fullmatch(r"[a-z]+", word) and word in vocab for word in words), caption
    assert captions[0] != captions[1]  # the caption depends on the image


def test_blip_config_is_consistent_with_tokenizer(blip):
    model, processor = blip
    tokenizer, text = processor.tokenizer, model.config.text_config
    assert text.vocab_size == len(tokenizer)
    assert text.bos_token_id == tokenizer.convert_tokens_to_ids("[DEC]") == tokenizer.bos_token_id
    assert text.sep_token_id == tokenizer.sep_token_id
    assert text.pad_token_id == tokenizer.pad_token_id == 0


def test_cli_writes_both_folders_deterministically(tmp_path, tiny):
    result = subprocess.run(
        [sys.executable, "-m", "scoretool.testing", "make-tiny", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    printed = dict(line.split("\t") for line in result.stdout.splitlines())
    assert printed == {name: str(tmp_path / name) for name in ("musicgen", "blip", "chat")}
    for name, folder in tiny.items():
        # Seeded: a second build is byte-for-byte the same model.
        rebuilt = tmp_path / name / "model.safetensors"
        assert rebuilt.read_bytes() == (folder / "model.safetensors").read_bytes()

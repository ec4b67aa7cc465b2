#!/usr/bin/env python3
"""Real-shape random-weight model folders: musicgen-small and blip-base architectures.

Nothing can be downloaded here, so benchmarks that run the whole pipeline (`scoretool score
--music-model DIR --caption-model DIR`) need model folders of the real size built from configs:
the architectures are bench.py's `small_config()` and `blip_config("blip-base")`, the weights are
random (seed 0), the tokenizers and processors are the tiny test models' (scoretool.testing), whose
ids fit the real vocabularies. The output is noise and word salad, but every matrix has the real
shape, so time and memory are those of the real models.

- MusicGen: the codec is made audible as the tiny one is (random codes decode to ~-20 dBFS audio,
  not a constant), so loudness normalisation and mixing see ordinary audio.
- BLIP: vision weights drawn at std 0.02 (the config's 1e-10 would make every activation tiny), the
  text config's special ids are the tiny tokenizer's, and the LM head never emits a
  special or an id past the tokenizer's vocabulary, so every caption is `max_new_tokens` words
  (real BLIP-base stops after about 10: the decoder share here is an upper bound).

Folders are built once into `cache_dir` (about 2.4 GB + 1 GB, a minute or two) and reused: each is
built in a temporary folder beside it and renamed into place, so a folder that exists is complete.

    python benchmarks/shapes.py [--cache DIR]     # prints musicgen<TAB>folder and blip<TAB>folder
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # bench.py's configs, and scoretool without an install
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench import _generation_config, blip_config, small_config  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scoretool" / "bench-shapes"
SEED = 0


def build_musicgen(folder: Path) -> None:
    import torch
    from transformers import MusicgenForConditionalGeneration

    from scoretool.testing import make_codec_audible, musicgen_processor, musicgen_tokenizer

    config = small_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = MusicgenForConditionalGeneration(config).eval()
        make_codec_audible(model.audio_encoder)
    model.generation_config = _generation_config(config.decoder.vocab_size)
    model.save_pretrained(folder)
    musicgen_processor(musicgen_tokenizer()).save_pretrained(folder)


def build_blip(folder: Path) -> None:
    import torch
    from transformers import BlipForConditionalGeneration

    from scoretool.testing import BLIP_SPECIAL_TOKENS, blip_processor, blip_tokenizer, never_emit

    tokenizer = blip_tokenizer()
    config = blip_config("blip-base")
    text = config.text_config
    text.bos_token_id = tokenizer.bos_token_id  # [DEC]: where captions start
    text.sep_token_id = text.eos_token_id = tokenizer.sep_token_id  # where they stop
    text.pad_token_id = tokenizer.pad_token_id
    # blip-base's config says 1e-10 (harmless under loaded weights): random vision weights that small
    # give activations around 1e-9, which quantize and round like nothing real. 0.02 is BERT's and ViT's.
    config.vision_config.initializer_range = 0.02
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = BlipForConditionalGeneration(config).eval()
    specials = [tokenizer.convert_tokens_to_ids(t) for t in BLIP_SPECIAL_TOKENS]
    never_emit(model, specials + list(range(len(tokenizer), text.vocab_size)))
    model.save_pretrained(folder)
    blip_processor(tokenizer, config.vision_config.image_size).save_pretrained(folder)


# role -> (folder name, version, builder). Bump a version when what its builder writes changes: the
# old folder is then rebuilt, not reused.
BUILDERS: dict[str, tuple[str, int, Callable[[Path], None]]] = {
    "musicgen": ("musicgen-small", 1, build_musicgen),
    "blip": ("blip-base", 2, build_blip),
}


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _build_once(cache_dir: Path, name: str, version: int, build: Callable[[Path], None]) -> Path:
    """`cache_dir/<name>-v<version>`, built unless present: in a temporary folder, then renamed."""
    final = cache_dir / f"{name}-v{version}"
    if _complete(final):
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=cache_dir))
    try:
        print(f"building a random-weight {name} in {final} (once)", file=sys.stderr, flush=True)
        build(work)
        if final.exists():  # an incomplete leftover (a complete one returned above)
            shutil.rmtree(final)
        try:
            work.rename(final)
        except OSError:  # another process renamed its copy first
            if not _complete(final):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def build_folders(cache_dir: str | Path = DEFAULT_CACHE) -> dict[str, Path]:
    """`{"musicgen": folder, "blip": folder}`: real-shape random-weight model folders, built once."""
    cache_dir = Path(cache_dir)
    return {role: _build_once(cache_dir, *how) for role, how in BUILDERS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where the folders live (default {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    for role, folder in build_folders(args.cache).items():
        print(f"{role}\t{folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

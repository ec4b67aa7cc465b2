"""Scenes generated together (bucketed `generate` calls) vs one call per scene, in one run.

    .venv/bin/python benchmarks/scene_batching.py [--model DIR] [--device cpu] [--out FILE.json]
    .venv/bin/python benchmarks/scene_batching.py --small --scale 0.08   # real-size shape, few tokens

Without --model it builds the tiny test model. Prints the number of generate calls and the wall
time of each way, and their ratio; the clips must match (a clip depends only on its prompt,
duration and seed), which the script checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SCENES = [  # a 60 s video's scenes (seconds, with their crossfade overlap)
    ("calm piano under a grey sky", 12.5),
    ("bright plucked strings, a bird on a branch", 4.0),
    ("soft pads over a river", 11.0),
    ("playful pizzicato, a rabbit in the grass", 4.5),
    ("warm orchestral swell", 9.5),
    ("gentle flute, a meadow", 3.5),
    ("tense low strings, night", 10.5),
    ("celebratory brass", 6.0),
]


def save_small_shape(tiny: str) -> str:
    """musicgen-small's architecture with random weights, beside the tiny model's processor (its
    token ids fit the bigger vocabulary), as an ordinary model folder."""
    import shutil

    import torch
    from transformers import MusicgenForConditionalGeneration

    from bench import _generation_config, small_config

    folder = Path(tempfile.mkdtemp()) / "musicgen-small-shape"
    torch.manual_seed(0)
    config = small_config()
    model = MusicgenForConditionalGeneration(config)
    model.generation_config = _generation_config(config.decoder.vocab_size)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        shutil.copy(Path(tiny) / name, folder / name)
    return str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a MusicGen folder or id (default: build the tiny test model)")
    parser.add_argument("--small", action="store_true",
                        help="musicgen-small's shape with random weights (saved to a temp folder), scenes scaled by --scale")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scene's length (e.g. 0.08 for --small on a CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "int8"), help="the model's precision")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scoretool.music.musicgen import MusicGenGenerator
    from scoretool.specs import ModelSpec, Sampling

    model = args.model
    if model is None:
        from scoretool.testing import make_tiny_musicgen

        model = str(make_tiny_musicgen(Path(tempfile.mkdtemp()) / "musicgen"))
        if args.small:
            model = save_small_shape(model)
    gen = MusicGenGenerator(ModelSpec(model, args.device, args.precision))
    sampling = Sampling()
    calls = [0]
    inner = gen._generate_batch

    def counted(*a, **k):
        calls[0] += 1
        return inner(*a, **k)

    gen._generate_batch = counted
    prompts, durations = [p for p, _ in SCENES], [d * args.scale for _, d in SCENES]
    seeds = list(range(len(SCENES)))
    gen.generate(prompts[:1], [1.0], [0], sampling)  # warm-up

    results = {}
    for way in ("per_scene", "batched", "per_scene_again", "batched_again"):
        calls[0] = 0
        start = time.perf_counter()
        if way.startswith("batched"):
            clips = gen.generate(prompts, durations, seeds, sampling)
        else:
            clips = [gen.generate([p], [d], [s], sampling)[0] for p, d, s in zip(prompts, durations, seeds)]
        results[way] = {"seconds": time.perf_counter() - start, "generate_calls": calls[0], "clips": clips}
    same = all(np.allclose(a, b, atol=1e-4) for a, b in zip(results["batched"]["clips"], results["per_scene"]["clips"]))
    best = {w: min(results[w]["seconds"], results[w + "_again"]["seconds"]) for w in ("per_scene", "batched")}
    report = {
        "device": args.device,
        "model": model,
        "scenes": len(SCENES),
        "audio_seconds": sum(durations),
        "per_scene": {"generate_calls": results["per_scene"]["generate_calls"], "seconds": round(best["per_scene"], 3)},
        "batched": {"generate_calls": results["batched"]["generate_calls"], "seconds": round(best["batched"], 3)},
        "speedup": round(best["per_scene"] / best["batched"], 2),
        "clips_match": bool(same),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

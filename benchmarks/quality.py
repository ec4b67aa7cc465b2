#!/usr/bin/env python3
"""How far each reduced precision is from fp32, on the same inputs, for any MusicGen and BLIP folders.

    python benchmarks/quality.py [--music DIR] [--caption DIR] [--precisions bf16,int8] [--steps 500] [--out FILE.json]

Without folders it uses real-shape random-weight ones (benchmarks/shapes.py's `build_folders`, built
once into the user cache), so it runs here; give real checkpoints to measure real quality.

- MusicGen (scoretool's fast loop, guidance 3): fp32 samples a token sequence for each prompt (seeded,
  top-k 250, as the pipeline does); every precision is then fed that same sequence (teacher forcing) and
  its next-token distributions are compared with fp32's at every step where the decoder's choice is used
  (the delay pattern holds the others): mean and 99th-percentile KL(fp32 || p) in nats, and how often the
  most likely token is the same (top-1 agreement).
- BLIP (`scoretool.caption.blip.BlipCaptioner` with `ModelSpec(folder, "cpu", precision)`): captions of
  the same synthetic frames; token agreement with fp32's caption (position by position, over the longer
  of the two: one early difference makes the rest of a caption differ) and the share of identical
  captions; then, teacher-forced on fp32's caption tokens, the mean KL(fp32 || p) of the next-token
  distributions and top-1 agreement at every position. A precision the captioner does not run yet is
  reported as an error for that precision.

JSON (`--out`) and a printed table. Random weights give near-uniform distributions, so their KL is a
measure of numerical error, not of musical quality; the same numbers on a real checkpoint are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PROMPTS = [
    "calm piano melody with soft strings",
    "energetic drums and distorted electric guitar",
    "warm lofi hip hop beat with vinyl crackle",
    "epic orchestral trailer music with choir",
]


class Recorder:
    """Stands in for the fast loop's token choice: records each step's guided fp32 logits and, when given
    a sequence, feeds it instead of the loop's own choice (teacher forcing)."""

    def __init__(self, fast, forced=None):
        self.pick, self.forced = fast._pick, forced
        self.logits, self.chosen = [], []
        fast._pick = self

    def __call__(self, logits, batch, settings, noise):
        chosen, guided = self.pick(logits, batch, settings, noise)
        if self.forced is not None:
            chosen = self.forced[len(self.chosen)]
        self.logits.append(guided.float().clone())
        self.chosen.append(chosen.clone())
        return chosen, guided


def run_loop(model, precision: str, inputs, steps: int, forced=None) -> Recorder:
    from scoretool.music.decoding import fast_loop_options
    from scoretool.music.fast import FastMusicgen

    fast = FastMusicgen(model, "cpu", **fast_loop_options(precision))
    recorder = Recorder(fast, forced)
    seeds = list(range(inputs["input_ids"].shape[0]))
    fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], steps, seeds=seeds, guidance_scale=3.0, top_k=250)
    return recorder


def compare(ref: Recorder, got: Recorder, used) -> dict:
    import torch

    a = torch.stack(ref.logits).log_softmax(-1)  # (steps, batch, K, vocab)
    b = torch.stack(got.logits).log_softmax(-1)
    kl = (a.exp() * (a - b)).sum(-1)[used]  # per used (step, item, codebook)
    agree = (a.argmax(-1) == b.argmax(-1))[used].float()
    finite = torch.isfinite(kl)
    entropy = -(a.exp() * a).sum(-1)[used]  # how peaked fp32's own distributions are, for scale
    return {
        "fp32_entropy": round(entropy.mean().item(), 3),
        "mean_kl": round(kl[finite].mean().item(), 5), "p99_kl": round(kl[finite].quantile(0.99).item(), 5),
        "max_kl": round(kl[finite].max().item(), 5), "top1_agreement": round(agree.mean().item(), 4),
        "non_finite": int((~finite).sum()), "positions": int(used.sum()),
    }  # fmt: skip


def as_scoretool_runs(model, folder: Path, precision: str):
    """The model as scoretool's generator holds it in `precision`: in int8 a fresh copy with its decoder
    and T5 text encoder made int8 in place (`musicgen.hold_in_int8`); otherwise the fp32 model (the fast
    loop makes its own bf16/fp16 copies of the decoder)."""
    if precision != "int8":
        return model
    from transformers import MusicgenForConditionalGeneration

    from scoretool.int8_store import in_place
    from scoretool.music.musicgen import hold_in_int8

    held = MusicgenForConditionalGeneration.from_pretrained(folder).eval()
    hold_in_int8(held, in_place(str(folder)))
    return held


def music_quality(folder: Path, precisions: list[str], steps: int, prompts: list[str]) -> dict:
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    from scoretool.music.delay import delay_pattern, delay_table

    model = MusicgenForConditionalGeneration.from_pretrained(folder).eval()
    inputs = AutoProcessor.from_pretrained(folder)(text=prompts, padding=True, return_tensors="pt")
    ref = run_loop(model, "fp32", inputs, steps)
    forced = torch.stack(ref.chosen)
    cfg, gen = model.config.decoder, model.generation_config
    channels = getattr(cfg, "audio_channels", 1)
    table = delay_table(len(prompts), steps, delay_pattern(cfg.num_codebooks, channels), cfg.num_codebooks // channels,
                        int(gen.decoder_start_token_id), steps + 1)  # fmt: skip
    used = (table[:, :, 1:] < 0).permute(2, 0, 1)  # (steps, batch, K): the step's choice goes into the sequence
    result = {"folder": str(folder), "prompts": prompts, "steps": steps, "sequence": "fp32, sampled (seeded, top-k 250)"}
    for p in precisions:
        print(f"music: {p} teacher-forced on fp32's tokens ({steps} steps)", file=sys.stderr, flush=True)
        try:
            result[p] = compare(ref, run_loop(as_scoretool_runs(model, folder, p), p, inputs, steps, forced), used)
        except Exception as exc:  # a precision that can't run here is a result too
            result[p] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return result


def frames(n: int):
    """Synthetic frames: gradients, stripes and blocks of colour, different for each index."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        y, x = np.mgrid[0:384, 0:384] / 384.0
        base = rng.random(3)
        img = np.stack([(base[c] + x * (c + 1) * 0.5 + np.sin(8 * y * (i + 1) + c)) % 1.0 for c in range(3)], -1)
        img[rng.integers(0, 300) :][:, rng.integers(0, 300) :][:80, :80] = rng.random(3)
        out.append(Image.fromarray((img * 255).astype("uint8")))
    return out


def runs_in(model, precision: str) -> bool:
    """Whether a captioner's model really holds weights of this precision."""
    import torch

    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return any(p.dtype == dtype for p in model.parameters())
    return any("quant" in type(m).__module__.lower() or "int8" in type(m).__name__.lower() for m in model.modules())


def caption_logits(captioner, images, sequences):
    """Next-token log-probabilities (fp32) of `captioner`'s model fed fp32's caption tokens (teacher forcing)."""
    import torch

    inputs = captioner.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
    with torch.inference_mode():
        out = captioner.model(pixel_values=inputs["pixel_values"].to(captioner.pixel_dtype), input_ids=sequences)
    return torch.log_softmax(out.logits.float()[:, :-1], dim=-1)


def forced_agreement(ref_logp, logp) -> dict:
    """Mean KL(fp32 || p) in nats and top-1 agreement over every caption position."""
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1).flatten()
    top1 = (ref_logp.argmax(-1) == logp.argmax(-1)).float().mean()
    return {"forced_mean_kl": round(float(kl.mean()), 5), "forced_top1": round(float(top1), 4)}


def caption_quality(folder: Path, precisions: list[str], n_frames: int) -> dict:
    from scoretool.caption.blip import BlipCaptioner
    from scoretool.specs import ModelSpec

    images = frames(n_frames)
    ref_captioner = BlipCaptioner(ModelSpec(str(folder), "cpu", "fp32"))
    tokenize = ref_captioner.processor.tokenizer
    ref = ref_captioner.caption(images)
    ref_ids = [tokenize(c, add_special_tokens=False).input_ids for c in ref]
    sequences = ref_captioner._generate(images, ref_captioner.max_new_tokens)
    ref_logp = caption_logits(ref_captioner, images, sequences)
    result = {"folder": str(folder), "frames": n_frames, "fp32_captions": ref[:3]}
    for p in precisions:
        print(f"captions: {p}", file=sys.stderr, flush=True)
        try:
            captioner = BlipCaptioner(ModelSpec(str(folder), "cpu", p))
            ran = captioner.spec.precision
            if ran == p and not runs_in(captioner.model, p):
                raise RuntimeError(f"BlipCaptioner does not run {p} yet (its weights are all fp32)")
            got = captioner.caption(images)
            forced = forced_agreement(ref_logp, caption_logits(captioner, images, sequences))
        except Exception as exc:
            result[p] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            continue
        ids = [tokenize(c, add_special_tokens=False).input_ids for c in got]
        same = sum(sum(x == y for x, y in zip(a, b)) for a, b in zip(ref_ids, ids))
        total = sum(max(len(a), len(b)) for a, b in zip(ref_ids, ids))
        result[p] = {"ran_in": ran, "token_agreement": round(same / max(total, 1), 4), **forced,
                     "identical_captions": round(sum(a == b for a, b in zip(ref, got)) / len(ref), 4)}  # fmt: skip
    return result


def table(result: dict) -> str:
    lines = []
    if "music" in result:
        m = result["music"]
        lines += [f"MusicGen {m['folder']}: {len(m['prompts'])} prompts x {m['steps']} steps, teacher-forced on fp32's sampled tokens",
                  f"{'precision':10}{'mean KL':>10}{'p99 KL':>10}{'max KL':>10}{'top-1 agree':>13}{'fp32 entropy':>14}"]  # fmt: skip
        for p, r in m.items():
            if isinstance(r, dict) and "error" in r:
                lines.append(f"{p:10}  error: {r['error']}")
            elif isinstance(r, dict):
                lines.append(f"{p:10}{r['mean_kl']:>10.4f}{r['p99_kl']:>10.4f}{r['max_kl']:>10.4f}{r['top1_agreement']:>13.4f}"
                             f"{r['fp32_entropy']:>14.3f}")  # fmt: skip
    if "captions" in result:
        c = result["captions"]
        lines += [f"BLIP {c['folder']}: {c['frames']} frames; free-running captions, then teacher-forced on fp32's",
                  f"{'precision':10}{'token agree':>13}{'identical':>11}{'forced KL':>11}{'forced top-1':>14}"]  # fmt: skip
        for p, r in c.items():
            if isinstance(r, dict) and "error" in r:
                lines.append(f"{p:10}  error: {r['error']}")
            elif isinstance(r, dict) and "token_agreement" in r:
                lines.append(f"{p:10}{r['token_agreement']:>13.4f}{r['identical_captions']:>11.4f}"
                             f"{r['forced_mean_kl']:>11.5f}{r['forced_top1']:>14.4f}")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--music", type=Path, help="a MusicGen checkpoint folder (default: the real-shape random one)")
    p.add_argument("--caption", type=Path, help="a BLIP checkpoint folder (default: the real-shape random one)")
    p.add_argument("--precisions", default="bf16,int8")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--prompts", type=int, default=len(PROMPTS))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--parts", default="music,captions")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    parts = args.parts.split(",")
    if ("music" in parts and not args.music) or ("captions" in parts and not args.caption):
        from shapes import build_folders

        folders = build_folders()
        args.music, args.caption = args.music or folders["musicgen"], args.caption or folders["blip"]
    import torch

    from scoretool.precision import choose, machine_summary

    precisions = args.precisions.split(",")
    result: dict = {"torch": torch.__version__, "machine": machine_summary(), "auto": choose("auto", "cpu", "music").__dict__}
    if "music" in parts:
        result["music"] = music_quality(args.music, precisions, args.steps, (PROMPTS * 4)[: args.prompts])
    if "captions" in parts:
        result["captions"] = caption_quality(args.caption, precisions, args.frames)
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

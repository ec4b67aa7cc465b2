#!/usr/bin/env python3
"""Milliseconds per decoding step of scoretool's fast MusicGen loop at each precision and batch size.

    python benchmarks/precision_speed.py [--shape small|tiny] [--steps 48] [--reps 3] [--out FILE.json]

The musicgen-small architecture with random weights (bench.py's `small_config()`), on the CPU, seeded
sampling with guidance 3 and top-k 250 as the pipeline runs it. Every (precision, batch) pair runs once
per round, rounds interleaved, so machine noise hits all alike; a step's time is the median gap between
the loop's step callbacks (the text encoder and the first steps left out). Also the text encoder's and
the codec's time per call, which do not depend on the precision (both stay fp32). And the memory
read bandwidth here with each precision's floor for a step (its weights read once at that bandwidth):
how near each step runs to its floor, and the most a precision could gain over fp32's measured step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench import build_music_model, text_inputs  # noqa: E402

WARMUP_STEPS = 4


def step_ms(fast, inputs, steps: int, seeds: list[int]) -> float:
    stamps: list[float] = []
    fast.generate_codes(inputs["input_ids"], inputs["attention_mask"], steps, seeds=seeds,
                        on_step=lambda n: stamps.append(time.perf_counter()))  # fmt: skip
    gaps = [b - a for a, b in zip(stamps[WARMUP_STEPS:], stamps[WARMUP_STEPS + 1 :])]
    return 1000 * statistics.median(gaps)


def step_at_ms(fast, inputs, length: int, reps: int = 5) -> float:
    """One decoder step at cache length `length` (attention over that many positions), median of `reps`."""
    import torch

    d = fast.decoder
    with torch.inference_mode():
        enc, mask = fast._encode(inputs["input_ids"], inputs["attention_mask"], True)
        enc = enc.to(fast.dtype)
        rows, batch = enc.shape[0], enc.shape[0] // 2
        cross = [d.cross_kv(layer, enc) for layer in d.layers]
        kv = torch.randn((len(d.layers), 2, rows, d.H, length + 1, d.hd), dtype=d.cache_dtype)
        tok = torch.zeros((batch, d.K), dtype=torch.long)
        pos = torch.tensor([length])
        positions = d.positions_for(length + 1)
        times = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            d.step(tok, pos, kv, length + 1, None, [k for k, _ in cross], [v for _, v in cross],
                   mask.bool()[:, None, None, :], positions, rows)  # fmt: skip
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times[1:])


def loops(model, precisions: list[str]) -> dict:
    from scoretool.music.decoding import fast_loop_options
    from scoretool.music.fast import FastMusicgen

    made = {}
    for p in precisions:
        made[p] = FastMusicgen(model, "cpu", **fast_loop_options(p))  # as scoretool runs it
    return made


def encoder_and_codec_ms(fast, inputs, frames: int = 50) -> dict:
    """The per-call costs that do not depend on the precision: T5 once per call, EnCodec per second of audio."""
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        fast._encode(inputs["input_ids"], inputs["attention_mask"], True)
    t1 = time.perf_counter()
    fast.decode(torch.zeros((inputs["input_ids"].shape[0], fast.K, frames), dtype=torch.long))
    t2 = time.perf_counter()
    return {"text_encoder_ms": round(1000 * (t1 - t0), 1), "codec_ms_per_second_of_audio": round(1000 * (t2 - t1), 1)}


BYTES_PER_WEIGHT = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


def read_bandwidth_gb_s(mib: int = 512, reps: int = 5) -> float:
    """The memory read bandwidth torch reaches here on all its threads (a sum over `mib` MiB of
    fp32, best of `reps`): what a decoding step's weight reads are bound by."""
    import torch

    data = torch.ones(mib * 2**20 // 4)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - t0)
    return data.numel() * 4 / best / 1e9


def step_weight_bytes(model, precision: str) -> int:
    """Bytes of weights one decoding step reads: every layer's self-attention q/k/v/out, cross-attention
    q/out (its keys and values are computed once per call), the feed-forward, and the LM heads."""
    cfg = model.config.decoder
    d, ffn = cfg.hidden_size, cfg.ffn_dim
    per_layer = 6 * d * d + 2 * d * ffn
    return (cfg.num_hidden_layers * per_layer + cfg.num_codebooks * cfg.vocab_size * d) * BYTES_PER_WEIGHT[precision]


def floors(model, precisions: list[str], best: dict, batches: list[int]) -> dict:
    """The memory-bandwidth floor of a step at each precision (its weights read once), how close the
    measured step at the smallest batch comes to it, and the most any precision could gain over fp32
    here if its step ran at its floor (fp32's measured step over that floor)."""
    bandwidth = read_bandwidth_gb_s()
    b = min(batches)
    out = {"read_bandwidth_gb_s": round(bandwidth, 1), "at_batch": b, "per_precision": {}}
    for p in precisions:
        nbytes = step_weight_bytes(model, p)
        floor_ms = nbytes / bandwidth / 1e6
        entry = {"weight_mb_per_step": round(nbytes / 1e6), "floor_ms": round(floor_ms, 1),
                 "floor_over_measured": round(floor_ms / best[f"{p} b{b}"], 2)}  # fmt: skip
        if "fp32" in precisions:
            entry["ceiling_vs_fp32"] = round(best[f"fp32 b{b}"] / floor_ms, 2)
        out["per_precision"][p] = entry
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="small", choices=["small", "tiny"])
    p.add_argument("--precisions", default="fp32,bf16,int8")
    p.add_argument("--batches", default="1,4")
    p.add_argument("--steps", type=int, default=48, help="new tokens per call")
    p.add_argument("--reps", type=int, default=3, help="interleaved rounds")
    p.add_argument("--lengths", default="", help="also time one step at these cache lengths, e.g. 500,1500")
    p.add_argument("--out")
    args = p.parse_args(argv)
    import torch

    from scoretool.precision import choose, machine_summary

    model, info = build_music_model(args.shape, "cpu")
    precisions = args.precisions.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    fasts = loops(model, precisions)
    inputs = {b: text_inputs(model, b, "cpu") for b in batches}
    times: dict = {f"{p} b{b}": [] for p in precisions for b in batches}
    for r in range(args.reps):
        for b in batches:
            for p in precisions:
                times[f"{p} b{b}"].append(step_ms(fasts[p], inputs[b], args.steps, list(range(b))))
                print(f"round {r + 1}: {p} batch {b}: {times[f'{p} b{b}'][-1]:.1f} ms/step", flush=True)
    lengths = [int(n) for n in args.lengths.split(",") if n]
    at: dict = {}
    for r in range(args.reps if lengths else 0):
        for n in lengths:
            for b in batches:
                for p_ in precisions:
                    at.setdefault(f"{p_} b{b} L{n}", []).append(step_at_ms(fasts[p_], inputs[b], n))
                    print(f"round {r + 1}: {p_} batch {b} at length {n}: {at[f'{p_} b{b} L{n}'][-1]:.1f} ms/step", flush=True)
    best = {k: min(v) for k, v in times.items()}
    result = {
        "model": info, "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": machine_summary(),
        "auto_picks": choose("auto", "cpu", "music").__dict__, "steps_per_call": args.steps, "reps": args.reps,
        "ms_per_step_min": {k: round(v, 1) for k, v in best.items()},
        "ms_per_step_all": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "ms_per_step_at_length_min": {k: round(min(v), 1) for k, v in at.items()},
        "speedup_vs_fp32": {k: round(best[f"fp32 {k.split()[1]}"] / v, 2) for k, v in best.items() if "fp32" in precisions},
        "batch4_over_batch1": {p: round(best[f"{p} b{max(batches)}"] / best[f"{p} b{min(batches)}"], 2) for p in precisions},
        **encoder_and_codec_ms(fasts[precisions[0]], inputs[max(batches)]),
        "bandwidth_floor": floors(model, precisions, best, batches),
    }  # fmt: skip
    print(f"\n{'':8}" + "".join(f"{'b' + str(b):>10}" for b in batches))
    for p in precisions:
        print(f"{p:8}" + "".join(f"{best[f'{p} b{b}']:>8.1f}ms" for b in batches))
    print(json.dumps({k: result[k] for k in ("auto_picks", "speedup_vs_fp32", "batch4_over_batch1", "bandwidth_floor")}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

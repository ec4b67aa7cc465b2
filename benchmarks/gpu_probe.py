#!/usr/bin/env python3
"""Where does the fast MusicGen loop spend its time on this GPU, and which knobs help?

    PYTHONPATH=. python3 benchmarks/gpu_probe.py --out probe.json

For a musicgen-small-shaped model (random weights), 10 s of audio (503 tokens), half precision:
1. transformers' fp32 `generate` at batch 1 (the issue's baseline), in the same run;
2. a profile of one decode step, run eagerly and replayed from its CUDA graph (kernel names, counts,
   device time per step);
3. each knob of `FastMusicgen` on its own (bucket, BLAS library, attention implementation, SDPA
   backends, weight layout, GELU epilogue, bf16, unfused), batch 1 and 8, with greedy-token agreement
   against the default;
4. the knobs that helped, combined, timed again, and checked in fp32 against `generate`'s greedy tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bench  # noqa: E402  (the model builders, inputs and timers)
from bench import Budget, Skip, compare_codes, say, timed  # noqa: E402

VARIANTS = {
    "default": {},
    "bucket64": {"bucket": 64},
    "bucket512": {"bucket": 512},
    "cublaslt": {"blas": "cublaslt"},
    "cublas": {"blas": "cublas"},
    "weights_kn": {"weights_kn": True},
    "gelu_epilogue": {"gelu_epilogue": True},
    "attention_matmul": {"attention": "matmul"},
    "sdpa_cudnn": {"sdpa_backends": ("cudnn", "efficient", "math")},
    "sdpa_efficient_only": {"sdpa_backends": ("efficient",)},
    "bf16": {"dtype": "bfloat16"},
    "unfused": {"fused": False},
}
COMBINABLE = ("bucket", "blas", "weights_kn", "gelu_epilogue", "attention", "sdpa_backends")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="probe.json")
    p.add_argument("--tokens", type=int, default=503)
    p.add_argument("--budget-s", type=float, default=200)
    p.add_argument("--device", default="cuda")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--model", default="small", help="small (musicgen-small shape) or tiny")
    args = p.parse_args()
    import torch

    from scoretool.music.fast import FastMusicgen

    budget = Budget(args.budget_s)
    dev = args.device
    result = {"meta": bench.meta_info(argparse.Namespace(quick=False)), "tokens": args.tokens}

    def save():
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2, default=str)

    say(f"probe: building {args.model}")
    model, meta = bench.build_music_model(args.model, dev)
    result["model"] = meta
    n = args.tokens
    b1 = bench.text_inputs(model, 1, dev)
    b8 = bench.text_inputs(model, 8, dev)
    g2 = bench.text_inputs(model, 2, dev, seed=1)

    # 1. the baseline
    try:
        timed(lambda: bench.hf_generate(model, b1, 8), dev)
        t, _ = timed(lambda: bench.hf_generate(model, b1, n), dev)
        result["generate_fp32_b1_s"] = t["min_s"]
        say(f"generate fp32 b1: {t['min_s']:.3f} s")
    except Exception as exc:
        result["generate_fp32_b1_s"] = f"error: {exc!r}"
    save()

    def make(options):
        options = dict(options)
        dtype = getattr(torch, options.pop("dtype", "float16"))
        return FastMusicgen(model, dev, dtype=dtype, **options)

    def run(f, inputs, sample=True):
        seeds = list(range(inputs["input_ids"].shape[0]))
        return f.generate_codes(inputs["input_ids"], inputs["attention_mask"], n, seeds=seeds, do_sample=sample)

    # 2. profile of the default
    try:
        result["profile"] = profile_step(make({}), b1, n)
    except Exception as exc:
        result["profile"] = {"error": repr(exc), "traceback": traceback.format_exc(limit=6)}
        say(f"profile failed: {exc!r}")
    save()

    # 3. each knob alone
    variants = result.setdefault("variants", {})
    reference = None
    for name in args.variants.split(","):
        try:
            budget.need(8, name)
            f = make(VARIANTS[name])
            first, _ = timed(lambda: run(f, b1), dev)
            t1, _ = timed(lambda: run(f, b1), dev, reps=2)
            timed(lambda: run(f, b8), dev)
            t8, _ = timed(lambda: run(f, b8), dev)
            greedy = run(f, g2, sample=False)
            if reference is None:
                reference = greedy
            entry = {
                "options": VARIANTS[name], "b1_s": t1["min_s"], "b8_s": t8["min_s"], "first_call_b1_s": first["min_s"],
                "ms_per_step_b1": 1000 * t1["min_s"] / n, "greedy_vs_default": compare_codes(greedy, reference),
                "graphs": f.graphs,
            }  # fmt: skip
            say(f"{name}: b1 {t1['min_s']:.3f} s ({entry['ms_per_step_b1']:.2f} ms/step), b8 {t8['min_s']:.3f} s, "
                f"greedy agreement {entry['greedy_vs_default']['match_fraction']:.3f}")  # fmt: skip
        except Skip as exc:
            entry = {"skipped": str(exc)}
        except Exception as exc:
            entry = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}
            say(f"{name}: ERROR {exc!r}")
        variants[name] = entry
        save()
        bench._free_cuda()

    # 4. the knobs that helped, together
    try:
        budget.need(25, "combination")
        base = variants["default"]["b1_s"]
        combo = {}
        for name, entry in sorted(variants.items(), key=lambda kv: kv[1].get("b1_s", 1e9)):
            opts = VARIANTS.get(name, {})
            if "b1_s" not in entry or entry["b1_s"] > 0.98 * base or not opts:
                continue
            key = next(iter(opts))
            if key in COMBINABLE and key not in combo:
                combo[key] = opts[key]
        result["combination"] = {"options": combo}
        if combo:
            f = make(combo)
            timed(lambda: run(f, b1), dev)
            t1, _ = timed(lambda: run(f, b1), dev, reps=3)
            timed(lambda: run(f, b8), dev)
            t8, _ = timed(lambda: run(f, b8), dev, reps=2)
            result["combination"].update(b1_s=t1["min_s"], b8_s=t8["min_s"], ms_per_step_b1=1000 * t1["min_s"] / n)
            say(f"combination {combo}: b1 {t1['min_s']:.3f} s, b8 {t8['min_s']:.3f} s")
        save()
        # fp32 greedy exactness of the combination (gelu_epilogue is off in fp32) against generate
        budget.need(15, "fp32 exactness")
        _, hf_codes = bench.hf_generate(model, g2, n, sample=False, capture=True)
        f32 = FastMusicgen(model, dev, dtype=torch.float32, **combo)
        codes = run(f32, g2, sample=False)
        result["combination"]["fp32_greedy_vs_generate"] = compare_codes(codes, hf_codes)
        say(f"combination fp32 greedy vs generate: {result['combination']['fp32_greedy_vs_generate']}")
    except Skip as exc:
        result.setdefault("combination", {})["skipped"] = str(exc)
    except Exception as exc:
        result.setdefault("combination", {})["error"] = f"{type(exc).__name__}: {exc}"
        say(f"combination: ERROR {exc!r}")
    base_gen = result.get("generate_fp32_b1_s")
    if isinstance(base_gen, float):
        result["speedups_vs_generate_fp32_b1"] = {
            name: base_gen / e["b1_s"] for name, e in list(variants.items()) + [("combination", result.get("combination", {}))] if "b1_s" in e
        }
        say(f"speedups vs generate fp32 b1: {json.dumps(result['speedups_vs_generate_fp32_b1'])}")
    save()
    return 0


def profile_step(f, inputs, n) -> dict:
    """Kernel-level profile of one decode step: eager (static step, no graph) and from the CUDA graph."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    out = {}
    settings = (True, 3.0, True, 1.0, 250)
    cuda = f.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.inference_mode(), f._sdpa_backends():
        enc, enc_mask = f._encode(inputs["input_ids"], inputs["attention_mask"], True)
        from scoretool.music.fast import SeededNoise

        noise = SeededNoise([0], f.K, f.V, f.device)
        st, positions, buckets = f._prepare_static(enc, enc_mask, 1, n, settings, noise)
        kv_len = buckets[-1]
        for _ in range(3):
            f._static_step(st, kv_len, settings, positions)
        sync()
        steps = 5
        with profile(activities=activities) as prof:
            for _ in range(steps):
                f._static_step(st, kv_len, settings, positions)
            sync()
        out["eager"] = summarize(prof, steps)
        st.pos.zero_()
        runner = f._runner(st, kv_len, settings, positions)
        for _ in range(3):
            runner()
        sync()
        st.pos.zero_()
        t = time.perf_counter()
        for _ in range(50):
            runner()
        sync()
        out["graph_wall_ms_per_step_at_kv_len"] = {"kv_len": kv_len, "ms": 1000 * (time.perf_counter() - t) / 50}
        st.pos.zero_()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                runner()
            sync()
        out["graph"] = summarize(prof, steps)
    say(f"profile: eager {out['eager'].get('kernels_per_step')} kernels/step, "
        f"{out['eager'].get('kernel_ms_per_step')} ms of kernels/step; graph "
        f"{out['graph'].get('kernels_per_step')} kernels/step, {out['graph'].get('kernel_ms_per_step')} ms of kernels; "
        f"graph wall {out['graph_wall_ms_per_step_at_kv_len']}")  # fmt: skip
    print(out["eager"].get("table", ""), flush=True)
    return out


def summarize(prof, steps: int) -> dict:
    """Kernel count and device time per step, and the top kernels by total device time."""
    kernels = {}
    total_us = 0.0
    count = 0
    for evt in prof.events():
        dev_type = str(getattr(evt, "device_type", ""))
        if "CUDA" not in dev_type:
            continue
        dur = getattr(evt, "device_time", None)
        if dur is None:
            dur = getattr(evt, "cuda_time", 0.0)
        name = evt.name
        if name.startswith(("Memcpy", "Memset")) or "cudaGraph" in name:
            pass
        k = kernels.setdefault(name, [0, 0.0])
        k[0] += 1
        k[1] += dur
        total_us += dur
        count += 1
    top = sorted(kernels.items(), key=lambda kv: -kv[1][1])[:40]
    return {
        "kernels_per_step": count / steps,
        "kernel_ms_per_step": total_us / steps / 1000,
        "top_kernels": [{"name": name[:160], "calls_per_step": c / steps, "us_per_step": us / steps} for name, (c, us) in top],
        "table": _table(prof),
    }


def _table(prof) -> str:
    for key in ("self_device_time_total", "self_cuda_time_total"):
        try:
            return prof.key_averages().table(sort_by=key, row_limit=30)
        except Exception:
            continue
    return ""


if __name__ == "__main__":
    sys.exit(main())

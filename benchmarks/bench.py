#!/usr/bin/env python3
"""scoretool benchmarks, in one run on whatever device is present.

    python benchmarks/bench.py --out bench.json                  # GPU machine: everything (~5 min on an H100)
    python benchmarks/bench.py --quick --out bench-cpu.json      # CPU: fewer tokens, smaller batches

Parts (`--parts music,captions,analysis`):
- music: transformers' MusicGen `generate` against scoretool's fast decode loop
  (scoretool.music.fast), fp32 and half precision (CUDA only), batch 1 and 8, 10 s of audio
  (503 new tokens), for a musicgen-small-shaped model with random weights and for the tiny test
  model; plus token-equality checks (greedy: fast == generate; sampling: fast == the transformers
  path with scoretool's seeded sampler).
- captions: BLIP captioning of 8 frames batched against one at a time (blip-base shape with random
  weights, and a tiny BLIP), straight through `model.generate` on pixel tensors (no PIL needed).
- analysis: probe + scene detection + frame reading (scoretool.media) of a 1080p H.264 clip made
  with ffmpeg, against `ffmpeg -i clip -f null -` decoding the same file.

Every part that cannot run (missing package, no ffmpeg, out of time) is recorded in the JSON as
skipped with the reason; an error in one measurement is recorded and the rest still runs. The JSON
is rewritten after every measurement, so a run cut short still leaves its numbers.

Imports are careful: the music and captions parts need only torch, transformers and numpy (and
scoretool modules that import nothing else), so they run where av, decord, scenedetect, PIL or
soundfile are missing.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


class Skip(Exception):
    """A part or measurement that cannot run here; the message is the reason."""


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def need(self, seconds: float, what: str) -> None:
        if self.left() < seconds:
            raise Skip(f"time budget: {what} needs ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left")


class Report:
    def __init__(self, path: str | None, meta: dict):
        self.path = path
        self.data = {"meta": meta, "parts": {}}

    def save(self) -> None:
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=2, default=str)
        os.replace(tmp, self.path)


def record(section: dict, key: str, fn, report: Report):
    """Run one measurement; its result, skip reason or error goes into section[key]."""
    try:
        value = fn()
        section[key] = value
        _free_cuda()
    except Skip as exc:
        section[key] = {"status": "skipped", "reason": str(exc)}
        say(f"  {key}: skipped ({exc})")
        value = None
    except Exception as exc:  # one failure must not stop the run
        section[key] = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
        say(f"  {key}: ERROR {type(exc).__name__}: {exc}")
        value = None
        _free_cuda()
    report.save()
    return value


def _free_cuda() -> None:
    try:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def meta_info(args) -> dict:
    info = {
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
    }
    for name in ("torch", "transformers", "numpy", "cv2", "av", "scenedetect", "decord", "PIL"):
        try:
            module = __import__(name)
            info[f"{name}_version"] = getattr(module, "__version__", "?")
        except Exception as exc:
            info[f"{name}_version"] = f"missing ({type(exc).__name__})"
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda_version"] = torch.version.cuda
    except Exception:
        pass
    return info


# =========================================================================== timing helpers


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, reps: int = 1) -> tuple[dict, object]:
    """Run fn `reps` times; {'min_s', 'median_s', 'runs_s'} and the last result."""
    runs, out = [], None
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        runs.append(time.perf_counter() - t)
    ordered = sorted(runs)
    return {"min_s": ordered[0], "median_s": ordered[len(ordered) // 2], "runs_s": runs}, out


def interleaved(fns: dict, device, reps: int) -> dict:
    """Time several functions alternately (fair on a busy machine): name -> timing dict."""
    runs = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t, _ = timed(fn, device)
            runs[name].extend(t["runs_s"])
    out = {}
    for name, r in runs.items():
        ordered = sorted(r)
        out[name] = {"min_s": ordered[0], "median_s": ordered[len(ordered) // 2], "runs_s": r}
    return out


def compare_codes(a, b) -> dict:
    """Token agreement of two (batch, codebooks, frames) code tensors."""
    import torch

    a, b = a.cpu(), b.cpu()
    if a.shape != b.shape:
        return {"equal": False, "shapes": [list(a.shape), list(b.shape)]}
    same = a == b
    first = None
    if not bool(same.all()):
        frames = (~same).any(dim=1).any(dim=0).nonzero()
        first = int(frames[0]) if len(frames) else None
    return {
        "equal": bool(same.all()),
        "match_fraction": float(same.float().mean()),
        "first_mismatch_frame": first,
        "frames": int(a.shape[-1]),
    }


# =========================================================================== music


def small_config():
    """facebook/musicgen-small's architecture, written out by hand (nothing can be downloaded)."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(
        vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
        relative_attention_num_buckets=32, dropout_rate=0.1, feed_forward_proj="relu",
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip  (t5-base)
    codec = EncodecConfig(
        sampling_rate=32000, audio_channels=1, codebook_size=2048, codebook_dim=128, hidden_size=128,
        num_filters=64, num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], num_lstm_layers=2,
        target_bandwidths=[2.2], norm_type="weight_norm", kernel_size=7, last_kernel_size=7,
        residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=False, pad_mode="reflect",
        compress=2, trim_right_ratio=1.0, chunk_length_s=None, overlap=None, normalize=False,
        use_conv_shortcut=False,
    )  # fmt: skip  (facebook/encodec_32khz)
    decoder = MusicgenDecoderConfig(
        vocab_size=2048, num_codebooks=4, audio_channels=1, hidden_size=1024, ffn_dim=4096,
        num_hidden_layers=24, num_attention_heads=16, max_position_embeddings=2048,
        activation_function="gelu", dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
        layerdrop=0.0, initializer_factor=0.02, scale_embedding=False, use_cache=True,
        pad_token_id=2048, bos_token_id=2048, decoder_start_token_id=2048, tie_word_embeddings=False,
    )  # fmt: skip
    return MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)


def _generation_config(special: int):
    from transformers import GenerationConfig

    # as musicgen-small's generation_config.json
    return GenerationConfig(
        decoder_start_token_id=special, bos_token_id=special, pad_token_id=special,
        do_sample=True, guidance_scale=3.0, max_length=1500,
    )  # fmt: skip


def build_music_model(name: str, device):
    import torch
    from transformers import MusicgenForConditionalGeneration

    if name == "tiny":
        try:
            from scoretool.testing import make_tiny_musicgen

            folder = make_tiny_musicgen(Path(tempfile.mkdtemp(prefix="bench-tiny-")) / "musicgen")
            model = MusicgenForConditionalGeneration.from_pretrained(folder)
            how = "scoretool.testing.make_tiny_musicgen"
        except Exception as exc:  # e.g. no sentencepiece: same shapes from a config
            from scoretool import testing  # noqa: F401 - constants only

            say(f"  tiny MusicGen from make_tiny_musicgen failed ({exc}); building from a config")
            model, how = _tiny_from_config(), "config (make_tiny_musicgen failed)"
    else:
        config = small_config()
        torch.manual_seed(0)
        with torch.device(device):
            model = MusicgenForConditionalGeneration(config)
        model.generation_config = _generation_config(config.decoder.vocab_size)
        how = "hand-written musicgen-small config, random weights"
    model.to(device).eval()
    params = sum(p.numel() for p in model.parameters())
    return model, {"built_from": how, "parameters": params, "decoder_layers": model.config.decoder.num_hidden_layers,
                   "hidden": model.config.decoder.hidden_size, "vocab": model.config.decoder.vocab_size}  # fmt: skip


def _tiny_from_config():
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    text = T5Config(vocab_size=600, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, relative_attention_num_buckets=8)
    codec = EncodecConfig(
        sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[1.2],
        codebook_size=64, hidden_size=16, num_filters=2, num_lstm_layers=1, use_causal_conv=False, normalize=False,
    )  # fmt: skip
    decoder = MusicgenDecoderConfig(
        vocab_size=64, num_codebooks=4, hidden_size=32, ffn_dim=64, num_hidden_layers=1, num_attention_heads=4,
        pad_token_id=64, bos_token_id=64, decoder_start_token_id=64, dropout=0.0,
    )  # fmt: skip
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder))
    model.generation_config = _generation_config(64)
    return model


def text_inputs(model, batch: int, device, seed: int = 0):
    """Random prompt token ids of different lengths (8..20 tokens, T5-style: padded with 0, ending in </s>=1)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    vocab = model.config.text_encoder.vocab_size
    lengths = [8 + (7 * i) % 13 for i in range(batch)]
    ids = torch.zeros((batch, max(lengths)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, : n - 1] = torch.randint(3, vocab, (n - 1,), generator=g)
        ids[i, n - 1] = 1
        mask[i, :n] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def hf_generate(model, inputs, new_tokens, *, sample=True, top_k=250, processors=None, capture=False):
    """transformers' generate as scoretool would call it; audio on the host (and the codes if `capture`)."""
    import torch
    from transformers import LogitsProcessorList

    seen = []
    if capture:
        decode = model.audio_encoder.decode

        def spy(codes, *a, **k):
            seen.append(codes.clone())
            return decode(codes, *a, **k)

        model.audio_encoder.decode = spy
    try:
        with torch.inference_mode():
            audio = model.generate(
                **inputs, max_new_tokens=new_tokens, do_sample=sample, top_k=top_k, guidance_scale=3.0,
                logits_processor=LogitsProcessorList(processors or []),
            )  # fmt: skip
        audio = audio.float().cpu()
    finally:
        if capture:
            del model.audio_encoder.decode
    return (audio, seen[0][0]) if capture else audio


def generate_vs_fast(hf_run, fast_run, device, reps: int) -> dict:
    """Time both (warmed up already) and their ratio. On CUDA generate runs once (it is slow and
    steady); on a CPU the two alternate, so machine noise hits both alike."""
    if str(device).startswith("cuda"):
        times = {"generate": timed(hf_run, device, reps=1)[0], "fast": timed(fast_run, device, reps=reps)[0]}
    else:
        times = interleaved({"generate": hf_run, "fast": fast_run}, device, reps)
    times["speedup"] = times["generate"]["min_s"] / times["fast"]["min_s"]
    return times


def music_part(args, section: dict, report: Report, budget: Budget) -> None:
    import torch
    import transformers

    from scoretool.music.fast import FastMusicgen

    device = args.device
    cuda = device.startswith("cuda")
    section["device"] = torch.cuda.get_device_name(0) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    section["transformers"] = transformers.__version__
    half = getattr(torch, args.half_dtype)
    section["half_dtype"] = args.half_dtype
    models = [m for m in args.music_models.split(",") if m]
    results = section.setdefault("models", {})
    for name in models:
        entry = results.setdefault(name, {})
        tokens = args.tiny_tokens if name == "tiny" else args.tokens
        entry["new_tokens"] = tokens
        entry["audio_seconds"] = (tokens - 3) / 50
        say(f"music: building {name}")
        built = record(entry, "model", lambda: _stash(entry, name, device), report)
        if built is None:
            continue
        model = entry.pop("_model")
        reps = args.reps
        runs = entry.setdefault("runs", {})
        fast_default = FastMusicgen(model, device, dtype=torch.float32)
        entry["fast_mode"] = {"static": fast_default.static, "fused": fast_default.fused, "graphs": fast_default.graphs}

        for batch in args.batches:
            inputs = text_inputs(model, batch, device)
            seeds = list(range(batch))

            def hf_run(inputs=inputs):
                return hf_generate(model, inputs, tokens)

            def make_fast(dtype):
                f = FastMusicgen(model, device, dtype=dtype)

                def run(inputs=inputs, f=f):
                    return f.generate(inputs["input_ids"], inputs["attention_mask"], tokens, seeds=seeds).cpu()

                return f, run

            def measure_fp32(batch=batch, inputs=inputs):
                budget.need(30 if cuda else 5, f"{name} fp32 batch {batch}")
                say(f"music {name}: fp32 batch {batch}: generate vs fast ({tokens} tokens)")
                # warm-up: short generate; a full fast run (captures its CUDA graphs)
                t_warm_hf, _ = timed(lambda: hf_generate(model, inputs, 8), device)
                f, fast_run = make_fast(torch.float32)
                t_first, _ = timed(fast_run, device)
                times = generate_vs_fast(hf_run, fast_run, device, reps)
                times["fast_first_call_s"] = t_first["min_s"]
                say(f"  generate {times['generate']['min_s']:.3f} s, fast {times['fast']['min_s']:.3f} s "
                    f"(first call {t_first['min_s']:.3f} s): {times['speedup']:.1f}x")  # fmt: skip
                return times

            record(runs, f"fp32_b{batch}", measure_fp32, report)

            def measure_fast_half(batch=batch):
                if not cuda:
                    raise Skip("half precision is for CUDA (the CPU path runs fp32)")
                budget.need(10, f"{name} fast half batch {batch}")
                say(f"music {name}: fast {args.half_dtype} batch {batch}")
                f, fast_run = make_fast(half)
                t_first, _ = timed(fast_run, device)
                t, audio = timed(fast_run, device, reps=reps)
                t["first_call_s"] = t_first["min_s"]
                t["audio_finite"] = bool(torch.isfinite(audio).all())
                t["sdpa_backends"] = list(f.sdpa_backends)
                # where the time goes: the decode loop alone, then EnCodec on the whole batch
                ids, mask = inputs["input_ids"], inputs["attention_mask"]
                t_codes, codes = timed(lambda: f.generate_codes(ids, mask, tokens, seeds=seeds), device, reps=reps)
                t_decode, _ = timed(lambda: f.decode(codes), device, reps=reps)
                t["codes_only_s"], t["encodec_decode_s"] = t_codes["min_s"], t_decode["min_s"]
                t["ms_per_step"] = 1000 * t_codes["min_s"] / tokens
                say(f"  fast {args.half_dtype} {t['min_s']:.3f} s (first call {t_first['min_s']:.3f} s; "
                    f"loop {t_codes['min_s']:.3f} s = {t['ms_per_step']:.2f} ms/step, EnCodec {t_decode['min_s']:.3f} s)")  # fmt: skip
                return t

            record(runs, f"fast_half_b{batch}", measure_fast_half, report)
            _free_cuda()

        # ---- checks: token equality
        checks = entry.setdefault("checks", {})

        def greedy_check():
            budget.need(25 if cuda else 5, f"{name} greedy check")
            batch = min(max(args.batches), 8)
            inputs = text_inputs(model, batch, device, seed=1)
            n = tokens if (cuda or name == "tiny") else min(tokens, 23)
            say(f"music {name}: greedy tokens, fast vs generate (fp32, batch {batch}, {n} tokens)")
            _, hf_codes = hf_generate(model, inputs, n, sample=False, capture=True)
            out = {"batch": batch, "new_tokens": n}
            for label, options in (("fast_default", {}), ("fast_eager_exact", dict(static=False, fused=False, graphs=False))):
                if label == "fast_eager_exact" and not cuda:
                    continue  # on the CPU the default *is* the eager exact loop
                f = FastMusicgen(model, device, dtype=torch.float32, **options)
                codes = f.generate_codes(inputs["input_ids"], inputs["attention_mask"], n, do_sample=False)
                out[label] = compare_codes(codes, hf_codes)
                say(f"  {label}: {out[label]}")
            return out

        record(checks, "greedy_fp32", greedy_check, report)

        def sampling_check():
            from scoretool.music.sampling import SeededSampler

            budget.need(25 if cuda else 5, f"{name} sampling check")
            batch = 3
            inputs = text_inputs(model, batch, device, seed=2)
            n = tokens if (cuda or name == "tiny") else min(tokens, 23)
            seeds = [5, 6, 7]
            say(f"music {name}: seeded sampling, fast vs generate + SeededSampler (fp32, batch {batch})")
            K = model.config.decoder.num_codebooks
            sampler = SeededSampler(seeds, K, 3.0, 1.0, 250, device)
            _, hf_codes = hf_generate(model, inputs, n, sample=False, processors=[sampler], capture=True)
            f = FastMusicgen(model, device, dtype=torch.float32)
            codes = f.generate_codes(inputs["input_ids"], inputs["attention_mask"], n, seeds=seeds)
            alone = f.generate_codes(inputs["input_ids"][1:2], inputs["attention_mask"][1:2], n, seeds=seeds[1:2])
            out = {"fast_vs_transformers": compare_codes(codes, hf_codes), "item_alone_vs_in_batch": compare_codes(alone, codes[1:2])}
            say(f"  {out}")
            return out

        record(checks, "sampling_fp32", sampling_check, report)

        def graphs_check():
            if not cuda:
                raise Skip("CUDA graphs need CUDA")
            budget.need(10, f"{name} graphs check")
            inputs = text_inputs(model, 2, device, seed=3)
            n = min(tokens, 203)
            out = {}
            for dtype in (torch.float32, half):
                a = FastMusicgen(model, device, dtype=dtype, graphs=False).generate_codes(
                    inputs["input_ids"], inputs["attention_mask"], n, seeds=[1, 2])
                b = FastMusicgen(model, device, dtype=dtype, graphs=True).generate_codes(
                    inputs["input_ids"], inputs["attention_mask"], n, seeds=[1, 2])  # fmt: skip
                out[str(dtype)] = compare_codes(a, b)
            say(f"music {name}: CUDA graphs vs the same static loop eagerly: {out}")
            return out

        record(checks, "graphs_vs_eager", graphs_check, report)

        def hf_half():
            if not cuda:
                raise Skip("half precision is for CUDA")
            budget.need(40, f"{name} generate in {args.half_dtype}")
            out = {}
            model.to(half)
            prev = torch.backends.cuda.cudnn_sdp_enabled()
            torch.backends.cuda.enable_cudnn_sdp(False)  # cuDNN SDPA made half generate 4-5x slower (issue #7)
            try:
                for batch in args.batches:
                    budget.need(15, f"{name} generate {args.half_dtype} batch {batch}")
                    inputs = text_inputs(model, batch, device)
                    say(f"music {name}: generate {args.half_dtype} (cuDNN SDPA off) batch {batch}")
                    timed(lambda: hf_generate(model, inputs, 8), device)
                    t, audio = timed(lambda: hf_generate(model, inputs, tokens), device)
                    t["audio_finite"] = bool(torch.isfinite(audio).all())
                    out[f"b{batch}"] = t
                    say(f"  generate {args.half_dtype} b{batch}: {t['min_s']:.3f} s")
                    report.save()
                if args.greedy_half_check:
                    budget.need(15, "half greedy agreement")
                    inputs = text_inputs(model, 2, device, seed=1)
                    _, hf_codes = hf_generate(model, inputs, tokens, sample=False, capture=True)
                    model.to(torch.float32)
                    f = FastMusicgen(model, device, dtype=half)
                    codes = f.generate_codes(inputs["input_ids"], inputs["attention_mask"], tokens, do_sample=False)
                    out["greedy_agreement_fast_vs_generate"] = compare_codes(codes, hf_codes)
                    say(f"  half greedy agreement: {out['greedy_agreement_fast_vs_generate']}")
            finally:
                torch.backends.cuda.enable_cudnn_sdp(prev)
                model.to(torch.float32)
            return out

        record(runs, "generate_half", hf_half, report)
        # Last for each model: the figures above matter more if the time budget runs short.
        def measure_continuation():
            """Batch 1 with an audio prompt (long scenes' later windows, `--transition continue`):
            generate (fp32) against the fast loop at its default dtype, and greedy token agreement."""
            budget.need(30 if cuda else 10, f"{name} continuation")
            rate = model.config.audio_encoder.sampling_rate
            n = round(args.prompt_seconds * rate)
            g = torch.Generator().manual_seed(4)
            wave = 0.3 * torch.sin(torch.arange(n) * (2 * math.pi * 220 / rate)) + 0.02 * torch.randn(n, generator=g)
            inputs = {**text_inputs(model, 1, device), "input_values": wave[None, None].to(device),
                      "padding_mask": torch.ones((1, n), dtype=torch.long, device=device)}  # fmt: skip
            say(f"music {name}: continuation of {args.prompt_seconds:g} s of audio, generate vs fast ({tokens} tokens)")
            f = FastMusicgen(model, device)
            prompt = {"input_values": inputs["input_values"], "padding_mask": inputs["padding_mask"]}

            def fast_run():
                return f.generate(inputs["input_ids"], inputs["attention_mask"], tokens, seeds=[0], **prompt).cpu()

            timed(fast_run, device)  # warm-up (graph capture)
            hf_run = lambda: hf_generate(model, inputs, tokens)  # noqa: E731
            times = generate_vs_fast(hf_run, fast_run, device, reps)
            times["fast_dtype"] = str(f.dtype).replace("torch.", "")
            check = FastMusicgen(model, device, dtype=torch.float32)
            m = tokens if (cuda or name == "tiny") else min(tokens, 23)
            _, hf_codes = hf_generate(model, inputs, m, sample=False, capture=True)
            codes = check.generate_codes(inputs["input_ids"], inputs["attention_mask"], m, do_sample=False,
                                         prompt_codes=check.audio_codes(prompt["input_values"], prompt["padding_mask"]))  # fmt: skip
            times["greedy_fp32_vs_generate"] = compare_codes(codes, hf_codes)
            say(f"  generate {times['generate']['min_s']:.3f} s, fast {times['fast']['min_s']:.3f} s: "
                f"{times['speedup']:.1f}x; greedy {times['greedy_fp32_vs_generate']}")  # fmt: skip
            return times

        record(runs, "continuation_b1", measure_continuation, report)
        _free_cuda()

        entry["summary"] = music_summary(entry, args)
        say(f"music {name}: summary {json.dumps(entry['summary'])}")
        report.save()
        del model, fast_default
        _free_cuda()


def _stash(entry, name, device):
    model, meta = build_music_model(name, device)
    entry["_model"] = model
    return meta


def _t(runs, key, sub=None):
    value = runs.get(key)
    if not isinstance(value, dict) or value.get("status") in ("error", "skipped"):
        return None
    if sub:
        value = value.get(sub)
        if not isinstance(value, dict):
            return None
    return value.get("min_s")


def music_summary(entry: dict, args) -> dict:
    runs = entry.get("runs", {})
    s = {}
    b1, b8 = min(args.batches), max(args.batches)
    gen32_b1 = _t(runs, f"fp32_b{b1}", "generate")
    fast32_b1 = _t(runs, f"fp32_b{b1}", "fast")
    fast16_b1 = _t(runs, f"fast_half_b{b1}")
    fast16_b8 = _t(runs, f"fast_half_b{b8}")
    fast32_b8 = _t(runs, f"fp32_b{b8}", "fast")
    gen16 = runs.get("generate_half", {})
    gen16_b1 = gen16.get(f"b{b1}", {}).get("min_s") if isinstance(gen16, dict) else None
    best_b1 = min([t for t in (fast32_b1, fast16_b1) if t], default=None)
    if gen32_b1 and fast32_b1:
        s["speedup_fast_fp32_vs_generate_fp32_b1"] = gen32_b1 / fast32_b1
    if gen32_b1 and fast16_b1:
        s["speedup_fast_half_vs_generate_fp32_b1"] = gen32_b1 / fast16_b1
    if gen16_b1 and fast16_b1:
        s["speedup_fast_half_vs_generate_half_b1"] = gen16_b1 / fast16_b1
    if fast16_b1 and fast16_b8:
        s[f"fast_half_b{b8}_over_b{b1}"] = fast16_b8 / fast16_b1
    if fast32_b1 and fast32_b8:
        s[f"fast_fp32_b{b8}_over_b{b1}"] = fast32_b8 / fast32_b1
    cuda = str(args.device).startswith("cuda")
    if best_b1 and gen32_b1:
        if cuda:
            s["target_gpu_fast_10x_generate_fp32_b1"] = gen32_b1 / best_b1 >= 10
        else:
            s["target_cpu_fast_no_slower_b1"] = fast32_b1 is not None and fast32_b1 <= gen32_b1
    best_b8 = fast16_b8 or fast32_b8
    if cuda and best_b8 and best_b1:
        s[f"target_gpu_b{b8}_under_2x_b{b1}"] = best_b8 < 2 * (fast16_b1 if fast16_b8 else fast32_b1)
    return s


# =========================================================================== captions


def blip_config(name: str):
    from transformers import BlipConfig, BlipTextConfig, BlipVisionConfig

    if name == "tiny":  # as scoretool.testing.make_tiny_blip
        text = BlipTextConfig(
            vocab_size=400, hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=1,
            num_attention_heads=4, max_position_embeddings=64, bos_token_id=5, eos_token_id=3, sep_token_id=3,
            pad_token_id=0, initializer_range=0.1,
        )  # fmt: skip
        vision = BlipVisionConfig(
            hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=1, num_attention_heads=4,
            image_size=32, patch_size=8, initializer_range=0.1,
        )  # fmt: skip
        return BlipConfig(text_config=text, vision_config=vision, projection_dim=32, image_text_hidden_size=32, initializer_range=0.1)
    # Salesforce/blip-image-captioning-base: ViT-B/16 at 384 px, BERT-base text decoder
    text = BlipTextConfig(
        vocab_size=30524, hidden_size=768, intermediate_size=3072, projection_dim=768, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=512, bos_token_id=30522, eos_token_id=2, sep_token_id=102,
        pad_token_id=0,
    )  # fmt: skip
    vision = BlipVisionConfig(
        hidden_size=768, intermediate_size=3072, projection_dim=512, num_hidden_layers=12, num_attention_heads=12,
        image_size=384, patch_size=16,
    )  # fmt: skip
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=512, image_text_hidden_size=256)


def captions_part(args, section: dict, report: Report, budget: Budget) -> None:
    import torch
    from transformers import BlipForConditionalGeneration

    device = args.device
    section["device"] = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    section["how"] = "model.generate(pixel_values) on random pixels: batched vs one image at a time (greedy, fixed length)"
    for name in [m for m in args.blip_models.split(",") if m]:
        entry = section.setdefault(name, {})

        def run(name=name, entry=entry):
            budget.need(15 if name != "tiny" else 3, f"BLIP {name}")
            say(f"captions: BLIP {name}")
            config = blip_config(name)
            torch.manual_seed(0)
            with torch.device(device):
                model = BlipForConditionalGeneration(config).eval()
            size = config.vision_config.image_size
            n = args.frames
            images = torch.randn((n, 3, size, size), generator=torch.Generator().manual_seed(0)).to(device)
            kw = dict(max_new_tokens=args.caption_tokens, min_new_tokens=args.caption_tokens, do_sample=False, num_beams=1)

            def batched():
                with torch.inference_mode():
                    return model.generate(pixel_values=images, **kw)

            def singly():
                with torch.inference_mode():
                    return [model.generate(pixel_values=images[i : i + 1], **kw) for i in range(n)]

            with torch.inference_mode():
                model.generate(pixel_values=images[:1], max_new_tokens=2)  # warm-up
            out = {"frames": n, "new_tokens": args.caption_tokens, "parameters": sum(p.numel() for p in model.parameters())}
            if device.startswith("cuda"):
                tb, ids_b = timed(batched, device, reps=args.reps)
                ts, ids_s = timed(singly, device, reps=args.reps)
            else:
                times = interleaved({"batched": batched, "one_by_one": singly}, device, 1 if name != "tiny" else args.reps)
                tb, ts = times["batched"], times["one_by_one"]
                ids_b, ids_s = batched(), singly()
            out["batched"], out["one_by_one"] = tb, ts
            out["speedup_batched"] = ts["min_s"] / tb["min_s"]
            width = max(x.shape[-1] for x in ids_s)
            same = all(torch.equal(ids_b[i, : ids_s[i].shape[-1]].cpu(), ids_s[i][0].cpu()) for i in range(n))
            out["same_captions_batched_and_single"] = bool(same) and width == ids_b.shape[-1]
            say(f"  batched {tb['min_s']:.3f} s, one by one {ts['min_s']:.3f} s: {out['speedup_batched']:.1f}x, same tokens {same}")
            del model
            _free_cuda()
            return out

        record(section, name, run, report)


# =========================================================================== analysis


def make_clip(path: Path, seconds: float, ffmpeg: str) -> None:
    """A 1080p30 H.264 clip with a cut every seconds/6 s (testsrc2 in 6 looks, a little temporal noise)."""
    n = 6
    d = seconds / n
    looks = ["", ",negate", ",hue=h=120", ",hue=h=240:s=2", ",vflip", ",negate,hflip"]
    chains = [f"testsrc2=s=1920x1080:r=30:d={d:.3f}{look}[s{i}]" for i, look in enumerate(looks)]
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0,noise=alls=3:allf=t,format=yuv420p[v]"
    tmp = path.with_suffix(".part.mp4")
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-filter_complex", graph, "-map", "[v]",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-movflags", "+faststart", str(tmp)]  # fmt: skip
    subprocess.run(cmd, check=True)
    os.replace(tmp, path)


def analysis_part(args, section: dict, report: Report, budget: Budget) -> None:
    try:
        from scoretool.media.ffmpeg import ffmpeg_exe

        ffmpeg = ffmpeg_exe()
    except Exception as exc:
        raise Skip(f"no ffmpeg ({exc})") from None
    try:
        from scoretool.api import analyse as analyse_video
        from scoretool.media.probe import probe
        from scoretool.plans import Settings
        from scoretool.progress import Reporter
    except Exception as exc:
        raise Skip(f"scoretool.media cannot be imported here ({type(exc).__name__}: {exc})") from None
    for module in ("scenedetect", "av"):
        try:
            __import__(module)
        except Exception as exc:
            raise Skip(f"{module} is missing ({type(exc).__name__})") from None

    seconds = args.analysis_seconds
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    clip = cache / f"clip_1080p_{seconds:g}s.mp4"
    if not clip.exists():
        budget.need(seconds * 2.5, "making the 1080p clip")
        say(f"analysis: making {clip} ({seconds:g} s 1080p H.264)")
        t = time.perf_counter()
        make_clip(clip, seconds, ffmpeg)
        section["clip_made_in_s"] = time.perf_counter() - t
    section["clip"] = {"path": str(clip), "seconds": seconds, "bytes": clip.stat().st_size, "ffmpeg": ffmpeg}

    def decode():
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(clip), "-f", "null", "-"], check=True)

    stages = {}

    def analyse():
        """What `scoretool plan` does before captioning: probe, then one decode for scenes and frames."""
        t = time.perf_counter()
        info = probe(str(clip))
        t1 = time.perf_counter()
        reporter = Reporter()
        scenes, images = analyse_video(str(clip), info, Settings(), reporter)
        stages.update(probe_s=t1 - t, scenes_s=reporter.timings["scenes"], frames_s=reporter.timings["frames"],
                      scenes=len(scenes), frames=len(images))  # fmt: skip

    budget.need(seconds * 1.5, "analysis timing")
    say("analysis: ffmpeg decode vs probe + scenes + frames (interleaved)")
    times = interleaved({"ffmpeg_decode": decode, "analysis": analyse}, "cpu", args.analysis_reps)
    section.update(times)
    section["stages_last_run"] = stages
    section["ratio_analysis_over_decode"] = times["analysis"]["min_s"] / times["ffmpeg_decode"]["min_s"]
    section["target_1.3x"] = section["ratio_analysis_over_decode"] <= 1.3
    say(f"  ffmpeg {times['ffmpeg_decode']['min_s']:.2f} s, analysis {times['analysis']['min_s']:.2f} s "
        f"({section['ratio_analysis_over_decode']:.2f}x); stages {stages}")  # fmt: skip

    # Peak memory against the video's length: the same analysis, each in a fresh process, on a clip a
    # third as long and on the full one.
    short = cache / f"clip_1080p_{seconds / 3:g}s.mp4"
    if not short.exists():
        budget.need(seconds, "making the short clip")
        make_clip(short, seconds / 3, ffmpeg)
    memory = section.setdefault("peak_memory_mb", {})
    for path, length in ((short, seconds / 3), (clip, seconds)):
        out = subprocess.run([sys.executable, "-c", _PEAK_MEMORY, str(path)], check=True, capture_output=True, text=True)
        memory[f"{length:g}s"] = json.loads(out.stdout.strip().splitlines()[-1])
    say(f"  peak memory (MB) by clip length: {memory}")


# Run in a child process: the analysis of argv[1], then the peak RSS of this process and of ffmpeg.
_PEAK_MEMORY = """
import json, resource, sys
from scoretool.api import analyse
from scoretool.media.probe import probe
from scoretool.plans import Settings
from scoretool.progress import Reporter
analyse(sys.argv[1], probe(sys.argv[1]), Settings(), Reporter())
print(json.dumps({"python": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "ffmpeg": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))
"""


# =========================================================================== main

PARTS = {"music": music_part, "captions": captions_part, "analysis": analysis_part}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the results as JSON here (rewritten after every measurement)")
    p.add_argument("--parts", default="music,captions,analysis")
    p.add_argument("--quick", action="store_true", help="CPU-sized: fewer tokens and frames, batch 1 and 4")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--music-models", default="tiny,small", help="tiny and/or small (musicgen-small shape)")
    p.add_argument("--tokens", type=int, help="new tokens for the small model (default 503 = 10 s; --quick 28)")
    p.add_argument("--tiny-tokens", type=int, help="new tokens for the tiny model (default 503; --quick 203)")
    p.add_argument("--batches", help="comma list (default 1,8; --quick 1,4)")
    p.add_argument("--prompt-seconds", type=float, help="audio prompt of the continuation timing (default 10; --quick 2)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (the minimum is reported)")
    p.add_argument("--half-dtype", default="float16", choices=["float16", "bfloat16"])
    p.add_argument("--greedy-half-check", action="store_true", help="also compare half-precision greedy tokens")
    p.add_argument("--blip-models", default="tiny,base")
    p.add_argument("--frames", type=int, help="frames to caption (default 8; --quick 4)")
    p.add_argument("--caption-tokens", type=int, help="caption length in tokens (default 20; --quick 8)")
    p.add_argument("--analysis-seconds", type=float, help="clip length (default 60; --quick 20)")
    p.add_argument("--analysis-reps", type=int, default=2)
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "scoretool-bench"))
    p.add_argument("--budget-s", type=float, default=1e9, help="stop starting new measurements after this many seconds")
    args = p.parse_args(argv)
    q = args.quick
    args.tokens = args.tokens or (28 if q else 503)
    args.tiny_tokens = args.tiny_tokens or (203 if q else 503)
    args.prompt_seconds = args.prompt_seconds or (2.0 if q else 10.0)
    args.batches = [int(b) for b in (args.batches or ("1,4" if q else "1,8")).split(",")]
    args.frames = args.frames or (4 if q else 8)
    args.caption_tokens = args.caption_tokens or (8 if q else 20)
    args.analysis_seconds = args.analysis_seconds or (20.0 if q else 60.0)
    if q and args.reps == 3:
        args.reps = 2
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.device == "auto":
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
    except Exception as exc:
        if args.device == "auto":
            args.device = "cpu"
        say(f"torch cannot be imported ({exc}): music and captions will be skipped")
    report = Report(args.out, meta_info(args))
    report.data["meta"]["device"] = args.device
    report.data["meta"]["settings"] = {k: v for k, v in vars(args).items() if k not in ("out",)}
    report.save()
    budget = Budget(args.budget_s)
    say(f"device {args.device}; parts {args.parts}; out {args.out}")
    for name in [p for p in args.parts.split(",") if p]:
        section = report.data["parts"].setdefault(name, {})
        t = time.perf_counter()
        try:
            if name not in PARTS:
                raise Skip(f"unknown part {name!r}")
            PARTS[name](args, section, report, budget)
            section.setdefault("status", "ok")
        except Skip as exc:
            section.update(status="skipped", reason=str(exc))
            say(f"{name}: skipped: {exc}")
        except Exception as exc:
            section.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=10))
            say(f"{name}: ERROR {type(exc).__name__}: {exc}")
        section["elapsed_s"] = time.perf_counter() - t
        report.save()
        _free_cuda()
    say("summary:")
    print(json.dumps(summary(report.data), indent=2), flush=True)
    report.data["summary"] = summary(report.data)
    report.save()
    return 0


def summary(data: dict) -> dict:
    out = {}
    music = data["parts"].get("music", {})
    for name, entry in music.get("models", {}).items():
        if isinstance(entry, dict) and "summary" in entry:
            out[f"music/{name}"] = entry["summary"]
            checks = entry.get("checks", {})
            g = checks.get("greedy_fp32", {})
            if isinstance(g, dict) and "fast_default" in g:
                out[f"music/{name}"]["greedy_fp32_equal"] = g["fast_default"].get("equal")
            cont = entry.get("runs", {}).get("continuation_b1", {})
            if isinstance(cont, dict) and "speedup" in cont:
                out[f"music/{name}"]["continuation_b1_speedup"] = cont["speedup"]
                out[f"music/{name}"]["continuation_greedy_fp32_equal"] = cont["greedy_fp32_vs_generate"].get("equal")
            sm = checks.get("sampling_fp32", {})
            if isinstance(sm, dict) and "fast_vs_transformers" in sm:
                out[f"music/{name}"]["sampling_fp32_equal"] = sm["fast_vs_transformers"].get("equal")
    for name, entry in data["parts"].get("captions", {}).items():
        if isinstance(entry, dict) and "speedup_batched" in entry:
            out[f"captions/{name}"] = {"speedup_batched": entry["speedup_batched"]}
    analysis = data["parts"].get("analysis", {})
    if "ratio_analysis_over_decode" in analysis:
        out["analysis"] = {"ratio_analysis_over_decode": analysis["ratio_analysis_over_decode"],
                           "peak_memory_mb": analysis.get("peak_memory_mb")}  # fmt: skip
    for name, section in data["parts"].items():
        if section.get("status") in ("skipped", "error"):
            out[name] = {"status": section["status"], "reason": section.get("reason") or section.get("error")}
    return out


if __name__ == "__main__":
    sys.exit(main())

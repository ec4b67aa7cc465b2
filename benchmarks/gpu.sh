#!/usr/bin/env bash
# Issue #7's GPU benchmark in one go: MusicGen generate vs the fast decode loop (fp32 and half,
# batch 1 and 8, 10 s of audio, musicgen-small shape with random weights + the tiny test model;
# also continuing a 10 s audio prompt, batch 1),
# BLIP batched vs one by one, and the analysis stage where its packages exist. About 4-6 minutes
# on an H100, bounded by --budget-s and a hard timeout. Results: $OUT/bench.json, $OUT/bench.log,
# $OUT/env.txt (default OUT=./bench-out). Needs only torch + transformers + numpy (+ sentencepiece
# for the tiny model's tokenizer); run from anywhere:  OUT=/tmp/out bash benchmarks/gpu.sh
# BENCH_ARGS adds/overrides bench.py options (a CPU dry run: BENCH_ARGS="--quick --tokens 8 ...").
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/bench-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

{
  date
  nvidia-smi || true
  "$PY" -c 'import sys, torch, transformers; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available()); print("transformers", transformers.__version__)'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

timeout -k 10 360 "$PY" -u benchmarks/bench.py \
  --out "$OUT/bench.json" --budget-s 310 --greedy-half-check \
  --music-models small,tiny --blip-models base,tiny \
  --cache-dir "${TMPDIR:-/tmp}/scoretool-bench" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
status=${PIPESTATUS[0]}
echo "bench.py exit status: $status" | tee -a "$OUT/bench.log"

# The CUDA-only unit tests (graphs vs eager on the tiny model), where pytest is installed.
if "$PY" -c "import pytest" >/dev/null 2>&1; then
  timeout -k 5 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_fast_decode.py -k cuda 2>&1 | tail -15 | tee "$OUT/pytest-cuda.log"
fi
exit "$status"

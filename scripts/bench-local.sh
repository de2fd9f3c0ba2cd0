#!/usr/bin/env bash
# Local GGUF chat model (confab-llm feature `local`) vs llama.cpp's server on
# the same SmolLM2 GGUF, with one and two threads on both sides: model load
# time, prompt time, generation tokens/s and the local/llama.cpp ratio.
#
#   scripts/bench-local.sh            (make bench-local)
#
# Needs `make models` (models/SmolLM2-135M-Instruct.Q4_1.gguf) and
# scripts/llama-server.sh install (done here; first time builds a wheel,
# ~6 min). Variables: BENCH_RUNS (5), BENCH_MAX_TOKENS (128), CARGO.
# candle's quantized kernels run on a process-wide pool sized from
# CANDLE_NUM_THREADS, so each thread count is its own bench process.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
MODEL=${CONFAB_LOCAL_CHAT_MODEL:-$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$MODEL" ] || { echo "bench-local: $MODEL missing (run make models)" >&2; exit 1; }
scripts/llama-server.sh install >&2
"$CARGO" bench -p confab-llm --features local --bench local_chat --no-run >&2
dir=$(mktemp -d /tmp/confab-bench-local.XXXXXX)
trap 'scripts/llama-server.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
for threads in 1 2; do
  url=$(CONFAB_LLAMA_ARGS="--n_threads $threads --n_threads_batch $threads" scripts/llama-server.sh start "$dir")
  echo "== $threads thread(s); llama.cpp at $url"
  CONFAB_LLAMA_URL=$url CANDLE_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads \
    BENCH_THREADS=$threads CONFAB_LOCAL_CHAT_MODEL=$MODEL \
    "$CARGO" bench -q -p confab-llm --features local --bench local_chat
  scripts/llama-server.sh stop "$dir" >/dev/null
done

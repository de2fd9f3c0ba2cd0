#!/usr/bin/env bash
# Local GGUF chat model (confab-llm feature `local`, llama.cpp in-process)
# vs llama.cpp's server (llama-cpp-python) on the same SmolLM2 GGUF:
#  1. local_ttft, 2 threads: time to first token on a ~1,000-token RAG
#     prompt (fresh prefix every run), decode tokens/s, the second turn of
#     the conversation, 4 concurrent conversations (aggregate tokens/s, the
#     last user's first token); ratios to llama.cpp measured in the same run;
#  2. local_chat, 1 and 2 threads: load time, short-prompt generation tokens/s.
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
"$CARGO" bench -p confab-llm --features local --bench local_chat --bench local_ttft --no-run >&2
dir=$(mktemp -d /tmp/confab-bench-local.XXXXXX)
trap 'scripts/llama-server.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
url=$(CONFAB_LLAMA_ARGS="--n_threads 2 --n_threads_batch 2" scripts/llama-server.sh start "$dir")
echo "== RAG prompt, 2 threads; llama.cpp at $url"
CONFAB_LLAMA_URL=$url BENCH_THREADS=2 CONFAB_LOCAL_CHAT_MODEL=$MODEL \
  "$CARGO" bench -q -p confab-llm --features local --bench local_ttft
scripts/llama-server.sh stop "$dir" >/dev/null
for threads in 1 2; do
  url=$(CONFAB_LLAMA_ARGS="--n_threads $threads --n_threads_batch $threads" scripts/llama-server.sh start "$dir")
  echo "== $threads thread(s); llama.cpp at $url"
  CONFAB_LLAMA_URL=$url CANDLE_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads \
    BENCH_THREADS=$threads CONFAB_LOCAL_CHAT_MODEL=$MODEL \
    "$CARGO" bench -q -p confab-llm --features local --bench local_chat
  scripts/llama-server.sh stop "$dir" >/dev/null
done

#!/usr/bin/env bash
# CI step of the embedded chat model (issue 20), one line in .ci/run:
#   1. installs what building llama.cpp from source needs (the
#      llama-cpp-sys-2 crate runs cmake and bindgen): cmake, libclang, clang;
#   2. fetches the local models (scripts/models.sh);
#   3. `make eval`: the grounded QA set through the real RAG path with the
#      default local model, failing below the score floor (EVAL_FLOOR).
# Idempotent; about 3-4 minutes on 2 cores once the workspace is built.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in cmake libclang-dev clang; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "ci-llm: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
case "${1:-all}" in
  deps) exit 0 ;;
  all | eval) ;;
  *) echo "usage: $0 [deps|eval]" >&2; exit 2 ;;
esac
scripts/models.sh
make eval

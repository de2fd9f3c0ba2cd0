#!/usr/bin/env bash
# CI performance regression check (issue 18): a short run (under a minute
# once built) of the gateway benchmark, scripts/bench-gateway.sh, that fails
# only on a LARGE regression, so machine noise cannot fail CI:
#
#   scripts/ci-perf.sh
#
# One fixed rate, CI_PERF_RATE (default 750 req/s: half of the gateway's
# saturation measured before issue 18, a quarter of its 3,000 req/s
# target), `POST /v1/chat/completions` through api-gateway -> chat-service
# -> the fake LLM server, next to the fake server alone at the same rate.
# It fails when the gateway does not hold that rate (>= 0.1% errors or
# p99 >= CI_PERF_P99_MS, default 100 ms) or adds more than
# CI_PERF_ADDED_P99_MS (default 50 ms, 25x the 2 ms target) to the p99.
# A healthy build holds it with a wide margin; a check failing here means
# something got several times slower (or broke under load).
#
# Builds the release binaries it needs (api-gateway, chat-service, the
# testkit's fake-llm, rate-load and bench-report); set CI_PERF_NO_BUILD=1 to use
# built ones.
set -euo pipefail

cd "$(dirname "$0")/.."
RATE=${CI_PERF_RATE:-750}
P99_MS=${CI_PERF_P99_MS:-100}
ADDED_MS=${CI_PERF_ADDED_P99_MS:-50}
OUT=$(mktemp "${TMPDIR:-/tmp}/ci-perf.XXXXXX.json")
trap 'rm -f "$OUT"' EXIT

echo "ci-perf: gateway at $RATE req/s: must hold it (p99 < $P99_MS ms, < 0.1% errors), p99 added < $ADDED_MS ms"
status=0
BENCH_GW_RATES="$RATE" BENCH_GW_SEARCH="" BENCH_GW_SECS=8 BENCH_GW_WARMUP_SECS=2 \
  BENCH_GW_SPLIT_RATE=0 BENCH_GW_TARGET_RATE="$RATE" BENCH_GW_TARGET_MS="$ADDED_MS" \
  BENCH_GW_P99_LIMIT_MS="$P99_MS" BENCH_GW_STRICT=1 BENCH_GW_OUT="$OUT" \
  BENCH_GW_NO_BUILD="${CI_PERF_NO_BUILD:-0}" \
  scripts/bench-gateway.sh || status=$?
if [ "$status" -ne 0 ]; then
  echo "ci-perf: FAILED: the gateway did not hold $RATE req/s with p99 added < $ADDED_MS ms (figures above)"
  exit 1
fi
echo "ci-perf: OK"

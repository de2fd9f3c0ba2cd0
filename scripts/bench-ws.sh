#!/usr/bin/env bash
# WebSocket load benchmark of chat-service (issue 6, "Benchmark"):
#
#   scripts/bench-ws.sh        (or: make bench-ws)
#
# Builds the release binaries, starts the fake LLM server (`fake-llm`, every
# reply 50 tokens, 5 ms before each) and a release chat-service on a temp
# SQLite database, both on free loopback ports, then runs `ws-load`:
#   1. direct  the baseline: N concurrent streaming completions straight to
#              the fake server (model `slow`), R rounds on one HTTP client
#   2. chat    N concurrent WebSocket conversations through chat-service,
#              R rounds (all sockets closed between rounds), server RSS sampled
#   3. idle    M idle WebSocket connections held open: RSS per connection
#              (on a fresh chat-service process over the same database)
# and prints the figures, the through-chat-service ones as differences and
# ratios against the baseline of the same run (the machine may be shared
# and noisy: compare runs by ratios, not by milliseconds), then the targets
# of issue 18 (added TTFT p99 of N first messages at once <= 100 ms, RSS
# per idle WebSocket <= 16 KiB), each with its figure and PASS/MISS (a MISS
# does not change the exit status). The summary and its decisions are made by
# `bench-report ws` (crates/testkit/src/bin/bench-report/), from the JSON
# figures ws-load prints. Everything it started is stopped on exit.
#
# Settings (environment):
#   BENCH_WS_CONVERSATIONS  concurrent conversations           (default 1000)
#   BENCH_WS_ROUNDS         rounds of chat and of direct       (default 3)
#   BENCH_WS_IDLE           idle connections                   (default 10000)
#   BENCH_WS_TOKENS         tokens per reply                   (default 50)
#   BENCH_WS_DELAY_MS       ms before each token               (default 5)
#   BENCH_WS_WORKERS        chat-service HTTP_WORKERS          (default 2)
#   BENCH_WS_NO_BUILD=1     use the binaries already in the target dir
#   BENCH_WS_OUT            where the JSON figures are written
#                           (default $CARGO_TARGET_DIR/bench-ws.json)
#   CARGO, CARGO_TARGET_DIR as usual
#
# Exit status: 0 when every conversation got its whole answer and every idle
# connection stayed open; 1 otherwise (the figures are printed either way).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO=${CARGO:-cargo}
CONVERSATIONS=${BENCH_WS_CONVERSATIONS:-1000}
ROUNDS=${BENCH_WS_ROUNDS:-3}
IDLE=${BENCH_WS_IDLE:-10000}
TOKENS=${BENCH_WS_TOKENS:-50}
DELAY_MS=${BENCH_WS_DELAY_MS:-5}
WORKERS=${BENCH_WS_WORKERS:-2}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/release
OUT=${BENCH_WS_OUT:-$TARGET_DIR/bench-ws.json}
# The summary: testkit's bench-report (src/bin/bench-report/).
REPORT=$BIN/bench-report

LOG_NAME=bench-ws
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- file descriptors: the client holds up to IDLE sockets, the server its
# own IDLE (separate processes, each inherits this limit).
nofile=$(raise_nofile)
need=$((IDLE > CONVERSATIONS ? IDLE : CONVERSATIONS))
need=$((need + 512))
if [ "$nofile" != unlimited ] && [ "$nofile" -lt "$need" ]; then
  log "warning: ulimit -n is $nofile (hard $(ulimit -Hn)); $need wanted: some connections may be refused"
fi
log "ulimit -n $nofile"

# --- build
if [ "${BENCH_WS_NO_BUILD:-0}" != 1 ]; then
  log "building release binaries (several minutes from clean)"
  "$CARGO" build --release -p chat-service -p confab-testkit --bins
  # The freshly linked binaries (hundreds of MB) are written back to disk
  # meanwhile otherwise, on the cores the measurement uses.
  sync
fi
for b in chat-service fake-llm ws-load bench-report; do
  [ -x "$BIN/$b" ] || die "missing $BIN/$b (build it, or unset BENCH_WS_NO_BUILD)"
done

# --- processes, stopped on exit
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-ws.XXXXXX")
FAKE_PID=
CHAT_PID=
# Stops chat-service at once (a second TERM skips the grace period).
# shellcheck disable=SC2317
stop_chat() {
  if [ -n "$CHAT_PID" ]; then kill -TERM "$CHAT_PID" 2>/dev/null || true; fi
  stop_pid "$CHAT_PID"
  CHAT_PID=
}

# shellcheck disable=SC2317
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_chat
  stop_pid "$FAKE_PID"
  if [ "$status" -ne 0 ]; then
    for f in chat chat-idle; do
      if [ -s "$WORK/$f.err" ]; then
        log "chat-service ($f) stderr, last lines:"
        tail -n 20 "$WORK/$f.err" >&2 || true
      fi
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fake-llm: --delay-ms sets the delay of every model (`slow` included).
"$BIN/fake-llm" --port 0 --delay-ms "$DELAY_MS" --tokens "$TOKENS" \
  >"$WORK/fake.out" 2>"$WORK/fake.err" &
FAKE_PID=$!
FAKE_ADDR=$(listening_addr "$WORK/fake.out" "$FAKE_PID" fake-llm "$WORK/fake.err")
log "fake-llm (pid $FAKE_PID) on $FAKE_ADDR: $TOKENS tokens per reply, $DELAY_MS ms each"

# Starts chat-service (logs in $WORK/NAME.out / NAME.err); sets CHAT_PID and
# CHAT_ADDR. It runs in the temp dir so no .env of the checkout is read, with
# no internal key (standalone: each socket's X-User-Id names its user).
start_chat() {
  local name=$1
  (
    cd "$WORK"
    exec env -u AGENT_RUNTIME__INTERNAL_API_KEY -u CONFAB_LLM_PROVIDER -u OLLAMA_HOST \
      -u OPENAI_API_KEY -u CONFAB_MCP_SERVERS -u CONFAB_LLM_FALLBACK \
      DATABASE_URL="sqlite://$WORK/bench.db" \
      CHAT_SERVICE_BIND=127.0.0.1:0 \
      AGENT_RUNTIME__LLM_PROXY_URL="http://$FAKE_ADDR" \
      AGENT_RUNTIME__LLM_MODEL=slow \
      HTTP_WORKERS="$WORKERS" \
      LOG_LEVEL=warn \
      "$BIN/chat-service"
  ) >"$WORK/$name.out" 2>"$WORK/$name.err" &
  CHAT_PID=$!
  CHAT_ADDR=$(listening_addr "$WORK/$name.out" "$CHAT_PID" chat-service "$WORK/$name.err")
  log "chat-service (pid $CHAT_PID) on $CHAT_ADDR, SQLite, $WORKERS workers"
}

LOAD=("$BIN/ws-load")
COMMON=(--tokens "$TOKENS")

run_load() {
  local name=$1
  shift
  log "ws-load $*"
  "${LOAD[@]}" "$@" "${COMMON[@]}" | tee "$WORK/$name.out"
  local json
  json=$(grep '^{' "$WORK/$name.out" | tail -n 1)
  [ -n "$json" ] || die "ws-load $name printed no figures"
  printf '%s\n' "$json" >"$WORK/$name.json"
}

start_chat chat

echo "== baseline: $CONVERSATIONS streaming completions straight to fake-llm, $ROUNDS rounds"
run_load direct direct --url "http://$FAKE_ADDR/v1/chat/completions" \
  --conversations "$CONVERSATIONS" --rounds "$ROUNDS"
echo
echo "== $CONVERSATIONS WebSocket conversations through chat-service, $ROUNDS rounds"
run_load chat chat --url "ws://$CHAT_ADDR/ws/chat" \
  --conversations "$CONVERSATIONS" --rounds "$ROUNDS" --pid "$CHAT_PID"
kill -0 "$CHAT_PID" 2>/dev/null || die "chat-service died during the chat rounds"
# The idle measurement gets a fresh process: after the chat rounds the
# allocator holds freed memory that new connections would reuse unseen.
stop_chat
start_chat chat-idle
echo
echo "== $IDLE idle WebSocket connections (fresh chat-service process, same database)"
run_load idle idle --url "ws://$CHAT_ADDR/ws/chat" --connections "$IDLE" --pid "$CHAT_PID"
kill -0 "$CHAT_PID" 2>/dev/null || die "chat-service died during the idle run"

for f in chat chat-idle; do
  if [ -s "$WORK/$f.err" ]; then
    log "chat-service ($f) logged $(wc -l <"$WORK/$f.err") lines at warn or above; first ones:"
    head -n 10 "$WORK/$f.err" >&2
  fi
done

mkdir -p "$(dirname "$OUT")"
echo
status=0
"$REPORT" ws --direct "$WORK/direct.json" --chat "$WORK/chat.json" --idle "$WORK/idle.json" \
  --out "$OUT" --conversations "$CONVERSATIONS" --rounds "$ROUNDS" --idle-connections "$IDLE" \
  --tokens "$TOKENS" --delay-ms "$DELAY_MS" --workers "$WORKERS" || status=$?
exit "$status"

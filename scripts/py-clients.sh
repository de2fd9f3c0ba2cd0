#!/usr/bin/env bash
# A Python with the `websockets` package from PyPI, for running the seed 003
# WebSocket client examples (scripts/seed-clients/*.py) unchanged against
# chat-service. Reaches only PyPI (and Debian's apt, for python3-venv when
# it is missing and we are root).
#
#   scripts/py-clients.sh install   install into the cache once (idempotent)
#   scripts/py-clients.sh python    print ONLY the path of the venv's python
#
# Cache root: ${CONFAB_CACHE:-$HOME/.cache/confab}
#   py-clients/   venv with websockets
# Tests find it through CONFAB_PYTHON (the printed path):
#   CONFAB_PYTHON="$(scripts/py-clients.sh python)" cargo test -p chat-service --test seed_client
set -euo pipefail

# The version it was verified with (Python 3.11, Debian 12). If it cannot
# be installed (another Python), install retries unpinned.
WEBSOCKETS_VERSION=17.4

CACHE=${CONFAB_CACHE:-$HOME/.cache/confab}
VENV=$CACHE/py-clients
PY=$VENV/bin/python

log() { echo "py-clients: $*" >&2; }
die() { echo "py-clients: ERROR: $*" >&2; exit 1; }
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

venv_ok() {
  [ -x "$PY" ] && "$PY" -c 'import sys' >/dev/null 2>&1
}

# Installed and importable (any version: an unpinned fallback install counts).
installed_ok() {
  venv_ok && "$PY" -c 'import websockets; websockets.connect' >/dev/null 2>&1
}

pinned_ok() {
  venv_ok && "$PY" - "$WEBSOCKETS_VERSION" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
import websockets
assert version("websockets") == sys.argv[1], version("websockets")
EOF
}

ensure_venv() {
  if venv_ok; then return; fi
  rm -rf "$VENV"
  local py
  py=$(command -v python3) || die "python3 not found"
  if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "python3 has no venv/ensurepip: apt-get install python3-venv"
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        || die "apt-get install python3-venv failed"
    else
      die "python3 lacks the venv module: install python3-venv (as root: apt-get install python3-venv)"
    fi
  fi
  log "creating venv $VENV ($("$py" --version 2>&1))"
  "$py" -m venv "$VENV" || die "python3 -m venv $VENV failed"
}

pip_() { "$PY" -m pip --disable-pip-version-check "$@"; }

do_install() {
  local t0=$SECONDS
  mkdir -p "$CACHE/logs"
  # Two installs at once (parallel CI jobs) must not race on the venv.
  if command -v flock >/dev/null; then
    exec 9>"$CACHE/py-clients-install.lock"
    flock 9
  fi
  if pinned_ok; then
    log "websockets $WEBSOCKETS_VERSION already installed in $VENV"
    return
  fi
  ensure_venv
  local ilog=$CACHE/logs/py-clients-pip-install.log
  local spec="websockets==$WEBSOCKETS_VERSION"
  log "installing $spec into $VENV"
  if ! pip_ install -q "$spec" >"$ilog" 2>&1; then
    tail -n 20 "$ilog" >&2
    if installed_ok; then
      log "WARNING: $spec did not install; keeping the websockets already in $VENV"
      return
    fi
    log "WARNING: $spec did not install; retrying unpinned"
    if ! pip_ install -q websockets >"$ilog" 2>&1; then
      tail -n 40 "$ilog" >&2
      die "pip install websockets failed (full log: $ilog)"
    fi
  fi
  installed_ok || die "installed, but websockets does not import (see $ilog)"
  log "installed websockets $("$PY" -c 'from importlib.metadata import version; print(version("websockets"))') in $((SECONDS - t0)) s"
}

do_python() {
  installed_ok || die "not installed: run '$0 install' first (cache $CACHE)"
  echo "$PY"
}

case "${1:-}" in
  install) do_install ;;
  python) do_python ;;
  *) usage ;;
esac

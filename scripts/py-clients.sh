#!/usr/bin/env bash
# A Python with client packages from PyPI, for the tests that drive confab
# with other people's clients:
#   websockets    the seed 003 WebSocket client examples
#                 (scripts/seed-clients/*.py) unchanged against chat-service
#   openai        the official OpenAI SDK against the gateway's /v1
#                 (scripts/py-clients/openai_sdk.py)
#   schemathesis  schema-driven fuzzing of the gateway's /openapi.json
#                 (`python -m schemathesis.cli` or the venv's bin/schemathesis)
# Reaches only PyPI (and Debian's apt, for python3-venv when it is missing
# and we are root).
#
#   scripts/py-clients.sh install   install into the cache once (idempotent)
#   scripts/py-clients.sh python    print ONLY the path of the venv's python
#
# Cache root: ${CONFAB_CACHE:-$HOME/.cache/confab}
#   py-clients/   venv with websockets, openai, schemathesis
# Tests find it through CONFAB_PYTHON (the printed path):
#   CONFAB_PYTHON="$(scripts/py-clients.sh python)" cargo test -p chat-service --test seed_client
#   CONFAB_PYTHON="$(scripts/py-clients.sh python)" cargo test -p api-gateway --test python_clients
set -euo pipefail

# The versions they were verified with (Python 3.11, Debian 12); a
# constraints file keeps a later run from resolving their dependencies to
# untested releases. If they cannot be installed (another Python), install
# retries unpinned.
WEBSOCKETS_VERSION=17.4
OPENAI_VERSION=3.54.0
SCHEMATHESIS_VERSION=4.32.5
PINS="websockets==$WEBSOCKETS_VERSION openai==$OPENAI_VERSION schemathesis==$SCHEMATHESIS_VERSION"
CONSTRAINTS='
annotated-types==0.8.0
anyio==4.16.0
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
graphql-core==3.3.2
h11==0.16.0
harfile==0.6.0
httpcore2==2.16.2
httpx2==2.16.2
hypothesis==6.170.15
hypothesis-graphql==0.13.5
idna==3.20
iniconfig==2.3.1
jiter==0.19.0
jsonschema_rs==0.60.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
packaging==26.3
pluggy==1.7.0
pydantic==2.14.3
pydantic_core==2.50.4
Pygments==2.21.0
pyrate-limiter==4.5.1
pytest==9.2.0
PyYAML==6.0.3
requests==2.34.2
rich==15.0.0
sniffio==1.3.1
sortedcontainers==2.4.0
truststore==0.10.5
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
'

CACHE=${CONFAB_CACHE:-$HOME/.cache/confab}
VENV=$CACHE/py-clients
PY=$VENV/bin/python

LOG_NAME=py-clients
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

# Installed and importable (any version: an unpinned fallback install counts).
installed_ok() {
  venv_ok "$VENV" && "$PY" - >/dev/null 2>&1 <<'EOF'
import websockets, openai, schemathesis, schemathesis.cli
websockets.connect
openai.OpenAI
EOF
}

# Every pin installed at its version (the marker that makes a second
# install do nothing).
pinned_ok() {
  # shellcheck disable=SC2086
  venv_ok "$VENV" && "$PY" - $PINS >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name) == want, (name, version(name))
EOF
}

pip_() { venv_pip "$VENV" "$@"; }

versions() {
  "$PY" -c 'from importlib.metadata import version as v; print(", ".join(f"{p} {v(p)}" for p in ("websockets", "openai", "schemathesis")))'
}

do_install() {
  local t0=$SECONDS
  mkdir -p "$CACHE/logs"
  # Two installs at once (parallel CI jobs) must not race on the venv.
  if command -v flock >/dev/null; then
    exec 9>"$CACHE/py-clients-install.lock"
    flock 9
  fi
  if pinned_ok; then
    log "$PINS already installed in $VENV"
    return
  fi
  ensure_venv "$VENV"
  local ilog=$CACHE/logs/py-clients-pip-install.log
  local cons=$CACHE/py-clients-constraints.txt
  printf '%s\n' "$CONSTRAINTS" >"$cons"
  log "installing $PINS into $VENV"
  # shellcheck disable=SC2086
  if ! pip_ install -q -c "$cons" $PINS >"$ilog" 2>&1; then
    tail -n 20 "$ilog" >&2
    if installed_ok; then
      log "WARNING: $PINS did not install; keeping the packages already in $VENV"
      return
    fi
    log "WARNING: $PINS did not install; retrying unpinned"
    if ! pip_ install -q websockets openai schemathesis >"$ilog" 2>&1; then
      tail -n 40 "$ilog" >&2
      die "pip install websockets openai schemathesis failed (full log: $ilog)"
    fi
  fi
  installed_ok || die "installed, but websockets/openai/schemathesis do not import (see $ilog)"
  log "installed $(versions) in $((SECONDS - t0)) s"
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

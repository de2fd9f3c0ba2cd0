#!/usr/bin/env bash
# Real MCP servers (written by others) for the MCP client tests: today the
# reference time server `mcp-server-time` from PyPI, spoken to over stdio.
# Reaches only PyPI (and Debian's apt, for python3-venv when it is missing
# and we are root).
#
#   scripts/mcp-servers.sh install   install into the cache once (idempotent)
#   scripts/mcp-servers.sh path      print ONLY the path of the mcp-server-time executable
#
# Cache root: ${CONFAB_CACHE:-$HOME/.cache/confab}
#   mcp-venv/   venv with mcp-server-time (and the `mcp` Python SDK it uses)
# Tests find the server through CONFAB_MCP_TIME_CMD (the printed path):
#   CONFAB_MCP_TIME_CMD="$(scripts/mcp-servers.sh path)" cargo test -p confab-agents --test mcp
set -euo pipefail

MCP_SERVER_TIME_VERSION=2026.10.19
# Versions it was verified with (Python 3.11, Debian 12); a constraints file
# keeps a later run from resolving to untested releases. If they cannot be
# installed (another Python), install retries unpinned.
CONSTRAINTS='
annotated-types==0.8.0
anyio==4.16.0
attrs==26.1.0
cffi==2.1.1
click==8.5.1
cryptography==50.0.2
h11==0.16.0
httpcore2==2.16.2
httpx2==2.16.2
idna==3.20
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
mcp==2.3.0
mcp-types==2.3.0
opentelemetry-api==1.45.2
pycparser==3.12
pydantic==2.14.3
pydantic_core==2.50.4
PyJWT==2.15.1
python-multipart==0.0.34
referencing==0.37.0
rpds-py==2026.9.1
sse-starlette==3.7.0
starlette==1.10.0
truststore==0.10.5
typing-inspection==0.4.5
typing_extensions==4.16.0
tzdata==2026.6
tzlocal==5.4.5
uvicorn==0.54.0
'

CACHE=${CONFAB_CACHE:-$HOME/.cache/confab}
VENV=$CACHE/mcp-venv
TIME_CMD=$VENV/bin/mcp-server-time

LOG_NAME=mcp-servers
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

installed_ok() {
  venv_ok "$VENV" && [ -x "$TIME_CMD" ] && "$VENV/bin/python" - "$MCP_SERVER_TIME_VERSION" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
import mcp_server_time.server  # imports the MCP SDK too
assert version("mcp-server-time") == sys.argv[1], version("mcp-server-time")
EOF
}

pip_() { venv_pip "$VENV" "$@"; }

do_install() {
  local t0=$SECONDS
  mkdir -p "$CACHE/logs"
  # Two installs at once (parallel CI jobs) must not race on the venv.
  if command -v flock >/dev/null; then
    exec 9>"$CACHE/mcp-install.lock"
    flock 9
  fi
  if installed_ok; then
    log "mcp-server-time $MCP_SERVER_TIME_VERSION already installed in $VENV"
    return
  fi
  ensure_venv "$VENV"
  local constraints=$CACHE/logs/mcp-constraints.txt ilog=$CACHE/logs/mcp-pip-install.log
  local spec="mcp-server-time==$MCP_SERVER_TIME_VERSION"
  printf '%s\n' "$CONSTRAINTS" >"$constraints"
  log "installing $spec into $VENV"
  if ! pip_ install -q -c "$constraints" "$spec" >"$ilog" 2>&1; then
    tail -n 20 "$ilog" >&2
    log "WARNING: pinned dependencies did not install; retrying unpinned"
    if ! pip_ install -q "$spec" >"$ilog" 2>&1; then
      tail -n 40 "$ilog" >&2
      die "pip install $spec failed (full log: $ilog)"
    fi
  fi
  installed_ok || die "installed, but mcp-server-time does not import (see $ilog)"
  log "installed mcp-server-time $MCP_SERVER_TIME_VERSION in $((SECONDS - t0)) s"
}

do_path() {
  [ -x "$TIME_CMD" ] || die "not installed: run '$0 install' first (cache $CACHE)"
  echo "$TIME_CMD"
}

case "${1:-}" in
  install) do_install ;;
  path) do_path ;;
  *) usage ;;
esac

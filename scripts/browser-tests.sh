#!/usr/bin/env bash
# The web client's browser tests (issue 16): Playwright (PyPI) driving
# Debian's Chromium headless against the real binaries (api-gateway,
# chat-service, testkit's fake-llm) on 127.0.0.1, SQLite in a temp dir.
#
# Installs what it needs on a fresh machine: `apt-get install chromium` when
# /usr/bin/chromium is missing (as root), and a venv with playwright + pytest
# under ~/.cache/confab/browser-venv (Playwright's own browser download is
# never used). Builds the binaries (debug; CONFAB_BROWSER_PROFILE=release for
# release), runs pytest and exits non-zero when anything fails or is skipped
# (CONFAB_REQUIRE_BROWSER=1 is set: a missing browser fails, not skips).
#
#   scripts/browser-tests.sh [pytest args...]     e.g. -k phone
#
# Output (screenshots, export.md, first-load.json, heap.json, logs):
# $CONFAB_BROWSER_OUT (default $CARGO_TARGET_DIR/browser-tests).
# CONFAB_REFRESH_SCREENSHOT=1 also copies the chat screenshot to
# docs/screenshot-chat.png (the README's picture).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO=${CARGO:-cargo}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
PROFILE=${CONFAB_BROWSER_PROFILE:-debug}
VENV=${CONFAB_BROWSER_VENV:-$HOME/.cache/confab/browser-venv}
PLAYWRIGHT_VERSION=1.65.2
export CONFAB_CHROMIUM=${CONFAB_CHROMIUM:-/usr/bin/chromium}
export CONFAB_REQUIRE_BROWSER=1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

LOG_NAME=browser-tests
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -x "$CONFAB_CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
  else
    log "ERROR: no Chromium at $CONFAB_CHROMIUM (apt-get install chromium, or set CONFAB_CHROMIUM)"
    exit 1
  fi
fi

if ! "$VENV/bin/python" -c "import playwright, pytest; from importlib.metadata import version; assert version('playwright') == '$PLAYWRIGHT_VERSION'" 2>/dev/null; then
  log "installing playwright==$PLAYWRIGHT_VERSION and pytest into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION" "pytest>=8,<9"
fi

log "building api-gateway, chat-service and fake-llm ($PROFILE)"
flag=(); [ "$PROFILE" = release ] && flag=(--release)
"$CARGO" build "${flag[@]}" -p api-gateway -p chat-service -p confab-testkit \
  --bin api-gateway --bin chat-service --bin fake-llm
export CONFAB_BIN_DIR=$CARGO_TARGET_DIR/$PROFILE
case "$CONFAB_BIN_DIR" in /*) ;; *) CONFAB_BIN_DIR=$ROOT/$CONFAB_BIN_DIR ;; esac
export CONFAB_BROWSER_OUT=${CONFAB_BROWSER_OUT:-$CONFAB_BIN_DIR/../browser-tests}
mkdir -p "$CONFAB_BROWSER_OUT"

log "chromium: $("$CONFAB_CHROMIUM" --version 2>/dev/null | head -1); output in $CONFAB_BROWSER_OUT"
cd bins/api-gateway/tests/browser
set +e
"$VENV/bin/python" -m pytest -ra -s -p no:cacheprovider --junitxml="$CONFAB_BROWSER_OUT/junit.xml" "$@"
rc=$?
set -e
# A skipped test is a failure here (the browser was required).
if [ "$rc" = 0 ] && grep -q '<skipped' "$CONFAB_BROWSER_OUT/junit.xml"; then
  log "ERROR: tests were skipped"
  rc=1
fi
exit "$rc"

# Helpers shared by the scripts in this directory. Source it after setting
# LOG_NAME (the prefix of every message; default: the script's name):
#
#   LOG_NAME=models
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Nothing here runs on its own: only functions are defined.
# shellcheck shell=bash

# One line on stderr, prefixed with the script's name.
log() { printf '%s: %s\n' "${LOG_NAME:-$(basename "$0" .sh)}" "$*" >&2; }

# Logs an error and exits 1.
die() {
  log "ERROR: $*"
  exit 1
}

# Whether the virtualenv at $1 has a working python.
venv_ok() {
  [ -x "$1/bin/python" ] && "$1/bin/python" -c 'import sys' >/dev/null 2>&1
}

# Creates the virtualenv $1 unless it already works. On a Debian machine
# without python3-venv, installs it when root (else says how).
ensure_venv() {
  local venv=$1 py
  if venv_ok "$venv"; then return; fi
  rm -rf "$venv"
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
  log "creating venv $venv ($("$py" --version 2>&1))"
  "$py" -m venv "$venv" || die "python3 -m venv $venv failed"
}

# pip of the virtualenv $1, quiet about its own version: venv_pip VENV ARGS...
venv_pip() {
  local venv=$1
  shift
  "$venv/bin/python" -m pip --disable-pip-version-check "$@"
}

# Stops process $1: TERM, up to 10 s to exit, then KILL. Returns when gone.
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      return 0
    fi
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Waits for the `listening on http://ADDR` line our binaries print into FILE
# and prints ADDR: listening_addr FILE PID NAME [ERRFILE]. Dies (showing the
# end of ERRFILE, when given) if PID exits first or after 30 s.
listening_addr() {
  local file=$1 pid=$2 name=$3 err=${4:-}
  for _ in $(seq 1 300); do
    if grep -q '^listening on http://' "$file" 2>/dev/null; then
      sed -n 's#^listening on http://\([^/[:space:]]*\).*#\1#p' "$file" | head -n 1
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      [ -z "$err" ] || tail -n 30 "$err" >&2 || true
      die "$name exited before listening"
    fi
    sleep 0.1
  done
  die "$name did not start listening within 30 s"
}

# Raises the soft open-files limit as far as the hard limit allows (65,536
# when unlimited); prints the limit in force.
raise_nofile() {
  local hard
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ]; then
    ulimit -n 65536 2>/dev/null || true
  else
    ulimit -n "$hard" 2>/dev/null || true
  fi
  ulimit -n
}

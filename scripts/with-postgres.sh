#!/usr/bin/env bash
# Runs a command with throwaway PostgreSQL clusters on 127.0.0.1:
#   scripts/with-postgres.sh make test
# exports TEST_DATABASE_URL (Debian's PostgreSQL, no pgvector) and
# CONFAB_REQUIRE_POSTGRES=1, so the PostgreSQL suite cannot be skipped;
# also starts a second server WITH pgvector (scripts/pgvector-cluster.sh,
# cached under ${CONFAB_CACHE:-$HOME/.cache/confab}/pgvector) and exports
# TEST_PGVECTOR_URL. If that server cannot be installed or started, a loud
# warning is printed and TEST_PGVECTOR_URL stays unset, unless
# CONFAB_REQUIRE_PGVECTOR=1, which makes it fatal. Stops and removes both
# clusters on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
dir=$(mktemp -d /tmp/confab-pg.XXXXXX)
vdir=
cleanup() {
  "$here/pg-test-cluster.sh" stop "$dir" || true
  rm -rf "$dir"
  if [ -n "$vdir" ]; then
    "$here/pgvector-cluster.sh" stop "$vdir" || true
    rm -rf "$vdir"
  fi
}
trap cleanup EXIT INT TERM

url=$("$here/pg-test-cluster.sh" start "$dir" "$port")
echo "with-postgres: PostgreSQL ready at $url"
export TEST_DATABASE_URL="$url"
export CONFAB_REQUIRE_POSTGRES=1

pgvector_unavailable() {
  if [ "${CONFAB_REQUIRE_PGVECTOR:-0}" = 1 ]; then
    echo "with-postgres: ERROR: $* and CONFAB_REQUIRE_PGVECTOR=1" >&2
    exit 1
  fi
  {
    echo "######################################################################"
    echo "with-postgres: WARNING: $*:"
    echo "with-postgres: WARNING: TEST_PGVECTOR_URL is NOT set; the pgvector"
    echo "with-postgres: WARNING: tests will be skipped (CONFAB_REQUIRE_PGVECTOR=1 makes this fatal)"
    echo "######################################################################"
  } >&2
}

if ! "$here/pgvector-cluster.sh" install; then
  pgvector_unavailable "scripts/pgvector-cluster.sh install failed"
else
  vdir=$(mktemp -d /tmp/confab-pgvector.XXXXXX)
  if vurl=$("$here/pgvector-cluster.sh" start "$vdir"); then
    echo "with-postgres: PostgreSQL with pgvector ready at $vurl"
    export TEST_PGVECTOR_URL="$vurl"
  else
    pgvector_unavailable "the pgvector PostgreSQL server did not start"
  fi
fi

"$@"

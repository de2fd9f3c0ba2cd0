#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster on 127.0.0.1:
#   scripts/with-postgres.sh make test
# exports TEST_DATABASE_URL (and CONFAB_REQUIRE_POSTGRES=1, so the
# PostgreSQL suite cannot be skipped), then stops and removes the cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
dir=$(mktemp -d /tmp/confab-pg.XXXXXX)
cleanup() {
  "$here/pg-test-cluster.sh" stop "$dir" || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

url=$("$here/pg-test-cluster.sh" start "$dir" "$port")
echo "with-postgres: PostgreSQL ready at $url"
export TEST_DATABASE_URL="$url"
export CONFAB_REQUIRE_POSTGRES=1
"$@"

#!/usr/bin/env bash
# Runs a command with a throwaway redis-server on 127.0.0.1:
#   scripts/with-redis.sh cargo test -p api-gateway --test redis
# exports TEST_REDIS_URL and CONFAB_REQUIRE_REDIS=1 (so the Redis tests
# cannot be skipped); stops and removes the server on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
dir=$(mktemp -d /tmp/confab-redis.XXXXXX)
cleanup() {
  "$here/redis.sh" stop "$dir" || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

url=$("$here/redis.sh" start "$dir" "$port")
echo "with-redis: Redis ready at $url"
export TEST_REDIS_URL="$url"
export CONFAB_REQUIRE_REDIS=1

"$@"

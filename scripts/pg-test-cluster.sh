#!/usr/bin/env bash
# Throwaway PostgreSQL cluster on 127.0.0.1 for tests.
#   scripts/pg-test-cluster.sh start DIR [PORT]   -> prints the TEST_DATABASE_URL
#   scripts/pg-test-cluster.sh stop DIR
# Runs the server as the `postgres` system user when invoked as root.
set -euo pipefail

cmd=${1:?usage: $0 start|stop DIR [PORT]}
dir=${2:?usage: $0 start|stop DIR [PORT]}
port=${3:-55432}

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "pg-test-cluster: no PostgreSQL server binaries found (apt-get install postgresql)" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    as_pg "'$bindir/initdb' -D '$dir/data' -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >'$dir/initdb.log' 2>&1"
    as_pg "'$bindir/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 60 \
      -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off \
          -c synchronous_commit=off -c full_page_writes=off -c max_connections=300\" start >/dev/null"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_pg "'$bindir/pg_ctl' -D '$dir/data' -m fast -w stop >/dev/null" || true
    fi
    ;;
  *)
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Throwaway redis-server on 127.0.0.1 for tests (no persistence).
#   scripts/redis.sh start DIR [PORT]   -> prints the TEST_REDIS_URL
#   scripts/redis.sh stop DIR
# Needs Debian's redis-server (apt-get install -y redis-server).
set -euo pipefail

cmd=${1:?usage: $0 start|stop DIR [PORT]}
dir=${2:?usage: $0 start|stop DIR [PORT]}
port=${3:-56379}

case "$cmd" in
  start)
    if ! command -v redis-server >/dev/null; then
      echo "redis.sh: redis-server not found (apt-get install -y redis-server)" >&2
      exit 1
    fi
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    for _ in $(seq 1 100); do
      if python3 - "$port" <<'PY' 2>/dev/null; then
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
PY
        echo "redis://127.0.0.1:$port/"
        exit 0
      fi
      sleep 0.1
    done
    echo "redis.sh: redis-server did not answer on port $port (see $dir/redis.log)" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/redis.pid" ]; then
      pid=$(cat "$dir/redis.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      rm -f "$dir/redis.pid"
    fi
    ;;
  *)
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac

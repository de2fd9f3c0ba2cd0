#!/usr/bin/env bash
# The docker compose stack (docker/compose.yml) without Docker: PostgreSQL
# with pgvector (scripts/pgvector-cluster.sh), redis-server, two chat-service
# replicas and api-gateway as separate processes on 127.0.0.1, with the SAME
# commands, settings (docker/stack.env) and healthchecks as the compose
# services; only the addresses differ (127.0.0.1 and the ports below instead
# of the compose service names). CI's end-to-end test drives it
# (bins/api-gateway/tests/stack_native.rs), so the compose wiring is exercised.
#
#   scripts/stack-native.sh start DIR          start everything in the background; prints the gateway URL
#   scripts/stack-native.sh stop DIR           stop everything (idempotent)
#   scripts/stack-native.sh status DIR         one line per service: running/stopped, pid, port
#   scripts/stack-native.sh kill SERVICE DIR   SIGKILL one service (chat-service-1, chat-service-2, api-gateway)
#   scripts/stack-native.sh restart SERVICE DIR  (re)start one service and wait until it is healthy
#   scripts/stack-native.sh run DIR            start, then wait in the foreground; Ctrl-C stops everything (make stack-native)
#   scripts/stack-native.sh check              docker/compose.yml, docker/Dockerfile and this script agree
#
# Environment: BIN_DIR (default target/release) holds chat-service and
# api-gateway; STACK_PG_PORT (54330), STACK_REDIS_PORT (56379),
# STACK_GATEWAY_PORT (8010), STACK_CHAT_PORTS ("8011 8012") (the defaults do
# not clash with make run's 8000/8001); STACK_ENV_FILE (default .env when it
# exists) supplies POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB, JWT_SECRET,
# AGENT_RUNTIME__INTERNAL_API_KEY, REDIS_PASSWORD and METRICS_TOKEN like
# compose's --env-file (real environment variables win; missing secrets are
# generated once into DIR/secrets/; METRICS_TOKEN stays unset when not given).
# Redis requires REDIS_PASSWORD, as in compose.
# STACK_LOG_LEVEL, when set, replaces stack.env's LOG_LEVEL for every service
# (e.g. "info,chat_service=debug" to see each answer's lines).
# DIR holds pg/ (the cluster), redis/, <service>/ (working directories), run/
# (pid files) and logs/ (<service>.log = stderr, <service>.out = stdout).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK_ENV=$ROOT/docker/stack.env
SERVICES=(chat-service-1 chat-service-2 api-gateway)

PG_PORT=${STACK_PG_PORT:-54330}
REDIS_PORT=${STACK_REDIS_PORT:-56379}
GATEWAY_PORT=${STACK_GATEWAY_PORT:-8010}
read -r CHAT_PORT_1 CHAT_PORT_2 <<<"${STACK_CHAT_PORTS:-8011 8012}"

log() { echo "stack-native: $*" >&2; }
die() { echo "stack-native: ERROR: $*" >&2; exit 1; }
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

# The healthchecks of docker/Dockerfile and docker/compose.yml, on 127.0.0.1.
health_path() { case "$1" in api-gateway) echo /api/health ;; *) echo /health ;; esac; }
healthcheck() { # SERVICE PORT
  curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:$2$(health_path "$1")"
}
port_of() {
  case "$1" in
    chat-service-1) echo "$CHAT_PORT_1" ;;
    chat-service-2) echo "$CHAT_PORT_2" ;;
    api-gateway) echo "$GATEWAY_PORT" ;;
    *) die "unknown service $1 (one of: ${SERVICES[*]})" ;;
  esac
}
binary_of() { case "$1" in chat-service-*) echo chat-service ;; *) echo "$1" ;; esac; }

bin_dir() {
  local b=${BIN_DIR:-$ROOT/target/release}
  case "$b" in /*) ;; *) b=$ROOT/$b ;; esac
  [ -x "$b/chat-service" ] && [ -x "$b/api-gateway" ] \
    || die "no chat-service/api-gateway binaries in $b (cargo build --release -p chat-service -p api-gateway, or set BIN_DIR)"
  echo "$b"
}

# KEY from the environment, else from the env file, else $2.
setting() { # KEY DEFAULT
  local key=$1 def=$2 file=${STACK_ENV_FILE:-} v
  if [ -n "${!key:-}" ]; then echo "${!key}"; return; fi
  [ -n "$file" ] || { [ -f "$ROOT/.env" ] && file=$ROOT/.env; }
  if [ -n "$file" ] && [ -f "$file" ]; then
    v=$(sed -n "s/^[[:space:]]*$key=//p" "$file" | tail -n 1)
    v=${v%\"}; v=${v#\"}; v=${v%\'}; v=${v#\'}
    if [ -n "$v" ]; then echo "$v"; return; fi
  fi
  echo "$def"
}

# A secret: setting, else generated once into DIR/secrets/NAME.
secret() { # DIR KEY
  local v
  v=$(setting "$2" '')
  if [ -z "$v" ]; then
    mkdir -p "$1/secrets"
    [ -s "$1/secrets/$2" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1/secrets/$2")
    v=$(cat "$1/secrets/$2")
  fi
  echo "$v"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The environment of a service: docker/stack.env, then the compose
# `environment:` entries with 127.0.0.1 addresses. Prints KEY=VALUE lines.
service_env() { # DIR SERVICE
  local dir=$1 svc=$2 user pass db
  user=$(setting POSTGRES_USER confab)
  pass=$(setting POSTGRES_PASSWORD confab)
  db=$(setting POSTGRES_DB confab)
  grep -E '^[A-Z_][A-Z0-9_]*=' "$STACK_ENV"
  # Later entries win in `env -i`.
  if [ -n "${STACK_LOG_LEVEL:-}" ]; then echo "LOG_LEVEL=$STACK_LOG_LEVEL"; fi
  echo "DATABASE_URL=postgres://$user:$pass@127.0.0.1:$PG_PORT/$db"
  echo "AGENT_RUNTIME__INTERNAL_API_KEY=$(secret "$dir" AGENT_RUNTIME__INTERNAL_API_KEY)"
  echo "CHAT_SERVICE_URLS=http://127.0.0.1:$CHAT_PORT_1,http://127.0.0.1:$CHAT_PORT_2"
  echo "REDIS_URL=redis://:$(secret "$dir" REDIS_PASSWORD)@127.0.0.1:$REDIS_PORT"
  local metrics_token
  metrics_token=$(setting METRICS_TOKEN '')
  if [ -n "$metrics_token" ]; then echo "METRICS_TOKEN=$metrics_token"; fi
  # The image's ENV (docker/Dockerfile runtime stage), with /app = DIR/SERVICE.
  echo "JWT_SECRET_FILE=$dir/$svc/data/jwt_secret"
  case "$svc" in
    chat-service-1) echo "CHAT_SERVICE_BIND=127.0.0.1:$CHAT_PORT_1" ;;
    chat-service-2) echo "CHAT_SERVICE_BIND=127.0.0.1:$CHAT_PORT_2" ;;
    api-gateway)
      echo "GATEWAY_BIND=127.0.0.1:$GATEWAY_PORT"
      echo "JWT_SECRET=$(secret "$dir" JWT_SECRET)"
      ;;
  esac
}

# Starts SERVICE in the background (a clean environment, like a container).
spawn() { # DIR SERVICE
  local dir=$1 svc=$2 b envs=()
  b=$(bin_dir)
  pid_alive "$dir/run/$svc.pid" && { log "$svc already running (pid $(cat "$dir/run/$svc.pid"))"; return 0; }
  mkdir -p "$dir/$svc/data" "$dir/run" "$dir/logs"
  mapfile -t envs < <(service_env "$dir" "$svc")
  (
    cd "$dir/$svc"
    exec setsid env -i PATH="$PATH" HOME="$dir/$svc" "${envs[@]}" "$b/$(binary_of "$svc")" \
      >>"$dir/logs/$svc.out" 2>>"$dir/logs/$svc.log" </dev/null
  ) &
  echo $! >"$dir/run/$svc.pid"
}

wait_healthy() { # DIR SERVICE
  local dir=$1 svc=$2 port i
  port=$(port_of "$svc")
  for i in $(seq 1 300); do
    if healthcheck "$svc" "$port" 2>/dev/null; then return 0; fi
    if ! pid_alive "$dir/run/$svc.pid"; then
      log "$svc exited; the end of its log:"
      tail -n 20 "$dir/logs/$svc.log" >&2 || true
      return 1
    fi
    [ "$i" = 150 ] && log "still waiting for $svc on port $port..."
    sleep 0.2
  done
  log "$svc not healthy after 60 s; the end of its log:"
  tail -n 20 "$dir/logs/$svc.log" >&2 || true
  return 1
}

as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
q() { printf '%q' "$1"; }

start_postgres() { # DIR
  local dir=$1 b user pass db psql
  user=$(setting POSTGRES_USER confab)
  pass=$(setting POSTGRES_PASSWORD confab)
  db=$(setting POSTGRES_DB confab)
  if [ -d "$dir/pg/data" ]; then
    b=$(cat "$dir/pg/bindir")
    if ! as_pg "$(q "$b/pg_ctl") -D $(q "$dir/pg/data") status >/dev/null 2>&1"; then
      as_pg "env -u PGDATA -u PGPORT -u PGHOST LANG=C.UTF-8 $(q "$b/pg_ctl") -D $(q "$dir/pg/data") -l $(q "$dir/pg/server.log") -w -t 60 \
        -o \"-c listen_addresses=127.0.0.1 -p $PG_PORT -k $(q "$dir/pg") -c max_connections=300\" start >/dev/null" \
        || { tail -n 20 "$dir/pg/server.log" >&2; die "PostgreSQL did not start (log: $dir/pg/server.log)"; }
    fi
  else
    "$ROOT/scripts/pgvector-cluster.sh" install >"$dir/logs/pgvector-install.log" 2>&1 \
      || { tail -n 20 "$dir/logs/pgvector-install.log" >&2; die "scripts/pgvector-cluster.sh install failed"; }
    mkdir -p "$dir/pg"
    "$ROOT/scripts/pgvector-cluster.sh" start "$dir/pg" "$PG_PORT" >/dev/null
    b=$(cat "$dir/pg/bindir")
    # What the pgvector image does with POSTGRES_USER/PASSWORD/DB: a superuser and its database.
    psql=(env -u PGOPTIONS -u PGSERVICE "$b/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
    if [ "$user" != postgres ]; then
      "${psql[@]}" -c "CREATE ROLE \"$user\" SUPERUSER LOGIN PASSWORD '${pass//\'/\'\'}'" >/dev/null
    fi
    [ "$db" = postgres ] || "${psql[@]}" -c "CREATE DATABASE \"$db\" OWNER \"$user\"" >/dev/null
  fi
  # compose's healthcheck: pg_isready.
  if [ -x "$b/pg_isready" ]; then
    "$b/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U "$user" -d "$db" || die "pg_isready failed on port $PG_PORT"
  fi
}

start_redis() { # DIR
  local dir=$1 i pass
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  pid_alive "$dir/run/redis.pid" && return 0
  mkdir -p "$dir/redis" "$dir/run" "$dir/logs"
  pass=$(secret "$dir" REDIS_PASSWORD)
  # The password goes in through a config file (mode 0600), not the command line.
  (umask 077; printf 'requirepass %s\n' "$pass" >"$dir/redis/redis.conf")
  (
    cd "$dir/redis"
    exec setsid redis-server "$dir/redis/redis.conf" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir/redis" \
      --save '' --appendonly no --daemonize no >>"$dir/logs/redis.log" 2>&1 </dev/null
  ) &
  echo $! >"$dir/run/redis.pid"
  # compose's healthcheck: redis-cli ping (authenticated through REDISCLI_AUTH).
  for i in $(seq 1 100); do
    [ "$(REDISCLI_AUTH=$pass redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
    pid_alive "$dir/run/redis.pid" || break
    sleep 0.1
  done
  tail -n 20 "$dir/logs/redis.log" >&2 || true
  die "redis-server did not answer PING on port $REDIS_PORT"
}

do_start() { # DIR
  local dir=${1:?usage: $0 start DIR} t0=$SECONDS
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  bin_dir >/dev/null
  command -v curl >/dev/null || die "curl not found (the healthchecks use it)"
  mkdir -p "$dir/logs" "$dir/run"
  start_postgres "$dir"
  start_redis "$dir"
  # Both replicas at the same moment (as compose does): concurrent migrations on a fresh database.
  spawn "$dir" chat-service-1
  spawn "$dir" chat-service-2
  wait_healthy "$dir" chat-service-1 || { do_stop "$dir"; die "chat-service-1 did not start"; }
  wait_healthy "$dir" chat-service-2 || { do_stop "$dir"; die "chat-service-2 did not start"; }
  spawn "$dir" api-gateway
  wait_healthy "$dir" api-gateway || { do_stop "$dir"; die "api-gateway did not start"; }
  log "up in $((SECONDS - t0)) s: gateway http://127.0.0.1:$GATEWAY_PORT, chat-service :$CHAT_PORT_1 :$CHAT_PORT_2, PostgreSQL :$PG_PORT, Redis :$REDIS_PORT (logs in $dir/logs)"
  echo "http://127.0.0.1:$GATEWAY_PORT"
}

stop_pidfile() { # PIDFILE [SIGNAL]
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"${2:-TERM}" "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid ignored SIGTERM for 15 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

do_stop() { # DIR
  local dir=${1:?usage: $0 stop DIR}
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  stop_pidfile "$dir/run/api-gateway.pid"
  local w1 w2
  stop_pidfile "$dir/run/chat-service-1.pid" & w1=$!
  stop_pidfile "$dir/run/chat-service-2.pid" & w2=$!
  wait "$w1" "$w2" || true
  stop_pidfile "$dir/run/redis.pid"
  if [ -d "$dir/pg/data" ]; then "$ROOT/scripts/pgvector-cluster.sh" stop "$dir/pg"; fi
}

do_status() { # DIR
  local dir=${1:?usage: $0 status DIR} s state rc=0
  for s in redis "${SERVICES[@]}"; do
    if pid_alive "$dir/run/$s.pid"; then state="running pid $(cat "$dir/run/$s.pid")"; else state=stopped; rc=1; fi
    echo "$s: $state"
  done
  if [ -f "$dir/pg/data/postmaster.pid" ] && kill -0 "$(head -n 1 "$dir/pg/data/postmaster.pid")" 2>/dev/null; then
    echo "postgres: running pid $(head -n 1 "$dir/pg/data/postmaster.pid") port $PG_PORT"
  else
    echo "postgres: stopped"; rc=1
  fi
  return "$rc"
}

do_kill() { # SERVICE DIR
  local svc=${1:?usage: $0 kill SERVICE DIR} dir=${2:?usage: $0 kill SERVICE DIR} pid
  port_of "$svc" >/dev/null
  [ -f "$dir/run/$svc.pid" ] || return 0
  pid=$(cat "$dir/run/$svc.pid")
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$dir/run/$svc.pid"
}

do_restart() { # SERVICE DIR
  local svc=${1:?usage: $0 restart SERVICE DIR} dir=${2:?usage: $0 restart SERVICE DIR}
  port_of "$svc" >/dev/null
  dir=$(cd "$dir" && pwd)
  stop_pidfile "$dir/run/$svc.pid"
  spawn "$dir" "$svc"
  wait_healthy "$dir" "$svc" || die "$svc did not come back"
  log "$svc restarted (pid $(cat "$dir/run/$svc.pid"))"
}

do_run() { # DIR
  local dir=${1:?usage: $0 run DIR} url s
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  trap 'trap - INT TERM EXIT; echo; log "stopping..."; do_stop "$dir"; log stopped; exit 0' INT TERM EXIT
  url=$(do_start "$dir")
  cat <<EOT

confab native stack is running (the compose stack's processes on 127.0.0.1; data and logs in $dir)
  API        $url   (docs $url/docs/)
  WebSocket  ${url/http:/ws:}/ws/chat
  replicas   http://127.0.0.1:$CHAT_PORT_1  http://127.0.0.1:$CHAT_PORT_2
  PostgreSQL postgres://$(setting POSTGRES_USER confab)@127.0.0.1:$PG_PORT/$(setting POSTGRES_DB confab)
  Redis      redis://127.0.0.1:$REDIS_PORT (password in $dir/secrets/REDIS_PASSWORD unless given)
Ctrl-C stops everything.
EOT
  while :; do
    for s in redis "${SERVICES[@]}"; do
      pid_alive "$dir/run/$s.pid" || { log "$s exited (see $dir/logs/$s.log)"; exit 1; }
    done
    sleep 1
  done
}

# docker/compose.yml, docker/Dockerfile and this script agree: the same
# binaries, env file, healthchecks; the YAML parses (python3 + PyYAML when
# present) and `docker compose config` accepts it (when Docker Compose is present).
do_check() {
  local compose=$ROOT/docker/compose.yml df=$ROOT/docker/Dockerfile s p bad=0
  for s in "${SERVICES[@]}"; do
    p=$(health_path "$s")
    grep -qF "\"http://127.0.0.1:$(case $s in api-gateway) echo 8000 ;; *) echo 8001 ;; esac)$p\"" "$compose" \
      || { log "compose.yml: no healthcheck on $p for $s"; bad=1; }
    grep -qF "$p\"]" "$df" || { log "Dockerfile: no HEALTHCHECK on $p"; bad=1; }
    grep -qF "command: [\"$(binary_of "$s")\"]" "$compose" || { log "compose.yml: no command [\"$(binary_of "$s")\"]"; bad=1; }
  done
  grep -qF 'env_file: [stack.env]' "$compose" || { log "compose.yml: services do not read stack.env"; bad=1; }
  if grep -vE '^(#.*|[A-Z_][A-Z0-9_]*=[^"'"'"'$]*|)$' "$ROOT/docker/stack.env"; then
    log "docker/stack.env: only plain KEY=VALUE lines (no quotes or \$)"; bad=1
  fi
  if python3 -c 'import yaml' 2>/dev/null; then
    python3 - "$compose" <<'EOF' || bad=1
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
svc = doc["services"]
need = {"postgres", "redis", "chat-service-1", "chat-service-2", "api-gateway", "ollama"}
missing = need - set(svc)
assert not missing, f"missing services: {missing}"
assert svc["ollama"].get("profiles") == ["ollama"], "ollama must be under the ollama profile"
for name in ("chat-service-1", "chat-service-2"):
    s = svc[name]
    assert s["build"]["target"] == "chat-service", name
    assert s["depends_on"]["postgres"]["condition"] == "service_healthy", name
    assert "DATABASE_URL" in s["environment"] and "AGENT_RUNTIME__INTERNAL_API_KEY" in s["environment"], name
gw = svc["api-gateway"]
for dep in ("postgres", "redis", "chat-service-1", "chat-service-2"):
    assert gw["depends_on"][dep]["condition"] == "service_healthy", dep
assert "JWT_SECRET" in gw["environment"], "gateway JWT_SECRET"
# Only the gateway on every interface; Redis behind a password.
for name in ("postgres", "redis", "ollama"):
    for port in svc[name].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
assert "--requirepass" in svc["redis"]["command"], "redis requires a password"
assert "REDIS_PASSWORD" in svc["redis"]["environment"]["REDISCLI_AUTH"], "redis healthcheck authenticates"
for name in ("chat-service-1", "chat-service-2", "api-gateway"):
    url = svc[name]["environment"]["REDIS_URL"]
    assert url.startswith("redis://:${REDIS_PASSWORD"), f"{name} REDIS_URL carries the password: {url}"
urls = [l.split("=", 1)[1] for l in open(sys.argv[1].replace("compose.yml", "stack.env")) if l.startswith("CHAT_SERVICE_URLS=")]
assert urls and all(f"http://{n}:8001" in urls[0] for n in ("chat-service-1", "chat-service-2")), "CHAT_SERVICE_URLS lists both replicas"
print("stack-native: compose.yml parses; services, profiles, healthchecks and dependencies as expected", file=sys.stderr)
EOF
  else
    log "note: python3 PyYAML not found: compose.yml structure not checked (apt-get install python3-yaml)"
  fi
  if docker compose version >/dev/null 2>&1; then
    POSTGRES_PASSWORD=x JWT_SECRET=x AGENT_RUNTIME__INTERNAL_API_KEY=x REDIS_PASSWORD=x \
      docker compose -f "$compose" config -q || bad=1
  else
    log "note: docker compose not available: 'docker compose config' skipped"
  fi
  [ "$bad" = 0 ] || die "check failed"
  log "check ok"
}

case "${1:-}" in
  start) shift; do_start "$@" ;;
  stop) shift; do_stop "$@" ;;
  status) shift; do_status "$@" ;;
  kill) shift; do_kill "$@" ;;
  restart) shift; do_restart "$@" ;;
  run) shift; do_run "$@" ;;
  check) do_check ;;
  *) usage ;;
esac

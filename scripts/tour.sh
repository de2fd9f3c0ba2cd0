#!/usr/bin/env bash
# The README's 60-second tour, run as a test.
#
#   scripts/tour.sh          run the tour against servers that are already
#                            running (make run in another terminal)
#   scripts/tour.sh --run    (make tour) start `make run` on a scratch data
#                            dir, run the tour, press Ctrl-C (SIGINT to the
#                            process group), check both services exit 0
#                            within a few seconds, start `make run` again and
#                            check the data was reused (login works, the
#                            tour's session is still there with its messages)
#
# The commands are taken from README.md, between `<!-- tour:begin -->` and
# `<!-- tour:end -->`: every ```sh block is one step, run in order in one
# shell (variables carry over). After a block, hidden lines check it:
#   <!-- tour:expect REGEX -->   the step's output (stdout+stderr) matches REGEX (grep -E)
#   <!-- tour:check COMMAND -->  COMMAND succeeds (run in the tour's shell)
# A step fails when a command in it fails (set -e, pipefail; the README's curl
# commands use --fail-with-body, so an HTTP error fails too) or a check fails;
# the tour stops at the first failure and prints that step's output.
#
# Env: TOUR_README (default README.md), TOUR_DATA_DIR (scratch dir for --run,
# default a fresh mktemp dir, removed on success), TOUR_START_TIMEOUT (seconds
# to wait for `make run`, default 1800: the first release build is slow),
# TOUR_STOP_TIMEOUT (seconds both services get to exit after Ctrl-C, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

README=${TOUR_README:-README.md}
API_URL=http://127.0.0.1:8000

say() { echo "tour: $*"; }
die() {
  echo "tour: FAIL: $*" >&2
  exit 1
}

# Writes the tour of $README as a bash script to stdout.
extract() {
  python3 - "$README" <<'PY'
import re, shlex, sys

text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"<!-- tour:begin -->(.*?)<!-- tour:end -->", text, re.S)
if not m:
    sys.exit(f"{sys.argv[1]}: no <!-- tour:begin --> ... <!-- tour:end --> section")
steps = []  # [title, code, [checks]]
lines = m.group(1).split("\n")
i = 0
prose = ""
while i < len(lines):
    line = lines[i]
    if line.strip() and not line.lstrip().startswith(("<!--", "```")) and not lines[i - 1].strip():
        prose = line.strip().rstrip(":")  # the first line of a paragraph
    if line.strip() in ("```sh", "```bash", "```shell"):
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if j == len(lines):
            sys.exit("unterminated code block in the tour")
        code = "\n".join(lines[i + 1 : j])
        title = prose or next((l.strip() for l in lines[i + 1 : j] if l.strip()), "?")
        prose = ""
        steps.append([title, code, []])
        i = j + 1
        continue
    c = re.match(r"\s*<!-- tour:(expect|check) (.*?) -->\s*$", line)
    if c:
        if not steps:
            sys.exit(f"tour:{c.group(1)} before the first code block: {line}")
        steps[-1][2].append((c.group(1), c.group(2)))
    i += 1
if not steps:
    sys.exit("the tour section has no ```sh blocks")

out = [
    "set -euo pipefail",
    "exec 3>&2  # the real stderr: a failing step exits with its output redirected",
    f"TOUR_STEPS={len(steps)}",
    'tour_fail() { echo "tour: FAIL: step $TOUR_STEP/$TOUR_STEPS ($TOUR_TITLE): $1" >&2; TOUR_FAILED=1; exit 1; }',
    "tour_exit() {",
    '  local rc=$?',
    '  if [ "$rc" != 0 ] && [ -n "${TOUR_STEP:-}" ] && [ -z "${TOUR_FAILED:-}" ]; then',
    '    echo "tour: FAIL: step $TOUR_STEP/$TOUR_STEPS ($TOUR_TITLE) exited $rc; its output:" >&3',
    '    awk \'{ print "    " $0 }\' "$TOUR_OUT" >&3 || true',
    "  fi",
    "}",
    "trap tour_exit EXIT",
]
for n, (title, code, checks) in enumerate(steps, 1):
    out.append(f"TOUR_STEP={n}; TOUR_TITLE={shlex.quote(title)}")
    out.append('echo "tour: step $TOUR_STEP/$TOUR_STEPS: $TOUR_TITLE"')
    out.append('TOUR_OUT="$TOUR_TMP/step$TOUR_STEP.out"')
    out.append("{\n" + code + "\n} > \"$TOUR_OUT\" 2>&1")
    out.append('awk \'{ print "    " $0 }\' "$TOUR_OUT"')
    for kind, arg in checks:
        if kind == "expect":
            out.append(
                f'grep -Eq -- {shlex.quote(arg)} "$TOUR_OUT" || '
                f'tour_fail {shlex.quote("output does not match: " + arg)}'
            )
        else:
            out.append(f"( {arg} ) || tour_fail {shlex.quote('check failed: ' + arg)}")
    if not checks:
        out.append('[ -s "$TOUR_OUT" ] || tour_fail "no output"')
out.append('echo "tour: all $TOUR_STEPS steps passed"')
out.append('printf "TOKEN=%q\\nSESSION=%q\\n" "${TOKEN:-}" "${SESSION:-}" > "$TOUR_TMP/vars"')
print("\n".join(out))
PY
}

# Runs the tour against the servers at $API_URL; leaves TOKEN and SESSION in
# $TOUR_TMP/vars for the reuse check.
run_tour() {
  local script=$TOUR_TMP/tour-script.sh
  extract > "$script"
  curl -sf -o /dev/null "$API_URL/livez" || die "no api-gateway at $API_URL (start it with make run)"
  TOUR_TMP=$TOUR_TMP bash "$script"
}

if [ "${1:-}" != "--run" ]; then
  TOUR_TMP=$(mktemp -d)
  trap 'rm -rf "$TOUR_TMP"' EXIT
  run_tour
  exit 0
fi

# --- make tour: make run, tour, Ctrl-C, make run again -------------------
TOUR_TMP=$(mktemp -d)
DATA=${TOUR_DATA_DIR:-$TOUR_TMP/data}
START_TIMEOUT=${TOUR_START_TIMEOUT:-1800}
STOP_TIMEOUT=${TOUR_STOP_TIMEOUT:-10}
run_pid=
cleanup() {
  local rc=$?
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2> /dev/null; then
    kill -INT -- "-$run_pid" 2> /dev/null || true
    sleep 3
    kill -KILL -- "-$run_pid" 2> /dev/null || true
  fi
  if [ $rc = 0 ]; then
    rm -rf "$TOUR_TMP"
  else
    echo "tour: kept $TOUR_TMP (make run output in run*.out, service logs in $DATA/logs/)" >&2
  fi
}
trap cleanup EXIT

for port in 8000 8001; do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
    die "something already listens on 127.0.0.1:$port (a make run?); stop it first"
  fi
done

# Starts `make run` in its own process group (as a terminal would run it), so
# SIGINT to the group is exactly what Ctrl-C does; waits until it is ready.
start_run() {
  local out=$1 waited=0
  # Job control on: the background job gets its own process group and keeps
  # SIGINT (a non-interactive shell would start it with SIGINT ignored).
  set -m
  CONFAB_DATA_DIR="$DATA" make --no-print-directory run > "$out" 2>&1 < /dev/null &
  run_pid=$!
  set +m
  while ! grep -q "^confab is running" "$out" 2> /dev/null; do
    if ! kill -0 "$run_pid" 2> /dev/null; then
      tail -30 "$out" >&2
      die "make run exited before it was ready"
    fi
    [ "$waited" -lt "$((START_TIMEOUT * 2))" ] || die "make run not ready after ${START_TIMEOUT}s"
    sleep 0.5
    waited=$((waited + 1))
  done
  say "make run is ready ($(grep -c . "$out") lines of output, data in $DATA)"
}

# Ctrl-C: SIGINT to make run's process group; both services must exit 0.
stop_run() {
  local out=$1 waited=0 rc
  kill -INT -- "-$run_pid"
  while kill -0 "$run_pid" 2> /dev/null; do
    [ "$waited" -lt "$((STOP_TIMEOUT * 10))" ] || die "make run still running ${STOP_TIMEOUT}s after Ctrl-C"
    sleep 0.1
    waited=$((waited + 1))
  done
  wait "$run_pid" && rc=0 || rc=$?
  run_pid=
  say "make run stopped $((waited / 10)).$((waited % 10))s after Ctrl-C (make exit status $rc)"
  for name in chat-service api-gateway; do
    grep -q "^confab: $name exited 0$" "$out" || {
      tail -20 "$out" >&2
      die "$name did not exit 0 after Ctrl-C"
    }
  done
  for port in 8000 8001; do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
      die "127.0.0.1:$port still answers after Ctrl-C"
    fi
  done
  say "both services exited 0 and their ports are closed"
}

say "starting make run on scratch data dir $DATA"
start_run "$TOUR_TMP/run1.out"
run_tour
stop_run "$TOUR_TMP/run1.out"

say "starting make run again on the same data dir"
start_run "$TOUR_TMP/run2.out"
# shellcheck disable=SC1091
source "$TOUR_TMP/vars"
[ -n "$SESSION" ] || die "the tour did not leave a SESSION variable"
email=$(sed -n 's/.*"email":"\([^"]*\)".*/\1/p' "$README" | head -1)
password=$(sed -n 's/.*"password":"\([^"]*\)".*/\1/p' "$README" | head -1)
login=$(curl -sS --fail-with-body -X POST "$API_URL/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\"}") || die "login after restart failed: $login"
TOKEN=$(python3 -c 'import sys, json; print(json.loads(sys.argv[1])["tokens"]["access_token"])' "$login")
sessions=$(curl -sS --fail-with-body "$API_URL/api/sessions" -H "Authorization: Bearer $TOKEN") ||
  die "listing sessions after restart failed: $sessions"
count=$(python3 -c '
import sys, json
items = [s for s in json.loads(sys.argv[1])["items"] if s["id"] == sys.argv[2]]
print(items[0]["message_count"] if items else "missing")' "$sessions" "$SESSION")
[ "$count" != missing ] || die "session $SESSION is gone after restart: $sessions"
[ "$count" -ge 4 ] || die "session $SESSION has $count messages after restart, expected 4"
say "after restart: login as $email works, session $SESSION still has its $count messages"
stop_run "$TOUR_TMP/run2.out"
say "PASS"

#!/usr/bin/env bash
# `make test`: runs the whole workspace's tests and ends with one summary
# line ("summary: N passed, N failed, N skipped") over every test binary and
# doctest run. Says plainly when the PostgreSQL suite was skipped.
set -uo pipefail
cargo=${CARGO:-cargo}

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  echo "NOTE: TEST_DATABASE_URL is not set: the PostgreSQL suite will be SKIPPED (SQLite only)."
  echo "      'make test-pg' starts a throwaway PostgreSQL and runs both."
fi

log=$(mktemp)
# Tests that return early for lack of a server or model append their name
# here (confab_testkit::skipped); they count as skipped, not passed.
skips=$(mktemp)
trap 'rm -f "$log" "$skips"' EXIT
CONFAB_SKIP_LOG="$skips" "$cargo" test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

read -r passed failed ignored < <(awk '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed;?/) p += $i
      if ($(i+1) ~ /^failed;?/) f += $i
      if ($(i+1) ~ /^ignored;?/) g += $i
    }
  }
  END { print p+0, f+0, g+0 }' "$log")

# A test body that returned early passed in libtest's count: move it.
skipped=$(cut -f1 "$skips" | sort -u | wc -l)
if [ "$skipped" -gt 0 ]; then
  echo "skipped test bodies (returned early, counted as skipped):"
  cut -f1,2 "$skips" | sort -u -t "$(printf '\t')" -k1,1 | sed 's/^/  /'
fi
passed=$((passed - skipped))
ignored=$((ignored + skipped))

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  echo "NOTE: the PostgreSQL suite was SKIPPED (TEST_DATABASE_URL not set)."
fi
echo "summary: $passed passed, $failed failed, $ignored skipped"
exit "$status"

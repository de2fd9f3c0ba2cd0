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
trap 'rm -f "$log"' EXIT
"$cargo" test --workspace "$@" 2>&1 | tee "$log"
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

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  echo "NOTE: the PostgreSQL suite was SKIPPED (TEST_DATABASE_URL not set)."
fi
echo "summary: $passed passed, $failed failed, $ignored skipped"
exit "$status"

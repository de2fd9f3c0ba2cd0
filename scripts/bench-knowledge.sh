#!/usr/bin/env bash
# Knowledge-base benchmark (issue 15): `make bench-knowledge`.
#
# Makes the mixed ingestion corpus once (Markdown, PDF, HTML, DOCX, text;
# BENCH_KB_MB megabytes of files, default 50) with scripts/make-bench-corpus.py
# in the PyPI venv of scripts/make-kb-fixtures.sh (reportlab, python-docx),
# under ${CONFAB_CACHE:-$HOME/.cache/confab}/bench-corpus-<MB>, then runs
# `cargo bench -p confab-rag --bench knowledge` on it (see the header of
# crates/rag/benches/knowledge.rs for what it measures and its settings).
# PostgreSQL and pgvector are measured too when TEST_DATABASE_URL /
# TEST_PGVECTOR_URL are set (scripts/with-postgres.sh sets both).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo=${CARGO:-cargo}
cache="${CONFAB_CACHE:-$HOME/.cache/confab}"
mb="${BENCH_KB_MB:-50}"
corpus="$cache/bench-corpus-$mb"

if [ ! -f "$corpus/.done" ]; then
  # The fixtures script installs the venv (and Debian tools) when missing;
  # its outputs go to a scratch folder.
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  "$root/scripts/make-kb-fixtures.sh" "$scratch" >/dev/null
  "$cache/kb-fixtures/bin/python" "$root/scripts/make-bench-corpus.py" "$corpus" "$mb"
  touch "$corpus/.done"
fi
cd "$root"
CONFAB_BENCH_CORPUS="$corpus" "$cargo" bench -p confab-rag --bench knowledge

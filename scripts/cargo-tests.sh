#!/usr/bin/env bash
# Runs the crate's tests with cargo-nextest when it is installed (a process per test,
# a clearer report), else with plain cargo test: the same targets and tests either way,
# so a machine without nextest runs every test too. CARGO_TESTS=cargo forces the
# fallback.
# Usage: scripts/cargo-tests.sh [--no-capture] CARGO-TEST-ARGS...
set -euo pipefail
capture=false
if [ "${1:-}" = --no-capture ]; then
  capture=true
  shift
fi
if [ "${CARGO_TESTS:-}" != cargo ] && cargo nextest --version >/dev/null 2>&1; then
  if $capture; then exec cargo nextest run "$@" --no-capture; fi
  exec cargo nextest run "$@"
fi
echo "cargo-nextest is not installed: running the same tests with cargo test" >&2
if $capture; then exec cargo test "$@" -- --nocapture; fi
exec cargo test "$@"

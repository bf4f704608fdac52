#!/usr/bin/env bash
# Runs every test: unit and integration tests (against emulators this script starts on
# its own ports and stops afterwards), then the template checks. Fails if any fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DYNAMODB_PORT=${TEST_DYNAMODB_PORT:-18000} MOTO_PORT=${TEST_MOTO_PORT:-15000}
trap 'scripts/emulators.sh stop test' EXIT
scripts/emulators.sh start test
eval "$(scripts/emulators.sh endpoints)"
scripts/cargo-tests.sh --locked --all-targets --no-fail-fast
# The HTTP binary linked with panic=abort, as release builds are (only the binary is
# rebuilt: crates built for unwinding link into an aborting binary), fed every crafted
# event that once aborted it, alone and under managed concurrency.
cargo rustc --locked --quiet --bin delete-images -- -C panic=abort
python3 scripts/crafted_events.py target/debug/delete-images
scripts/smoke-run.sh
if [ -f template.yaml ]; then
  make --no-print-directory lint-template
fi

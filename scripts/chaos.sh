#!/usr/bin/env bash
# make chaos: the wire-level fault run of tests/api/chaos.rs at length. Starts its own
# emulators (ports apart from make run and make test), prints each seed's summary
# line and the total, for deletes alone and with the trash (deletes and restores).
# Settings: CHAOS_REQUESTS (400), CHAOS_TRASH_PLANS (70: a delete and a restore
# each), CHAOS_SEEDS (11,12,13),
# CHAOS_RATE (0.35: the share of AWS calls faulted, 1 in 7 of them only delayed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DYNAMODB_PORT=${CHAOS_DYNAMODB_PORT:-18100} MOTO_PORT=${CHAOS_MOTO_PORT:-15100}
trap 'scripts/emulators.sh stop chaos' EXIT
scripts/emulators.sh start chaos
eval "$(scripts/emulators.sh endpoints)"
export CHAOS_REQUESTS=${CHAOS_REQUESTS:-400} CHAOS_TRASH_PLANS=${CHAOS_TRASH_PLANS:-70} CHAOS_SEEDS=${CHAOS_SEEDS:-11,12,13} CHAOS_RATE=${CHAOS_RATE:-0.35}
out=$(mktemp)
status=0
scripts/cargo-tests.sh --no-capture --locked --test api random_faults_lose_nothing >"$out" 2>&1 || status=$?
grep -E '^(chaos|  violation|  stuck|  replays)' "$out" || true
# A failure shows its cause, even when some run printed its line first.
[ "$status" = 0 ] || grep -E -A 3 'panicked|FAIL' "$out" | head -n 40
rm -f "$out"
exit $status

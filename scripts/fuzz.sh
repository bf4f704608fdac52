#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS each
# (default 600), starting from the committed corpus (fuzz/corpus/<target>, copied to
# .run/fuzz so new inputs do not land in git), and prints one line per target:
# executions, seconds, crashes. Crashing inputs are kept in fuzz/artifacts/<target>/;
# a crash fails the run. To keep an input as a regression case, copy it into
# fuzz/corpus/<target>/: `make test` replays that corpus.
# cargo-fuzz is installed pinned into .tools/cargo. libFuzzer's instrumentation needs
# unstable rustc flags: RUSTC_BOOTSTRAP=1 allows them on the stable toolchain.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-tools.sh fuzz
seconds=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-http_event bulk_input token}
export RUSTC_BOOTSTRAP=1
failed=0
for target in $targets; do
  work=.run/fuzz/$target
  mkdir -p "$work"
  cp -n fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
  log=$(mktemp)
  status=0
  (cd fuzz && ../.tools/cargo/bin/cargo-fuzz run --sanitizer none "$target" "../$work" -- \
      -max_total_time="$seconds" -print_final_stats=1 -timeout=10 >"$log" 2>&1) || status=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  crashes=$(find fuzz/artifacts/"$target" -type f 2>/dev/null | wc -l)
  echo "fuzz $target: $runs executions in ${seconds}s, $crashes crashes (exit $status)"
  if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
    failed=1
    tail -n 30 "$log" >&2
  fi
  rm -f "$log"
done
exit $failed

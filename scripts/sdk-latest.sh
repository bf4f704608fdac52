#!/usr/bin/env bash
# make sdk-latest: the equivalence tests of the hand-written AWS pieces (src/aws/: the
# client's bytes on the wire against the SDK's client's, retries, limits; the store
# adapters over it) run against the newest semver-compatible
# releases of the AWS SDK crates on the registry, in a copy of the committed tree, so
# that an SDK upgrade that breaks a piece is seen before it lands. Cargo.lock is left
# as committed. Prints the versions tried and one summary line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive HEAD | tar -x -C "$work"
cd "$work"
crates=$(cargo metadata --format-version 1 --locked 2>/dev/null \
  | python3 -c 'import json,sys; print(" ".join(sorted({p["name"] for p in json.load(sys.stdin)["packages"] if p["name"].startswith("aws-")})))')
before=$(grep -A1 -E '^name = "aws-(sdk-dynamodb|sdk-s3|smithy-runtime)"$' Cargo.lock | grep version | tr -d ' "' | tr '\n' ' ')
# shellcheck disable=SC2046
cargo update --quiet $(for c in $crates; do printf -- '-p %s ' "$c"; done)
after=$(grep -A1 -E '^name = "aws-(sdk-dynamodb|sdk-s3|smithy-runtime)"$' Cargo.lock | grep version | tr -d ' "' | tr '\n' ' ')
echo "sdk-latest: aws-sdk-dynamodb, aws-sdk-s3, aws-smithy-runtime: ${before}-> ${after}"
status=0
CARGO_TARGET_DIR="$root/target/sdk-latest" cargo test --quiet --lib -- aws:: store:: >"$work/log" 2>&1 || status=$?
grep -E '^test result' "$work/log" | sed 's/^/sdk-latest: /'
if [ "$status" != 0 ]; then
  grep -E 'panicked|FAILED|^error' "$work/log" | head -30 >&2
  echo "sdk-latest: the hand-written pieces disagree with the newest SDK (above)" >&2
fi
exit "$status"

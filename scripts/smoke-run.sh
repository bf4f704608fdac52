#!/usr/bin/env bash
# Checks that `make run` works end to end: starts scripts/run-local.sh on spare ports,
# runs the curl it prints, and expects 200 with the two demo ids. Stops what it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/py/bin:$PATH"   # cargo-lambda
out=$(mktemp)
export RUN_PORT=${SMOKE_PORT:-19000} RUN_NAME=smoke DYNAMODB_PORT=28000 MOTO_PORT=25000
unset AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_S3
setsid scripts/run-local.sh >"$out" 2>&1 &
pid=$!
cleanup() {
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  scripts/emulators.sh stop smoke
  rm -f "$out"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
  grep -q "^  curl " "$out" && (exec 3<>"/dev/tcp/127.0.0.1/$RUN_PORT") 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "make run exited early:" >&2; cat "$out" >&2; exit 1; }
  sleep 0.5
done
# The printed command, as a user would paste it, plus options to capture the answer.
command=$(sed -n '/^  curl /,/--data/p' "$out" | sed 's/\\$//' | tr -d '\n')
response=$(eval "$command -s --max-time 900 -w '\n%{http_code}'")
status=$(tail -n 1 <<<"$response")
body=$(tail -n 2 <<<"$response" | head -n 1)
expected='["dcd964c3-f54e-413c-ab2e-41c8608f5d16","7dca41d5-d76a-4ebb-9e00-dd13c13fc238"]'
if [ "$status" != 200 ] || [ "$body" != "$expected" ]; then
  echo "smoke: expected 200 $expected, got $status $body" >&2
  tail -n 20 "$out" >&2
  exit 1
fi
echo "smoke: make run's curl deleted the two demo images (200 $body)"

# Every fixture is accepted by `cargo lambda invoke` and answered by the function.
for fixture in events/*.json; do
  answer=$(cargo lambda invoke delete-images -A 127.0.0.1 -P "$RUN_PORT" --data-file "$fixture")
  code=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["statusCode"])' <<<"$answer")
  case "$fixture:$code" in
    *delete-one.json:404 | *bulk-delete.json:200) echo "smoke: $fixture -> $code" ;;
    *) echo "smoke: $fixture -> unexpected $code: $answer" >&2; exit 1 ;;
  esac
done

#!/usr/bin/env bash
# Checks that `make run` works end to end on spare ports:
#  1. the HTTP function: the curl it prints deletes the two demo images, every
#     fixture in events/ goes through `cargo lambda invoke`, and the function conforms
#     to openapi.yaml (scripts/api-conformance.sh, with a negative control);
#  2. the cleanup triggers (RUN_BIN=cleanup): every fixture in events/cleanup/;
#  3. the audit trigger (RUN_BIN=audit): events/audit/ onto the local bus, read back
#     with the command it prints.
# Stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/py/bin:$PATH"   # cargo-lambda
export RUN_PORT=${SMOKE_PORT:-19000} RUN_NAME=smoke DYNAMODB_PORT=28000 MOTO_PORT=25000
unset AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_SQS AWS_ENDPOINT_URL_EVENTBRIDGE CLEANUP_QUEUE_URL
out=$(mktemp)
pid=

start() { # start BIN: make run in the background, until it serves
  RUN_BIN=$1 setsid scripts/run-local.sh >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 1200); do
    grep -q "^Ctrl-C stops everything" "$out" && (exec 3<>"/dev/tcp/127.0.0.1/$RUN_PORT") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "make run exited early:" >&2; cat "$out" >&2; exit 1; }
    sleep 0.5
  done
  echo "make run did not come up:" >&2; cat "$out" >&2; exit 1
}
stop() {
  [ -n "$pid" ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  scripts/emulators.sh stop smoke
}
trap 'stop; rm -f "$out"' EXIT
invoke() { # invoke BIN FIXTURE: the function's answer as JSON
  cargo lambda invoke "$1" -A 127.0.0.1 -P "$RUN_PORT" --data-file "$2"
}
json() { python3 -c "import json,sys; print($1)" "${@:2}"; }

# With endpoints overridden, nothing may fall through to real AWS: a service left
# without a local endpoint stops the run (and the demo seeding) before any call.
refusal=$(AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:9 AWS_ENDPOINT_URL_S3=http://127.0.0.1:9 \
  RUN_BIN=cleanup scripts/run-local.sh 2>&1 >/dev/null) && { echo "smoke: make run ran without an SQS endpoint" >&2; exit 1; }
grep -q AWS_ENDPOINT_URL_SQS <<<"$refusal" || { echo "smoke: unexpected refusal: $refusal" >&2; exit 1; }
refusal=$(env -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_DYNAMODB .tools/py/bin/python scripts/seed_demo.py 2>&1) \
  && { echo "smoke: seed_demo.py ran without a DynamoDB endpoint" >&2; exit 1; }
grep -q AWS_ENDPOINT_URL_DYNAMODB <<<"$refusal" || { echo "smoke: unexpected refusal: $refusal" >&2; exit 1; }
echo "smoke: make run and seed_demo.py refuse to start without a local endpoint for each service"

export RUST_LOG=trace
start delete-images
# The printed commands, as a user would paste them (the TOKEN line first), plus
# options to capture each answer.
eval "$(grep -m 1 "^  TOKEN='" "$out")"
command=$(sed -n '/^  curl -i -X DELETE .*images \\$/,/--data/p' "$out" | sed 's/\\$//' | tr -d '\n')
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
# The trash curls: both images listed, then one restored, and listed no more.
listing=$(grep -m 1 '^  curl -i http.*trashed_images ' "$out")
restore=$(grep -m 1 '^  curl -i -X DELETE http.*trashed_images/' "$out")
listed=$(eval "$listing -s --max-time 60" | tr -d '\r' | sed -n '/^\[/p')
ids=$(json "sorted(e['id'] for e in json.loads(sys.argv[1]))" "$listed" 2>/dev/null || echo "unreadable: $listed")
[ "$ids" = "['7dca41d5-d76a-4ebb-9e00-dd13c13fc238', 'dcd964c3-f54e-413c-ab2e-41c8608f5d16']" ] \
  || { echo "smoke: the trash listing shows $ids" >&2; exit 1; }
code=$(eval "$restore -s -o /dev/null --max-time 60 -w '%{http_code}'")
[ "$code" = 204 ] || { echo "smoke: make run's restore curl answered $code" >&2; exit 1; }
left=$(eval "$listing -s --max-time 60" | tr -d '\r' | sed -n '/^\[/p')
ids=$(json "[e['id'] for e in json.loads(sys.argv[1])]" "$left")
[ "$ids" = "['dcd964c3-f54e-413c-ab2e-41c8608f5d16']" ] || { echo "smoke: after the restore the trash shows $ids" >&2; exit 1; }
# Restored bytes read again; trashed ones answer 404 (a GetObject through boto3).
object() {
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local .tools/py/bin/python - "$1" "$MOTO_PORT" <<'PY'
import sys, boto3, botocore
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[2]}", region_name="us-east-1")
try:
    s3.get_object(Bucket="images", Key=f"albums/00100000123BB121/{sys.argv[1]}/original.jpg")["Body"].read()
    print(200, end="")
except botocore.exceptions.ClientError as err:
    print(err.response["ResponseMetadata"]["HTTPStatusCode"], end="")
PY
}
[ "$(object 7dca41d5-d76a-4ebb-9e00-dd13c13fc238)/$(object dcd964c3-f54e-413c-ab2e-41c8608f5d16)" = 200/404 ] \
  || { echo "smoke: restored/trashed objects answer $(object 7dca41d5-d76a-4ebb-9e00-dd13c13fc238)/$(object dcd964c3-f54e-413c-ab2e-41c8608f5d16)" >&2; exit 1; }
echo "smoke: make run's trash curls listed both, restored one (204, its object reads again), the other stays trashed (404)"
# At RUST_LOG=trace the token and the body appear once: in the printed curl, never in
# a log line (the function's, the runtime's or cargo-lambda's).
sleep 1
token=$TOKEN
form=$(grep -o -- "--data '[^']*" "$out" | head -n 1 | sed "s/--data '//")
grep -q '"level":"TRACE"' "$out" || { echo "smoke: RUST_LOG=trace logged no trace line" >&2; exit 1; }
for secret in "${token##*.}" "$(cut -d. -f2 <<<"$token")" "$form"; do
  [ -n "$secret" ] && [ "$(grep -cF -- "$secret" "$out")" = 1 ] || {
    echo "smoke: at RUST_LOG=trace the output holds the token or body more than once:" >&2
    grep -nF -- "$secret" "$out" | cut -c1-160 >&2; exit 1; }
done
echo "smoke: at RUST_LOG=trace no log line holds the token or the body"
unset RUST_LOG  # cargo lambda invoke reads it too
for fixture in events/*.json; do
  code=$(invoke delete-images "$fixture" | json 'json.load(sys.stdin)["statusCode"]')
  case "$fixture:$code" in
    *delete-one.json:404 | *bulk-delete.json:200) echo "smoke: $fixture -> $code" ;;
    *) echo "smoke: $fixture -> unexpected $code" >&2; exit 1 ;;
  esac
done
# openapi.yaml against the running function: schemathesis, every stateless check.
report=$(mktemp)
scripts/api-conformance.sh "http://127.0.0.1:$RUN_PORT" "$token" >"$report" 2>&1 || {
  echo "smoke: the function does not conform to openapi.yaml:" >&2; cat "$report" >&2; exit 1; }
echo "smoke: openapi.yaml conformance: $(grep -E '^  [0-9]+ generated' "$report" | sed 's/^ *//')"
# The run can fail: with the bulk route's 400 documented as 422, it must turn red and
# name the undocumented status.
wrong=$(mktemp --suffix=.yaml)
python3 - openapi.yaml "$wrong" <<'PY'
import sys
text = open(sys.argv[1]).read()
bad_request = "        '400': {$ref: '#/components/responses/BadRequest'}\n"
assert text.count(bad_request) == 6, "openapi.yaml changed: update the negative control"
open(sys.argv[2], "w").write(text.replace(bad_request, bad_request.replace("400", "422"), 1))
PY
if scripts/api-conformance.sh "http://127.0.0.1:$RUN_PORT" "$token" "$wrong" >"$report" 2>&1; then
  echo "smoke: schemathesis passed a document that calls the bulk route's 400 a 422" >&2; exit 1
fi
grep -q "Undocumented status code" "$report" || { echo "smoke: the negative control failed for another reason:" >&2; cat "$report" >&2; exit 1; }
echo "smoke: with the bulk route's 400 documented as 422, the conformance run fails (undocumented status code)"
rm -f "$report" "$wrong"
stop

start cleanup
malformed=$(json 'json.load(open("events/cleanup/sqs-jobs.json"))["Records"][1]["messageId"]' </dev/null)
failed=$(invoke cleanup events/cleanup/sqs-jobs.json | json '[f["itemIdentifier"] for f in json.load(sys.stdin)["batchItemFailures"]]')
[ "$failed" = "['$malformed']" ] || { echo "smoke: sqs-jobs.json failed $failed, expected ['$malformed']" >&2; exit 1; }
echo "smoke: events/cleanup/sqs-jobs.json -> only the malformed message failed"
answer=$(invoke cleanup events/cleanup/album-deleted.json)
[ "$answer" = null ] || { echo "smoke: album-deleted.json -> $answer" >&2; exit 1; }
echo "smoke: events/cleanup/album-deleted.json -> done"
failed=$(invoke cleanup events/cleanup/stream-remove.json | json 'json.load(sys.stdin)["batchItemFailures"]')
[ "$failed" = "[]" ] || { echo "smoke: stream-remove.json failed $failed" >&2; exit 1; }
echo "smoke: events/cleanup/stream-remove.json -> no failures"
stop

start audit
failed=$(invoke audit events/audit/trash-stream.json | json 'json.load(sys.stdin)["batchItemFailures"]')
[ "$failed" = "[]" ] || { echo "smoke: trash-stream.json failed $failed" >&2; exit 1; }
show=$(sed -n '/^  AWS_ENDPOINT_URL_SQS=.*\\$/,/show-audit$/p' "$out" | sed 's/\\$//' | tr -d '\n')
kinds=$(eval "$show" | json 'sorted(json.loads(l)["detail-type"] for l in sys.stdin)')
[ "$kinds" = "['ImagesDeleted', 'ImagesErased', 'ImagesRestored']" ] \
  || { echo "smoke: the audit bus carried $kinds" >&2; exit 1; }
echo "smoke: events/audit/trash-stream.json -> $kinds on the local bus, read with the printed command"

#!/usr/bin/env bash
# make run: local DynamoDB and S3 (unless AWS_ENDPOINT_URL_DYNAMODB / _S3 point
# elsewhere), demo data, and the function under `cargo lambda watch` on 127.0.0.1:9000.
# Ctrl-C stops everything this script started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/py/bin:$PATH"   # cargo-lambda and its zig
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-$AWS_REGION}  # boto3 reads this one
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export IMAGES_TABLE=${IMAGES_TABLE:-images} IMAGES_BUCKET=${IMAGES_BUCKET:-images}
# Deleted images go to a 30-day trash (docs/trash.md); TRASH_DAYS=0 deletes for good.
export TRASH_DAYS=${TRASH_DAYS:-30} TRASH_TABLE=${TRASH_TABLE:-$IMAGES_TABLE-trash}
export JWT_SECRET=${JWT_SECRET:-dev-secret-for-local-runs-only-0123456789abcdef}
export RUST_LOG=${RUST_LOG:-info}
port=${RUN_PORT:-9000}
bin=${RUN_BIN:-delete-images}   # RUN_BIN=cleanup or audit serves those triggers instead
name=${RUN_NAME:-run}   # keeps this run's emulator state apart (.run/NAME)

if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ] || [ -z "${AWS_ENDPOINT_URL_S3:-}" ]; then
  export DYNAMODB_PORT=${DYNAMODB_PORT:-8000} MOTO_PORT=${MOTO_PORT:-5000}
  trap 'scripts/emulators.sh stop "$name"' EXIT
  scripts/emulators.sh start "$name"
  export AWS_ENDPOINT_URL_DYNAMODB=${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:$DYNAMODB_PORT}
  export AWS_ENDPOINT_URL_S3=${AWS_ENDPOINT_URL_S3:-http://127.0.0.1:$MOTO_PORT}
  export AWS_ENDPOINT_URL_SQS=${AWS_ENDPOINT_URL_SQS:-http://127.0.0.1:$MOTO_PORT}
  export AWS_ENDPOINT_URL_EVENTBRIDGE=${AWS_ENDPOINT_URL_EVENTBRIDGE:-http://127.0.0.1:$MOTO_PORT}
fi
# Never reach real AWS from a local run: every service this run calls needs a local
# endpoint once the emulators above are not ours.
need_endpoint() { # need_endpoint VARIABLE WHY
  if [ -z "${!1:-}" ] && [ -z "${AWS_ENDPOINT_URL:-}" ]; then
    echo "make run: $1 is not set, so $2 would go to real AWS. Set it to a local endpoint" >&2
    echo "(or unset AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 to use make run's emulators)." >&2
    exit 2
  fi
}
if [ "$bin" = cleanup ]; then
  need_endpoint AWS_ENDPOINT_URL_SQS "the cleanup queue"
  export SEED_QUEUE=1
fi
if [ "$bin" = audit ]; then
  need_endpoint AWS_ENDPOINT_URL_EVENTBRIDGE "the audit bus"
  need_endpoint AWS_ENDPOINT_URL_SQS "the queue its events are forwarded to"
  export AUDIT_BUS=${AUDIT_BUS:-images} SEED_BUS=1
fi
if [ -n "${JWT_SECRET_ARN:-}" ]; then
  need_endpoint AWS_ENDPOINT_URL_SECRETS_MANAGER "reading JWT_SECRET_ARN"
fi
export CLEANUP_QUEUE_URL=${CLEANUP_QUEUE_URL:-${AWS_ENDPOINT_URL_SQS:-${AWS_ENDPOINT_URL:-http://127.0.0.1:5000}}/123456789012/image-cleanup}

# Build before serving: cargo lambda watch would otherwise build on the first request,
# which can outlast the invocation timeout on a fresh machine.
cargo build --locked --bin "$bin"
.tools/py/bin/python scripts/seed_demo.py
if [ "$bin" = cleanup ]; then
  cat <<MSG

The cleanup triggers are starting on http://127.0.0.1:$port. Send them events with
(PATH needs .tools/py/bin for cargo-lambda):

  cargo lambda invoke cleanup -A 127.0.0.1 -P $port --data-file events/cleanup/sqs-jobs.json
  cargo lambda invoke cleanup -A 127.0.0.1 -P $port --data-file events/cleanup/album-deleted.json
  cargo lambda invoke cleanup -A 127.0.0.1 -P $port --data-file events/cleanup/stream-remove.json

Ctrl-C stops everything.

MSG
elif [ "$bin" = audit ]; then
  cat <<MSG
The audit trigger is starting on http://127.0.0.1:$port; its events go to the local bus
$AUDIT_BUS, forwarded to the queue image-audit. Send it a trash stream batch, then read
the events (PATH needs .tools/py/bin for cargo-lambda):
  cargo lambda invoke audit -A 127.0.0.1 -P $port --data-file events/audit/trash-stream.json
  AWS_ENDPOINT_URL_SQS=$AWS_ENDPOINT_URL_SQS AWS_DEFAULT_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=local \\
    AWS_SECRET_ACCESS_KEY=local .tools/py/bin/python scripts/seed_demo.py show-audit
Ctrl-C stops everything.
MSG
else
  token=$(python3 scripts/devtoken.py --album 00100000123BB121 --ability image_list --ability trash)
  if [ "$TRASH_DAYS" = 0 ]; then
    deleted="They are deleted for good (TRASH_DAYS=0)."
  else
    deleted="They go to the trash for $TRASH_DAYS days (TRASH_DAYS=0 make run deletes for good)."
  fi
  cat <<MSG

The function is starting on http://127.0.0.1:$port. A token for the demo album
(image_list and trash, four hours):

  TOKEN='$token'

Delete two of the demo images. $deleted

  curl -i -X DELETE http://127.0.0.1:$port/api/v1/images \\
    -H "Authorization: Token token=\"\$TOKEN\"" \\
    -H 'Content-Type: application/x-www-form-urlencoded' \\
    --data 'image_ids[]=7dca41d5-d76a-4ebb-9e00-dd13c13fc238&image_ids[]=dcd964c3-f54e-413c-ab2e-41c8608f5d16'

List the trash, then restore one of them:

  curl -i http://127.0.0.1:$port/api/v1/trashed_images -H "Authorization: Token token=\"\$TOKEN\""
  curl -i -X DELETE http://127.0.0.1:$port/api/v1/trashed_images/7dca41d5-d76a-4ebb-9e00-dd13c13fc238 -H "Authorization: Token token=\"\$TOKEN\""

Or send a whole fixture (PATH needs .tools/py/bin for cargo-lambda):
  cargo lambda invoke delete-images -A 127.0.0.1 -P $port --data-file events/apigw-rest-bulk-delete.json
Ctrl-C stops everything.

MSG
fi
# --timeout gives invocations a real deadline (without it the deadline is "now").
# RUST_LOG is the function's level only: cargo-lambda reads it too, and at trace it
# logs every request it forwards, Authorization header and body included.
RUST_LOG=info cargo lambda watch --bin "$bin" --invoke-address 127.0.0.1 --invoke-port "$port" \
  --timeout 30 --env-var "RUST_LOG=$RUST_LOG"

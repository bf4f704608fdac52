#!/usr/bin/env bash
# Starts or stops the local AWS emulators on loopback:
#   dynalite (DynamoDB, enforces the batch limits) on $DYNAMODB_PORT (default 8000)
#   moto     (S3, SQS, Secrets Manager, EventBridge) on $MOTO_PORT (default 5000)
# Usage: scripts/emulators.sh start|stop NAME
#        eval "$(scripts/emulators.sh endpoints)"   exports the AWS_ENDPOINT_URL_* of
#        the emulators on $DYNAMODB_PORT / $MOTO_PORT
# NAME keeps separate sets apart (make run uses "run", make test uses "test");
# pids and logs live in .run/NAME/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
action=${1:?start, stop or endpoints}
if [ "$action" = endpoints ]; then
  cat <<VARS
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:${DYNAMODB_PORT:-8000}
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:${MOTO_PORT:-5000}
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:${MOTO_PORT:-5000}
export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:${MOTO_PORT:-5000}
export AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:${MOTO_PORT:-5000}
VARS
  exit 0
fi
name=${2:?name}
state="$root/.run/$name"
dynamodb_port=${DYNAMODB_PORT:-8000}
moto_port=${MOTO_PORT:-5000}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for PORT WHAT LOG
  for _ in $(seq 1 100); do
    if listening "$1"; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start on 127.0.0.1:$1; its log ($3):" >&2
  cat "$3" >&2 || true
  return 1
}

stop() {
  for pidfile in "$state"/*.pid; do
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "$action" in
  start)
    mkdir -p "$state"
    stop
    for port in "$dynamodb_port" "$moto_port"; do
      if listening "$port"; then
        echo "127.0.0.1:$port is already in use: stop what runs there or choose other ports" >&2
        exit 1
      fi
    done
    node "$root/.tools/node/node_modules/dynalite/cli.js" --host 127.0.0.1 --port "$dynamodb_port" \
      --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$state/dynalite.log" 2>&1 &
    echo $! >"$state/dynalite.pid"
    # moto_server, minus the instance tracking that grows without bound (the file says why)
    "$root/.tools/py/bin/python" "$root/scripts/moto_server.py" -H 127.0.0.1 -p "$moto_port" \
      >"$state/moto.log" 2>&1 &
    echo $! >"$state/moto.pid"
    wait_for "$dynamodb_port" dynalite "$state/dynalite.log"
    wait_for "$moto_port" moto "$state/moto.log"
    echo "emulators up: DynamoDB http://127.0.0.1:$dynamodb_port, S3 http://127.0.0.1:$moto_port" >&2
    ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop NAME, or $0 endpoints" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Installs the pinned local tools into git-ignored folders of the project:
#   .tools/py    cargo-lambda (with zig), moto[server] (local S3), boto3  -- tools/requirements-dev.txt
#   .tools/sam   aws-sam-cli, cfn-lint                                    -- tools/requirements-sam.txt
#   .tools/api   schemathesis, for the API conformance run                 -- tools/requirements-api.txt
#   .tools/node  dynalite (local DynamoDB)                                 -- tools/package*.json
#   .tools/bench the Python peer of the benchmarks (boto3, awslambdaric)  -- bench/peer/requirements.txt
#   .tools/cargo cargo-fuzz, for make fuzz                                  -- CARGO_FUZZ_VERSION below
# Each part is skipped when its pin file has not changed since it was installed.
# Usage: scripts/install-tools.sh [dev] [sam] [api] [node] [bench] [fuzz]   (default: the first four)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"
python=${PYTHON:-python3}

fresh() { # fresh NAME PINFILE...: true when NAME was installed from these exact pins
  local stamp="$tools/.$1.stamp"; shift
  [ -f "$stamp" ] && [ "$(cat "$@" | sha256sum)" = "$(cat "$stamp")" ]
}
stamp() { local name=$1; shift; cat "$@" | sha256sum > "$tools/.$name.stamp"; }

venv() { # venv NAME REQUIREMENTS
  local name=$1 req=$2
  if fresh "$name" "$req"; then return; fi
  echo "installing $(basename "$req") into .tools/$name" >&2
  rm -rf "${tools:?}/$name"
  "$python" -m venv "$tools/$name"
  "$tools/$name/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
  stamp "$name" "$req"
}

node_tools() {
  if fresh node "$root/tools/package.json" "$root/tools/package-lock.json"; then return; fi
  echo "installing dynalite into .tools/node" >&2
  rm -rf "$tools/node"
  mkdir -p "$tools/node"
  cp "$root/tools/package.json" "$root/tools/package-lock.json" "$tools/node/"
  (cd "$tools/node" && npm ci --no-audit --no-fund --loglevel=error)
  stamp node "$root/tools/package.json" "$root/tools/package-lock.json"
}

CARGO_FUZZ_VERSION=0.13.2
cargo_fuzz() {
  if [ -x "$tools/cargo/bin/cargo-fuzz" ] && "$tools/cargo/bin/cargo-fuzz" --version | grep -q " $CARGO_FUZZ_VERSION$"; then
    return
  fi
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools/cargo" >&2
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$tools/cargo"
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(dev sam api node)
for part in "${parts[@]}"; do
  case "$part" in
    dev) venv py "$root/tools/requirements-dev.txt" ;;
    sam) venv sam "$root/tools/requirements-sam.txt" ;;
    api) venv api "$root/tools/requirements-api.txt" ;;
    node) node_tools ;;
    bench) venv bench "$root/bench/peer/requirements.txt" ;;
    fuzz) cargo_fuzz ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done

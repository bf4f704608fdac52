#!/usr/bin/env bash
# make pieces: each hand-written piece of the AWS path switched off in a copy of the
# tree, built for release and measured by bench/power.py at 256 and 1769 MB beside the
# tree as it is (bench/pieces.py). Writes bench/results/pieces.{md,json}; ~1.5 h here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-tools.sh dev bench
cargo build --release --locked -p bench-fakes
python3 bench/pieces.py "$@"

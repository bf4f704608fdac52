#!/usr/bin/env bash
# make bench: builds the function as it is deployed (release profile, cargo-lambda,
# x86_64 and arm64 zips) and runs bench/bench.py against loopback fakes.
# Prints a table and writes bench/results/latest.{md,json,svg}. Not part of make test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/py/bin:$PATH"   # cargo-lambda and zig
scripts/install-tools.sh dev bench
rustup target add aarch64-unknown-linux-gnu >/dev/null
cargo lambda build --release --locked --x86-64 --bin delete-images --output-format zip \
  --lambda-dir target/lambda/x86_64
cargo lambda build --release --locked --arm64 --bin delete-images --output-format zip \
  --lambda-dir target/lambda/arm64
# The x86_64 binary is the one measured here: this machine runs it natively.
cargo build --release --locked -p bench-fakes
rm -rf target/lambda/bench && mkdir -p target/lambda/bench
python3 -c 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
  target/lambda/x86_64/delete-images/bootstrap.zip target/lambda/bench
chmod +x target/lambda/bench/bootstrap
python3 bench/bench.py --binary target/lambda/bench/bootstrap "$@"

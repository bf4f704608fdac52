#!/usr/bin/env bash
# make bench: builds the function as it is deployed (release profile, cargo-lambda,
# x86_64 and arm64 zips; the cleanup function for the album run) and runs
# bench/bench.py against loopback fakes. Prints a table and writes
# bench/results/latest.{md,json,svg} and album.svg. Not part of make test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/py/bin:$PATH"   # cargo-lambda and zig
scripts/install-tools.sh dev bench
rustup target add aarch64-unknown-linux-gnu >/dev/null
cargo lambda build --release --locked --x86-64 --bin delete-images --output-format zip \
  --lambda-dir target/lambda/x86_64
cargo lambda build --release --locked --x86-64 --bin cleanup --output-format zip \
  --lambda-dir target/lambda/x86_64
cargo lambda build --release --locked --arm64 --bin delete-images --output-format zip \
  --lambda-dir target/lambda/arm64
# The x86_64 binaries are the ones measured here: this machine runs them natively.
cargo build --release --locked -p bench-fakes
for fn in delete-images:bench cleanup:bench-cleanup; do
  rm -rf "target/lambda/${fn#*:}" && mkdir -p "target/lambda/${fn#*:}"
  python3 -c 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "target/lambda/x86_64/${fn%%:*}/bootstrap.zip" "target/lambda/${fn#*:}"
  chmod +x "target/lambda/${fn#*:}/bootstrap"
done
python3 bench/bench.py --binary target/lambda/bench/bootstrap \
  --cleanup-binary target/lambda/bench-cleanup/bootstrap "$@"

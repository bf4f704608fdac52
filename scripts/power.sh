#!/usr/bin/env bash
# make power: the release function (built by cargo-lambda for x86_64, as make bench
# builds it) and the Python peer, each inside a cgroup CPU quota emulating Lambda's
# share at 128, 256, 512, 1024 and 1769 MB (bench/power.py). Writes
# bench/results/power.{md,json,svg}; prints the table and one summary line.
# Where cgroups are not writable (not root, no cpu controller) it says so in one line
# and measures at a full core only. make bench runs it last.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/py/bin:$PATH"   # cargo-lambda and zig
scripts/install-tools.sh dev bench
cargo lambda build --release --locked --x86-64 --bin delete-images --output-format zip \
  --lambda-dir target/lambda/x86_64
cargo build --release --locked -p bench-fakes
rm -rf target/lambda/bench && mkdir -p target/lambda/bench
python3 -c 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
  target/lambda/x86_64/delete-images/bootstrap.zip target/lambda/bench
chmod +x target/lambda/bench/bootstrap
python3 bench/power.py --binary target/lambda/bench/bootstrap "$@"

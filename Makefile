# The two commands a newcomer needs:
#   make run   -- the function on 127.0.0.1:9000 against local DynamoDB and S3 with demo data
#   make test  -- every test: unit, integration against emulators it starts, template lint
SHELL := /bin/bash
.DEFAULT_GOAL := help
export AWS_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= local
export AWS_SECRET_ACCESS_KEY ?= local
export AWS_EC2_METADATA_DISABLED := true
export SAM_CLI_TELEMETRY := 0
# Emulator ports for `make test`, apart from `make run`'s so both can run at once.
TEST_DYNAMODB_PORT ?= 18000
TEST_MOTO_PORT ?= 15000

.PHONY: help tools run test build unit lint-rust lint-template fmt bench power pieces crafted-release chaos fuzz sdk-latest

help:
	@echo "make run    run the function locally against local DynamoDB/S3 with demo data"
	@echo "make test   run every test (starts its own emulators)"
	@echo "make build  build the deploy artifact (sam build: arm64, every function)"
	@echo "make fmt    format the code"
	@echo "make bench  build for release and print benchmark figures (make power last)"
	@echo "make power  duration and cost per Lambda memory size, under a cgroup CPU quota"

tools:
	@scripts/install-tools.sh

run: tools
	@scripts/run-local.sh

test: tools lint-rust
	@scripts/test.sh

# The deploy artifact, as `sam deploy` ships it (.aws-sam/build): every function built
# by cargo-lambda for arm64 in release. CI runs it after make test (.ci/run).
build: tools
	rustup target add aarch64-unknown-linux-gnu >/dev/null
	PATH="$(CURDIR)/.tools/py/bin:$$PATH" .tools/sam/bin/sam build

lint-rust:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

lint-template: tools
	.tools/sam/bin/cfn-lint template.yaml
	.tools/sam/bin/sam validate --lint --template-file template.yaml --region $(AWS_REGION)
	.tools/sam/bin/python scripts/check_template.py

fmt:
	cargo fmt --all

# Figures, not tests: release builds (~10 min each from clean) and loopback fakes.
bench: tools
	@scripts/bench.sh
	@scripts/power.sh

# The function and the Python peer at Lambda's CPU share for 128-1769 MB (cgroup CPU
# quota; root and a writable cpu controller, else full-core rows only): duration, peak
# RSS and cost per memory size (bench/results/power.*).
power: tools
	@scripts/power.sh

# What each hand-written piece of the AWS path gains at 256 and 1769 MB: a release
# build without it against the tree as it is, under power's CPU quota (~45 min;
# bench/results/pieces.*).
pieces: tools
	@scripts/pieces.sh

# The crafted events of events/crafted/ against the release binary (~10 min to build
# from clean): each gets an answer and the process keeps serving.
crafted-release:
	cargo build --release --locked --bin delete-images
	python3 scripts/crafted_events.py target/release/delete-images

# Faults at the wire at length: >= 400 requests per seed, three seeds, 35 % of AWS
# calls faulted; one summary line per seed and a total (tests/api/chaos.rs).
chaos: tools
	@scripts/chaos.sh

# Every fuzz target for FUZZ_SECONDS (default 600) each: executions and crashes per
# target. make test replays the committed corpus (fuzz/corpus/).
fuzz:
	@scripts/fuzz.sh

# The hand-written AWS pieces' equivalence tests against the newest SDK releases on
# the registry (a copy of the tree; Cargo.lock untouched): an SDK upgrade that breaks
# one is seen before it lands.
sdk-latest:
	@scripts/sdk-latest.sh

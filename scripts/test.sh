#!/usr/bin/env bash
# Runs every check of the project, installing what the tests need:
# formatting, clippy, unit and integration tests (the real binary, the real
# HTTP server), the quality test on the real data set, and — when a Docker
# engine is reachable — the container tests.
#
#   ./scripts/test.sh
#
# Build artefacts go to CARGO_TARGET_DIR (default ~/.cache/ccfraud/target),
# outside the checkout, so CI's fresh clones reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v unzip >/dev/null || need_apt+=(unzip)
if [ "${#need_apt[@]}" -gt 0 ]; then
    step "installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -c 'import boto3' 2>/dev/null || {
    step "installing boto3 (the lab's Lambda code runs against the server)"
    python3 -m pip install -q --disable-pip-version-check 'boto3>=1.28'
}

step "fetching the data set"
CSV="$(./scripts/fetch-data.sh)"
export CCFRAUD_CREDITCARD="$CSV"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --release --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo test --release --locked

S3S_ROOT="$HOME/.cache/ccfraud/s3s"
if [ ! -x "$S3S_ROOT/bin/s3s-fs" ]; then
    step "installing s3s-fs 0.14.1 (a real S3-compatible server for the S3 tests)"
    CARGO_TARGET_DIR="$HOME/.cache/ccfraud/s3s-target" \
        cargo install s3s-fs --version 0.14.1 --locked --features binary --root "$S3S_ROOT"
fi
export CCFRAUD_S3S_FS="$S3S_ROOT/bin/s3s-fs"

step "quality on the real data (standard split) and S3 workflows against s3s-fs"
cargo test --release --locked --test real_data --test s3 -- --include-ignored --nocapture

if [ -x scripts/test-image.sh ] && docker info >/dev/null 2>&1; then
    step "container tests"
    PREPARED="$HOME/.cache/ccfraud/prepared"
    "$CARGO_TARGET_DIR/release/ccfraud" prepare --input "$CSV" --out "$PREPARED"
    CCFRAUD_PREPARED_DIR="$PREPARED" CCFRAUD_BIN="$CARGO_TARGET_DIR/release/ccfraud" ./scripts/test-image.sh

    step "SageMaker Python SDK, local mode (offline): train, deploy, invoke, batch transform"
    CCFRAUD_PREPARED_DIR="$PREPARED" CCFRAUD_BIN="$CARGO_TARGET_DIR/release/ccfraud" \
        ./scripts/test-sagemaker-local.sh --hyperparameters '{"model": "forest"}'
fi

step "Lambda handler (against a real ccfraud serve) and SAM template (cfn-lint)"
CCFRAUD_BIN="$CARGO_TARGET_DIR/release/ccfraud" ./scripts/test-lambda.sh

step "demo page in a real browser (headless Chromium)"
./scripts/test-demo.sh

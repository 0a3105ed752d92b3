#!/usr/bin/env bash
# Real-browser test of the demo: installs Debian's chromium + chromium-driver
# and Selenium (in a venv cached under ~/.cache/ccfraud), trains a model on the
# real data if none is given, then runs tests/browser/demo_browser.py: the
# page on that lab model, on a model of another schema (a header and a
# categorical column; the test makes its small CSV and trains it with $BIN),
# and its fallbacks to the lab's list. BIN: CCFRAUD_BIN, else
# $CARGO_TARGET_DIR/release/ccfraud.
# Screenshots land in $CCFRAUD_ARTIFACTS (default ~/.cache/ccfraud/artifacts).
#
#   scripts/test-demo.sh [ML_ROOT_WITH_MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
BIN="${CCFRAUD_BIN:-$CARGO_TARGET_DIR/release/ccfraud}"
ARTIFACTS="${CCFRAUD_ARTIFACTS:-$HOME/.cache/ccfraud/artifacts}"
VENV="$HOME/.cache/ccfraud/venv-browser"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -c 'import selenium' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check 'selenium==4.27.1'

ML_ROOT="${1:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [ -z "$ML_ROOT" ]; then
    ML_ROOT="$WORK/ml"
    CSV="$(./scripts/fetch-data.sh)"
    mkdir -p "$ML_ROOT/input/data/train" "$ML_ROOT/input/config"
    "$BIN" prepare --input "$CSV" --out "$WORK/prep" >/dev/null
    mv "$WORK/prep/train_data.csv" "$ML_ROOT/input/data/train/"
    echo '{"model": "forest"}' > "$ML_ROOT/input/config/hyperparameters.json"
    CCFRAUD_LOG=warn "$BIN" train --ml-root "$ML_ROOT" >/dev/null
fi
"$VENV/bin/python" tests/browser/demo_browser.py --bin "$BIN" --ml-root "$ML_ROOT" --artifacts "$ARTIFACTS"

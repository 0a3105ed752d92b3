#!/usr/bin/env bash
# From nothing to a served model: fetch the data, prepare the lab's files,
# train into a local ml-root, then serve it beside the demo page and print a
# curl line that scores the lab's example fraud.
#
#   ./scripts/quickstart.sh            # ml-root: ./ml (override with ML_ROOT)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
ML_ROOT="${ML_ROOT:-$PWD/ml}"
PORT="${PORT:-8080}"

cargo build --release --locked
BIN="$CARGO_TARGET_DIR/release/ccfraud"
CSV="$(./scripts/fetch-data.sh)"

mkdir -p "$ML_ROOT/input/data/train" "$ML_ROOT/input/data/test" "$ML_ROOT/input/config"
"$BIN" prepare --input "$CSV" --out "$ML_ROOT/prepared"
ln -sf "$ML_ROOT/prepared/train_data.csv" "$ML_ROOT/input/data/train/train_data.csv"
ln -sf "$ML_ROOT/prepared/test_data.csv" "$ML_ROOT/input/data/test/test_data.csv"
[ -f "$ML_ROOT/input/config/hyperparameters.json" ] || echo '{}' > "$ML_ROOT/input/config/hyperparameters.json"
"$BIN" train --ml-root "$ML_ROOT"

# the lab's example fraud, from the one copy the demo, tests and scripts share
LAB_FRAUD="$(python3 -c 'import json, sys
print(json.dumps(next(e["features"] for e in json.load(open(sys.argv[1]))["examples"] if e["id"] == "lab-fraud"), separators=(",", ":")))' data/demo_examples.json)"
DEMO_PORT="${DEMO_PORT:-8000}"
"$BIN" serve --ml-root "$ML_ROOT" --host 127.0.0.1 --port "$PORT" &
SERVE_PID=$!
"$BIN" demo --port "$DEMO_PORT" --api-url "http://127.0.0.1:$PORT/invocations" --alert-log "$ML_ROOT/alerts.jsonl" &
DEMO_PID=$!
trap 'kill $SERVE_PID $DEMO_PID 2>/dev/null' EXIT INT TERM
until curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null; do sleep 0.05; done
echo
echo "Model served on http://127.0.0.1:$PORT; demo page on http://127.0.0.1:$DEMO_PORT/ (Ctrl-C stops both)."
echo "Score the lab's example fraud with:"
echo "  curl -s http://127.0.0.1:$PORT/invocations -H 'Content-Type: application/json' -d '$LAB_FRAUD'"
echo
wait

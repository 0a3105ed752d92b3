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

LAB_FRAUD='[-15.819178720771802,8.7759971528627,-22.8046864614815,11.864868080360699,-9.09236053189517,-2.38689320657655,-16.5603681078199,0.9483485947860579,-6.31065843275059,-13.0888909176936,9.81570317447819,-14.0560611837648,0.777191846436601,-13.7610179615936,-0.353635939812489,-7.9574472262599505,-11.9629542349435,-4.7805077876172,0.652498045264831,0.992278949261366,-2.35063374523783,1.03636187430048,1.13605073696052,-1.0434137405139001,-0.10892334328197999,0.657436778462222,2.1364244708551396,-1.41194537483904,-0.3492313067728856]'
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

#!/usr/bin/env bash
# Training speed on the real data, standard split, default hyperparameters:
# data loading against pandas.read_csv on the same file in the same run, the
# default DNN alone (10 epochs), and the whole default model=all run.
#
#   ./scripts/bench-train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
cargo build --release --locked -q
BIN="$CARGO_TARGET_DIR/release/ccfraud"
CSV="$(./scripts/fetch-data.sh)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python3 -c 'import pandas' 2>/dev/null || python3 -m pip install -q pandas

echo "== load creditcard.csv (150 MB), best of 5"
python3 - "$CSV" <<'PY'
import sys, time, pandas as pd
best = min((lambda t: (pd.read_csv(sys.argv[1]), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))
print(f"pandas.read_csv: {best:.3f} s")
PY
mkdir -p "$WORK/k/input/data/train" "$WORK/k/input/config"
ln -s "$CSV" "$WORK/k/input/data/train/creditcard.csv"
echo '{"model":"logistic","logistic_max_iterations":"1"}' > "$WORK/k/input/config/hyperparameters.json"
best=""
for _ in 1 2 3 4 5; do
    t=$("$BIN" train --ml-root "$WORK/k" 2>&1 >/dev/null | sed -n 's/.*channel train: .* read in \([0-9.]*\) s/\1/p')
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
done
echo "ccfraud reader:  $best s"

"$BIN" prepare --input "$CSV" --out "$WORK/prep" >/dev/null
for run in dnn all; do
    R="$WORK/$run"
    mkdir -p "$R/input/data/train" "$R/input/data/test" "$R/input/config"
    cp "$WORK/prep/train_data.csv" "$R/input/data/train/"
    cp "$WORK/prep/test_data.csv" "$R/input/data/test/"
    echo "{\"model\":\"$run\"}" > "$R/input/config/hyperparameters.json"
    echo "== model=$run"
    /usr/bin/time -f "wall %e s, peak RSS %M KB" "$BIN" train --ml-root "$R" 2>&1 >/dev/null | grep -E "INFO  (dnn|logistic|forest|channel)|wall"
done

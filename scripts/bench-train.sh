#!/usr/bin/env bash
# Training speed on the real data, standard split, default hyperparameters:
# data loading against pandas.read_csv and polars.read_csv on the same files
# in the same run (best of 5 each, with the ratio to ccfraud), the default DNN
# alone (10 epochs), and the whole default model=all run.
#
#   ./scripts/bench-train.sh
#
# Files: the Kaggle creditcard.csv (150 MB, header; scripts/fetch-data.sh) and
# the lab's train_data.csv (122 MB, no header; `ccfraud prepare`).
# ccfraud's load time is its own "channel train: … read in X s" log line of a
# model=logistic run stopped after one iteration. pandas and polars are
# installed with pip when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
# CCFRAUD_BIN measures another build (an earlier commit's, for a before/after).
if [ -n "${CCFRAUD_BIN:-}" ]; then
    BIN="$CCFRAUD_BIN"
else
    cargo build --release --locked -q
    BIN="$CARGO_TARGET_DIR/release/ccfraud"
fi
CSV="$(./scripts/fetch-data.sh)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
RUNS=5

for pkg in pandas polars; do
    python3 -c "import $pkg" 2>/dev/null || {
        echo "installing $pkg (pip)" >&2
        python3 -m pip install -q --disable-pip-version-check "$pkg" >&2 \
            || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$pkg" >&2
    }
done

"$BIN" prepare --input "$CSV" --out "$WORK/prep" >/dev/null
LAB="$WORK/prep/train_data.csv"

# ccfraud: best of $RUNS "read in X s" of a one-iteration logistic run on FILE
ccfraud_load() {
    local file="$1" root best="" t
    root="$WORK/load-$(basename "$1" .csv)"
    mkdir -p "$root/input/data/train" "$root/input/config"
    ln -sf "$file" "$root/input/data/train/$(basename "$file")"
    echo '{"model":"logistic","logistic_max_iterations":"1"}' > "$root/input/config/hyperparameters.json"
    for _ in $(seq "$RUNS"); do
        t=$(CCFRAUD_LOG=info "$BIN" train --ml-root "$root" 2>&1 >/dev/null \
            | sed -n 's/.*channel train: .* read in \([0-9.]*\) s.*/\1/p')
        [ -n "$t" ] || { echo "bench-train: no 'channel train: … read in' line from ccfraud train" >&2; exit 1; }
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    echo "$best"
}

echo "== load, best of $RUNS"
KAGGLE_CC="$(ccfraud_load "$CSV")"
LAB_CC="$(ccfraud_load "$LAB")"
python3 - "$RUNS" "$CSV" "$KAGGLE_CC" "$LAB" "$LAB_CC" <<'PY'
import os, sys, time
import pandas as pd
import polars as pl

runs = int(sys.argv[1])
files = [("creditcard.csv", sys.argv[2], True, float(sys.argv[3])),
         ("train_data.csv", sys.argv[4], False, float(sys.argv[5]))]


def best(f):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


rows = []
for name, path, header, cc in files:
    mb = os.path.getsize(path) / 1e6
    pd_t = best(lambda: pd.read_csv(path, header=0 if header else None))
    # Kaggle's Time turns into "1e+05" after the rows polars infers its
    # schema from; a user tells polars it is a float.
    overrides = {"Time": pl.Float64} if header else None
    pl_t = best(lambda: pl.read_csv(path, has_header=header, schema_overrides=overrides))
    rows.append((f"{name} ({mb:.0f} MB)", cc, pd_t, pl_t))

print(f"{'file':<26}{'ccfraud':>10}{'pandas':>10}{'polars':>10}{'pandas/ccfraud':>16}{'polars/ccfraud':>16}")
for name, cc, pd_t, pl_t in rows:
    print(f"{name:<26}{cc:>9.3f}s{pd_t:>9.3f}s{pl_t:>9.3f}s{pd_t / cc:>15.1f}x{pl_t / cc:>15.1f}x")
print(f"(pandas {pd.__version__}, polars {pl.__version__}; a ratio above 1 means ccfraud is faster)")
PY

for run in dnn all; do
    R="$WORK/$run"
    mkdir -p "$R/input/data/train" "$R/input/data/test" "$R/input/config"
    cp "$WORK/prep/train_data.csv" "$R/input/data/train/"
    cp "$WORK/prep/test_data.csv" "$R/input/data/test/"
    echo "{\"model\":\"$run\"}" > "$R/input/config/hyperparameters.json"
    echo "== model=$run"
    /usr/bin/time -f "wall %e s, peak RSS %M KB" "$BIN" train --ml-root "$R" 2>&1 >/dev/null | grep -E "INFO +(dnn|logistic|forest|channel)|wall"
done

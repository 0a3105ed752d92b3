#!/usr/bin/env bash
# Training speed on the real data, standard split, default hyperparameters:
# data loading against pandas.read_csv and polars.read_csv on the same files
# in the same run (best of 5 each, with the ratio to ccfraud), the default DNN
# alone (10 epochs), the whole default model=all run, and each ccfraud model
# against the tool a user would pick, fitted on the same rows (best of 3 fit
# times, test AUC-ROC and AUPRC, the ratio of fit times).
#
#   ./scripts/bench-train.sh
#
# Files: the Kaggle creditcard.csv (150 MB, header; scripts/fetch-data.sh) and
# the lab's train_data.csv (122 MB, no header; `ccfraud prepare`).
# ccfraud's load time is its own "channel train: … read in X s" log line of a
# model=logistic run stopped after one iteration. pandas, polars,
# scikit-learn and lightgbm are installed with pip when missing.
#
# Models on the same rows: train_data.csv (the first 227,845 rows) is split by
# line number, every fifth line (5, 10, …: 45,569 rows) into val.csv, the
# other 182,276 into fit.csv. ccfraud gets fit.csv as its train channel and
# val.csv as an explicit validation channel, so it fits on exactly fit.csv
# (no holdout is carved from it); the Python peers fit on fit.csv too,
# standardized as ccfraud does it (mean and population standard deviation of
# fit.csv's rows). Both are scored on test_data.csv. ccfraud's fit time is
# its `<kind>_fit_seconds` metric line (the fit alone: no loading, no
# scoring); a peer's is its `fit()` call alone.
#   logistic  vs scikit-learn LogisticRegression() (L-BFGS, C=1: the objective
#             of ccfraud's with l2=1; ccfraud's default is l2=0)
#   dnn       vs scikit-learn MLPClassifier((10,20,10), max_iter=10,
#             batch_size=256); ccfraud's fit also scores val.csv after each
#             epoch (early stopping), the MLP's does not
#   gbdt      vs LightGBM: 600 rounds, lr 0.02, 31 leaves, bagging 0.8 every
#             round, feature fraction 0.8, lambda_l2 1, 2 threads; run when
#             this build accepts model=gbdt, "not in this build" otherwise
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

# module:package
for pkg in pandas:pandas polars:polars sklearn:scikit-learn lightgbm:lightgbm; do
    python3 -c "import ${pkg%%:*}" 2>/dev/null || {
        echo "installing ${pkg#*:} (pip)" >&2
        python3 -m pip install -q --disable-pip-version-check "${pkg#*:}" >&2 \
            || python3 -m pip install -q --disable-pip-version-check --break-system-packages "${pkg#*:}" >&2
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
    /usr/bin/time -f "wall %e s, peak RSS %M KB" "$BIN" train --ml-root "$R" 2>&1 >/dev/null | grep -E "INFO +(dnn|logistic|forest|gbdt|blend|channel|default model)|wall"
done

# ---- models against their peers, same rows ----
FITRUNS=3
awk 'NR % 5 != 0' "$LAB" > "$WORK/fit.csv"
awk 'NR % 5 == 0' "$LAB" > "$WORK/val.csv"

# ccfraud_model KIND: "fit_seconds auc auprc" (best fit time of $FITRUNS runs,
# the metrics of the last; the fits are deterministic for a seed), or
# "absent" when this build does not accept model=KIND.
ccfraud_model() {
    local kind="$1" root="$WORK/cmp-$1" best="" t out
    mkdir -p "$root/input/data/train" "$root/input/data/validation" "$root/input/data/test" "$root/input/config"
    ln -sf "$WORK/fit.csv" "$root/input/data/train/fit.csv"
    ln -sf "$WORK/val.csv" "$root/input/data/validation/val.csv"
    ln -sf "$WORK/prep/test_data.csv" "$root/input/data/test/test_data.csv"
    echo "{\"model\":\"$kind\"}" > "$root/input/config/hyperparameters.json"
    for _ in $(seq "$FITRUNS"); do
        if ! out=$("$BIN" train --ml-root "$root" 2>"$root/stderr"); then
            if grep -q "hyperparameter 'model'" "$root/stderr"; then
                echo absent
                return
            fi
            echo "bench-train: ccfraud train model=$kind failed:" >&2
            cat "$root/stderr" >&2
            exit 1
        fi
        t=$(sed -n "s/^${kind}_fit_seconds=\([0-9.eE+-]*\);.*/\1/p" <<<"$out")
        [ -n "$t" ] || { echo "bench-train: no ${kind}_fit_seconds line from ccfraud train" >&2; exit 1; }
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    echo "$best $(sed -n "s/^${kind}_test_auc=\([0-9.eE+-]*\);.*/\1/p" <<<"$out") $(sed -n "s/^${kind}_test_auprc=\([0-9.eE+-]*\);.*/\1/p" <<<"$out")"
}

echo "== models on the same 182,276 rows (fit.csv), scored on test_data.csv; best of $FITRUNS fit times"
LOGISTIC_CC="$(ccfraud_model logistic)"
DNN_CC="$(ccfraud_model dnn)"
GBDT_CC="$(ccfraud_model gbdt)"
python3 - "$FITRUNS" "$WORK/fit.csv" "$WORK/prep/test_data.csv" "$LOGISTIC_CC" "$DNN_CC" "$GBDT_CC" <<'PY'
import sys, time, warnings
import numpy as np
import pandas as pd
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neural_network import MLPClassifier
import lightgbm as lgb

warnings.filterwarnings("ignore", category=ConvergenceWarning)
runs = int(sys.argv[1])
fit = pd.read_csv(sys.argv[2], header=None).to_numpy(dtype=np.float64)
test = pd.read_csv(sys.argv[3], header=None).to_numpy(dtype=np.float64)
x, y = fit[:, :-1], fit[:, -1].astype(int)
xt, yt = test[:, :-1], test[:, -1].astype(int)
# ccfraud's scaler: mean and population standard deviation of the fit rows
# (ccfraud then holds the scaled rows as f32)
mean, std = x.mean(axis=0), x.std(axis=0)
std[std == 0] = 1.0
x = ((x - mean) / std).astype(np.float32).astype(np.float64)
xt = ((xt - mean) / std).astype(np.float32).astype(np.float64)


def peer(make):
    times = []
    for _ in range(runs):
        m = make()
        t = time.perf_counter()
        m.fit(x, y)
        times.append(time.perf_counter() - t)
    p = m.predict_proba(xt)[:, 1]
    return min(times), roc_auc_score(yt, p), average_precision_score(yt, p)


peers = [
    ("logistic", sys.argv[4], "sklearn LogisticRegression", lambda: LogisticRegression()),
    ("dnn", sys.argv[5], "sklearn MLPClassifier", lambda: MLPClassifier(
        (10, 20, 10), max_iter=10, batch_size=256, random_state=42)),
    ("gbdt", sys.argv[6], "LightGBM", lambda: lgb.LGBMClassifier(
        n_estimators=600, learning_rate=0.02, num_leaves=31, subsample=0.8,
        subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, n_jobs=2,
        random_state=42, verbose=-1)),
]
print(f"{'model':<10}{'peer':<28}{'fit ccfraud':>12}{'peer':>9}{'peer/cc':>9}"
      f"{'AUC cc':>9}{'peer':>8}{'AUPRC cc':>10}{'peer':>8}")
for kind, cc, name, make in peers:
    if cc == "absent":
        print(f"{kind}: not in this build (model={kind} refused); {name} not run")
        continue
    cc_t, cc_auc, cc_ap = map(float, cc.split())
    t, auc, ap = peer(make)
    print(f"{kind:<10}{name:<28}{cc_t:>11.3f}s{t:>8.3f}s{t / cc_t:>8.1f}x"
          f"{cc_auc:>9.4f}{auc:>8.4f}{cc_ap:>10.4f}{ap:>8.4f}")
print(f"(scikit-learn {sklearn.__version__}, lightgbm {lgb.__version__}; peer/cc above 1 means ccfraud fits faster)")
PY

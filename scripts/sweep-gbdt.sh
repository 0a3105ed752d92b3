#!/usr/bin/env bash
# How gbdt's defaults were chosen: a grid over learning rate, leaves,
# minimum rows per leaf, column sampling and L2, each point one
# `ccfraud train model=gbdt` on the standard split, ranked by VALIDATION
# AUPRC only (the holdout carved from train). The test AUPRC is printed for
# the record and never used to choose. 32 runs, a few minutes.
#
#   ./scripts/sweep-gbdt.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
if [ -n "${CCFRAUD_BIN:-}" ]; then
    BIN="$CCFRAUD_BIN"
else
    cargo build --release --locked -q
    BIN="$CARGO_TARGET_DIR/release/ccfraud"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$BIN" prepare --input "$(./scripts/fetch-data.sh)" --out "$WORK/prep" >/dev/null
R="$WORK/root"
mkdir -p "$R/input/data/train" "$R/input/data/test" "$R/input/config"
ln -s "$WORK/prep/train_data.csv" "$R/input/data/train/"
ln -s "$WORK/prep/test_data.csv" "$R/input/data/test/"
metric() { sed -n "s/^gbdt_$1=\([0-9.eE+-]*\);.*/\1/p" <<<"$2"; }
for lr in 0.05 0.02; do for leaves in 15 31; do for min_data in 20 100; do
for colsample in 0.5 0.8; do for lambda in 1 10; do
    printf '{"model":"gbdt","gbdt_learning_rate":"%s","gbdt_num_leaves":"%s","gbdt_min_data_in_leaf":"%s","gbdt_colsample":"%s","gbdt_lambda":"%s"}' \
        "$lr" "$leaves" "$min_data" "$colsample" "$lambda" > "$R/input/config/hyperparameters.json"
    rm -rf "$R/model" "$R/output"
    out=$(CCFRAUD_LOG=warn "$BIN" train --ml-root "$R")
    echo "$(metric validation_auprc "$out") lr=$lr leaves=$leaves min_data=$min_data colsample=$colsample lambda=$lambda test_auprc=$(metric test_auprc "$out") fit=$(metric fit_seconds "$out")s"
done; done; done; done; done | sort -r | tee "$WORK/sweep.txt"
echo "best on validation: $(head -n1 "$WORK/sweep.txt")"

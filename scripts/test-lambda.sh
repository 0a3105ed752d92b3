#!/usr/bin/env bash
# Tests of the API Gateway Lambda (scripts/lambda/handler.py) and its SAM
# template (scripts/lambda/template.yaml): pytest against a real
# `ccfraud serve` (and the lab's own Lambda, tests/lab_lambda.py, run against
# it with and without explain), SNS checked with botocore's Stubber, cfn-lint
# on the template and its SAM-transformed stack, the template's deployment
# shapes (instance, serverless, data capture, alarms, Clarify) resolved per
# parameter set, and SageMaker Clarify's CSV calls played against the server.
#
#   scripts/test-lambda.sh [PYTEST ARGS...]
#
# The venv (CCFRAUD_LAMBDA_VENV, default ~/.cache/ccfraud/venv-lambda) is
# created or reused, with Python 3.12 (the Lambda runtime's) when one is found,
# else python3 (PYTHON overrides); pip runs only when the pins of
# scripts/lambda/requirements-dev.txt are not all satisfied.
# Data: the tests train a small forest on CCFRAUD_PREPARED_DIR; when that is
# unset, ~/.cache/ccfraud/prepared is made with scripts/fetch-data.sh and
# `ccfraud prepare` if missing. CCFRAUD_ML_ROOT_TRAINED (an ml-root with a
# trained model) skips data and training. Binary: CCFRAUD_BIN, else
# $CARGO_TARGET_DIR/release/ccfraud (default ~/.cache/ccfraud/target).
#
# Exits with pytest's exit code; pytest's summary line is the last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CCFRAUD_LAMBDA_VENV:-$HOME/.cache/ccfraud/venv-lambda}"
REQS="$ROOT/scripts/lambda/requirements-dev.txt"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
export CCFRAUD_BIN="${CCFRAUD_BIN:-$CARGO_TARGET_DIR/release/ccfraud}"

die() { echo "test-lambda: $*" >&2; echo "0 passed, 1 failed"; exit 2; }

# ---- Python: prefer 3.12, the Lambda runtime's ------------------------------------------
pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    local c
    for c in python3.12 "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | tail -n1)" python3; do
        [ -n "$c" ] && "$c" -c 'import sys, venv' >/dev/null 2>&1 && { echo "$c"; return; }
    done
    return 1
}
PY="$(pick_python)" || die "no working python3 found"
WANT="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
HAVE="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
if [ "$HAVE" != "$WANT" ]; then
    echo "test-lambda: creating venv $VENV (Python $WANT${HAVE:+, replacing $HAVE})"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "cannot create venv $VENV with $PY"
fi

pins_satisfied() {
    "$VENV/bin/python" - "$REQS" <<'PYEOF'
import importlib.metadata as m, re, sys
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = m.version(name.strip())
    except m.PackageNotFoundError:
        sys.exit(1)
    if have != want.strip():
        sys.exit(1)
PYEOF
}
if ! pins_satisfied; then
    echo "test-lambda: installing $REQS into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS" >&2 || die "pip install failed"
    pins_satisfied || die "pins still not satisfied after pip install"
fi

# ---- data ----------------------------------------------------------------------------
if [ -z "${CCFRAUD_ML_ROOT_TRAINED:-}" ]; then
    if [ -z "${CCFRAUD_PREPARED_DIR:-}" ]; then
        export CCFRAUD_PREPARED_DIR="$HOME/.cache/ccfraud/prepared"
        if [ ! -f "$CCFRAUD_PREPARED_DIR/train_data.csv" ] || [ ! -f "$CCFRAUD_PREPARED_DIR/test_data.csv" ]; then
            [ -x "$CCFRAUD_BIN" ] || die "$CCFRAUD_BIN not found (build with cargo build --release, or set CCFRAUD_BIN)"
            CSV="$("$ROOT/scripts/fetch-data.sh")" || die "scripts/fetch-data.sh failed"
            echo "test-lambda: preparing $CCFRAUD_PREPARED_DIR from $CSV"
            "$CCFRAUD_BIN" prepare --input "$CSV" --out "$CCFRAUD_PREPARED_DIR" >&2 || die "ccfraud prepare failed"
        fi
    fi
    for f in train_data.csv test_data.csv; do
        [ -f "$CCFRAUD_PREPARED_DIR/$f" ] || die "$CCFRAUD_PREPARED_DIR/$f missing"
    done
fi

# ---- tests ---------------------------------------------------------------------------
cd "$ROOT"
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest -p no:cacheprovider scripts/lambda "$@"

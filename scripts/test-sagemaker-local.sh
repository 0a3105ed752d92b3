#!/usr/bin/env bash
# End-to-end test of the ccfraud image through the SageMaker Python SDK in local
# mode, fully offline: scripts/sagemaker_run.py --local trains (channels train,
# test), deploys a local endpoint, invokes it with the lab's fraud example,
# batch-transforms test transactions and tears everything down.
#
#   scripts/test-sagemaker-local.sh [--tag TAG] [--hyperparameters JSON]
#                                   [--instance-count N] [--no-install]
#
# --instance-count N (default 1) trains on N local containers (algo-1-…,
# algo-2-…): sagemaker_run.py then checks that no file under /opt/ml/model or
# /opt/ml/output was written by two hosts and that model.tar.gz holds exactly
# the first host's files, and this script checks that each other host logged
# why it writes nothing and waited for the first, and that the first host's
# exit (code 0) is the one compose saw first.
#
# The SDK (pinned in scripts/requirements-sagemaker.txt) lives in a venv at
# CCFRAUD_SAGEMAKER_VENV (default ~/.cache/ccfraud/venv-sagemaker), created or
# reused; pip runs only when the pin is not satisfied yet (--no-install: never).
# The image TAG (env CCFRAUD_IMAGE, default ccfraud:test) is built with
# scripts/build-image.sh --local-base (binary from CCFRAUD_BIN, else cargo) when
# missing. Prepared data: CCFRAUD_PREPARED_DIR (default /tmp/prep) with
# train_data.csv and test_data.csv. Needs docker and docker-compose (v1 is fine)
# or the `docker compose` v2 plugin.
#
# Prints one line per check and finally exactly `N passed, M failed`; exits
# non-zero when any check failed. Stopped local-mode containers of this run are
# removed on exit (the image is kept).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="${CCFRAUD_IMAGE:-ccfraud:test}"
BINARY="${CCFRAUD_BIN:-}"
PREP="${CCFRAUD_PREPARED_DIR:-/tmp/prep}"
VENV="${CCFRAUD_SAGEMAKER_VENV:-$HOME/.cache/ccfraud/venv-sagemaker}"
REQS="$ROOT/scripts/requirements-sagemaker.txt"
HP='{"model": "dnn"}'
COUNT=1
INSTALL=1

die() { echo "test-sagemaker-local: $*" >&2; echo "0 passed, 1 failed"; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift ;;
        --tag=*) TAG="${1#*=}" ;;
        --hyperparameters) [ $# -ge 2 ] || die "--hyperparameters needs a value"; HP="$2"; shift ;;
        --hyperparameters=*) HP="${1#*=}" ;;
        --instance-count) [ $# -ge 2 ] || die "--instance-count needs a value"; COUNT="$2"; shift ;;
        --instance-count=*) COUNT="${1#*=}" ;;
        --no-install) INSTALL=0 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

case "$COUNT" in ''|*[!0-9]*|0) die "--instance-count must be a whole number >= 1, not '$COUNT'" ;; esac

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1${2:+: $2}"; }
summary() { echo "$PASSED passed, $FAILED failed"; }

command -v docker >/dev/null || die "docker is required"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"
if docker compose version 2>/dev/null | grep -q v2; then
    echo "compose: $(docker compose version | head -1)"
elif command -v docker-compose >/dev/null; then
    echo "compose: $(docker-compose version --short 2>/dev/null || docker-compose version | head -1) (docker-compose binary)"
else
    die "local mode needs docker-compose or the docker compose v2 plugin"
fi

# ---- venv with the pinned SDK --------------------------------------------------------
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv $VENV"
    "$PY" -m venv "$VENV" || die "cannot create venv $VENV"
fi
PIN="$(grep -E '^sagemaker==' "$REQS" | head -1)"
sdk_version() { # without importing sagemaker (its import prints config notes)
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("sagemaker"))' 2>/dev/null
}
HAVE="sagemaker==$(sdk_version || true)"
if [ "$HAVE" != "$PIN" ]; then
    [ "$INSTALL" = 1 ] || die "venv has '${HAVE:-no sagemaker}', want $PIN (drop --no-install)"
    echo "installing $REQS into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS" || die "pip install failed"
fi
if SAGEMAKER_SUPPRESS_V2_WARNING=1 "$VENV/bin/python" -c 'import sagemaker' >/dev/null 2>&1; then
    pass "SageMaker SDK $(sdk_version) in $VENV"
else
    fail "SageMaker SDK importable from $VENV"; summary; exit 1
fi

# ---- image and data ------------------------------------------------------------------
if ! docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "image $TAG missing: building it"
    build_args=(--local-base --tag "$TAG")
    [ -z "$BINARY" ] || build_args+=(--binary "$BINARY")
    "$ROOT/scripts/build-image.sh" "${build_args[@]}" >&2 || die "build-image.sh failed"
fi
for f in train_data.csv test_data.csv; do
    [ -f "$PREP/$f" ] || die "$PREP/$f missing: run scripts/fetch-data.sh and ccfraud prepare --out $PREP (or set CCFRAUD_PREPARED_DIR)"
done

# ---- the SDK run, offline ------------------------------------------------------------
# Local-mode training/transform containers are left stopped by the SDK; remember
# which ones existed so only this run's are removed.
BEFORE="$(docker ps -aq --no-trunc --filter "ancestor=$TAG" | sort)"
cleanup() {
    local after c
    after="$(docker ps -aq --no-trunc --filter "ancestor=$TAG" --filter status=exited \
        --filter label=com.docker.compose.service | sort)"
    for c in $(comm -13 <(echo "$BEFORE") <(echo "$after")); do
        docker rm "$c" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

LOG="$(mktemp "${TMPDIR:-/tmp}/ccfraud-sagemaker-local.XXXXXX.log")"
START=$(date +%s)
set +e
(
    # Offline: no AWS credentials, profile or endpoint from the caller's environment.
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
    export AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    export AWS_EC2_METADATA_DISABLED=true PYTHONUNBUFFERED=1 SAGEMAKER_SUPPRESS_V2_WARNING=1
    # Any HTTP(S) call beyond this machine (AWS APIs, telemetry) goes to a dead
    # proxy and fails, so a passing run proves local mode needed no network.
    export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
    export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY
    export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1
    "$VENV/bin/python" "$ROOT/scripts/sagemaker_run.py" --local --image "$TAG" --data-dir "$PREP" \
        --hyperparameters "$HP" --instance-count "$COUNT"
) >"$LOG" 2>&1
RC=$?
set -e
ELAPSED=$(( $(date +%s) - START ))

# Show the run's own check lines and scores; the full SDK/container log stays in $LOG.
# (The SDK prints progress dots without a newline, so a check may not start a line.)
grep -oE '(ok   - |FAIL - |fraud score|  lab example|sagemaker SDK ).*' "$LOG" || true
n="1 failed"
SUB="$(grep -oE '[0-9]+ passed, [0-9]+ failed$' "$LOG" | tail -1 || true)"
if [ -n "$SUB" ]; then
    PASSED=$((PASSED + ${SUB%% passed*}))
    n="${SUB#*passed, }"; FAILED=$((FAILED + ${n%% failed}))
fi
if [ "$COUNT" -gt 1 ]; then
    # Every host but the first says why it writes nothing and waits for the
    # first; the first host's exit is the one compose sees (it then stops the
    # others: --abort-on-container-exit), so the job's exit code is its own.
    said="$(grep -c 'is not the first of hosts' "$LOG" || true)"
    waited="$(grep -c 'connected to the leader' "$LOG" || true)"
    first_exit="$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -m1 -oE '[^ ]*algo-[0-9]+-[^ ]* exited with code [0-9]+' || true)"
    if [ "$said" = $((COUNT - 1)) ] && [ "$waited" = $((COUNT - 1)) ]; then
        pass "each of the $((COUNT - 1)) other host(s) logged why it writes nothing and waited for the first"
    else
        fail "other hosts' log lines" "$said 'is not the first of hosts', $waited 'connected to the leader' for $((COUNT - 1)) host(s)"
    fi
    case "$first_exit" in
        *algo-1-*" exited with code 0") pass "the first host exited first, with code 0 (${first_exit%% *})" ;;
        *) fail "the first host exited first, with code 0" "first exit seen: '${first_exit:-none}'" ;;
    esac
fi
if [ "$RC" = 0 ] && [ -n "$SUB" ] && [ "${n%% failed}" = 0 ]; then
    pass "sagemaker_run.py --local exited 0 in ${ELAPSED} s"
    if [ "$FAILED" = 0 ]; then rm -f "$LOG"; else echo "log kept at $LOG"; fi
else
    fail "sagemaker_run.py --local exited $RC in ${ELAPSED} s" "log kept at $LOG"
    tail -40 "$LOG" >&2
fi

summary
[ "$FAILED" = 0 ]

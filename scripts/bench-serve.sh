#!/usr/bin/env bash
# Serving speed on loopback, server and load generator sharing this machine:
# start-up to the first 200 on /ping, single-transaction JSON throughput and
# latency with wrk (32 connections), without and with explain=3 (the top 3
# reasons and the decision, asked in X-Amzn-SageMaker-Custom-Attributes), a
# 10,000-row CSV body, a 1,000-row CSV body without and with explain=3, and
# peak RSS. Then the cost of watching: single-transaction throughput without
# and with a Prometheus-like scraper (GET /metrics every 100 ms on one
# kept-alive connection) and, with CCFRAUD_BASE_BIN (the build before
# /metrics), that build's, in alternating wrk runs (OVERHEAD_RUNS, default 5,
# of OVERHEAD_SECS, default 8 s each; the order rotates from run to run):
# the medians and their ratios.
#
#   ./scripts/bench-serve.sh [ML_ROOT]     # ML_ROOT with a trained model/ (default: trains one on the real data)
#   CCFRAUD_BASE_BIN=/path/to/older/ccfraud ./scripts/bench-serve.sh ML_ROOT
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
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
WORK="$(mktemp -d)"
PID=""
BASE_PID=""
SCRAPER=""
cleanup() {
    for p in "$PID" "$BASE_PID" "$SCRAPER"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

ML_ROOT="${1:-}"
if [ -z "$ML_ROOT" ]; then
    ML_ROOT="$WORK/ml"
    CSV="$(./scripts/fetch-data.sh)"
    "$BIN" prepare --input "$CSV" --out "$WORK/prep" >/dev/null
    mkdir -p "$ML_ROOT/input/data/train" "$ML_ROOT/input/data/test"
    mv "$WORK/prep/train_data.csv" "$ML_ROOT/input/data/train/"
    mv "$WORK/prep/test_data.csv" "$ML_ROOT/input/data/test/"
    CCFRAUD_LOG=warn "$BIN" train --ml-root "$ML_ROOT" >/dev/null
fi
TEST_CSV="$(find "$ML_ROOT/input/data/test" -name '*.csv' | head -n1)"
PORT="${PORT:-18989}"
URL="http://127.0.0.1:$PORT"

start=$(date +%s%N)
CCFRAUD_LOG=warn "$BIN" serve --ml-root "$ML_ROOT" --host 127.0.0.1 --port "$PORT" &
PID=$!
until curl -sf "$URL/ping" >/dev/null; do sleep 0.002; done
echo "start-up to first 200 on /ping: $(( ($(date +%s%N) - start) / 1000000 )) ms"

ROW="[$(head -n1 "$TEST_CSV" | cut -d, -f1-29)]"
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$ROW"
wrk.headers["Content-Type"] = "application/json"
LUA
echo "== single-transaction JSON, 32 connections, 2 threads, 10 s"
wrk -t2 -c32 -d10s --latency -s "$WORK/post.lua" "$URL/invocations" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx" || true

cat > "$WORK/explain.lua" <<LUA
wrk.method = "POST"
wrk.body = "$ROW"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Amzn-SageMaker-Custom-Attributes"] = "explain=3"
LUA
echo "== single-transaction JSON with explain=3, 32 connections, 2 threads, 10 s"
wrk -t2 -c32 -d10s --latency -s "$WORK/explain.lua" "$URL/invocations" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx" || true

# best of 5 wall times of one POST of FILE with extra curl arguments, in ms
best_of_5() {
    local file="$1" best="" t
    shift
    for _ in 1 2 3 4 5; do
        t=$(curl -s -o "$WORK/out.csv" -w '%{time_total}' -H 'Content-Type: text/csv' -H 'Accept: text/csv' "$@" --data-binary @"$file" "$URL/invocations")
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    awk "BEGIN{printf \"%.1f\", $best*1000}"
}
head -n 1000 "$TEST_CSV" | cut -d, -f1-29 > "$WORK/batch1k.csv"
plain=$(best_of_5 "$WORK/batch1k.csv")
explained=$(best_of_5 "$WORK/batch1k.csv" -H 'X-Amzn-SageMaker-Custom-Attributes: explain=3')
echo "1,000-row CSV body: best of 5 $plain ms; with explain=3 $explained ms ($(head -c 120 "$WORK/out.csv" | head -n1)…)"

head -n 10000 "$TEST_CSV" | cut -d, -f1-29 > "$WORK/batch.csv"
best=""
for _ in 1 2 3 4 5; do
    t=$(curl -s -o "$WORK/out.csv" -w '%{time_total}' -H 'Content-Type: text/csv' -H 'Accept: text/csv' --data-binary @"$WORK/batch.csv" "$URL/invocations")
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
done
echo "10,000-row CSV body ($(stat -c %s "$WORK/batch.csv") bytes): best of 5 $(awk "BEGIN{printf \"%.1f\", $best*1000}") ms, $(wc -l < "$WORK/out.csv") lines + 1 back"
echo "peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$PID/status")"

# ---- the cost of watching: /metrics scraped under full load ------------------------------
RUNS="${OVERHEAD_RUNS:-5}"
SECS="${OVERHEAD_SECS:-8}"
BASE_PORT=$((PORT + 1))
if [ -n "${CCFRAUD_BASE_BIN:-}" ]; then
    CCFRAUD_LOG=warn "$CCFRAUD_BASE_BIN" serve --ml-root "$ML_ROOT" --host 127.0.0.1 --port "$BASE_PORT" &
    BASE_PID=$!
    until curl -sf "http://127.0.0.1:$BASE_PORT/ping" >/dev/null; do sleep 0.01; done
fi
# one scrape every 100 ms on a kept-alive connection (as Prometheus does),
# until killed; prints the number of scrapes (all must be 200)
cat > "$WORK/scrape.py" <<'PY'
import http.client, signal, sys, time
conn = http.client.HTTPConnection(sys.argv[1], timeout=10)
n = 0
def done(*_):
    print(n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        print(f"/metrics answered {r.status}", file=sys.stderr)
        sys.exit(1)
    n += 1
    time.sleep(0.1)
PY
rps() { wrk -t2 -c32 -d"${SECS}s" -s "$WORK/post.lua" "$1/invocations" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
plain=(); scraped=(); base=(); scrapes=0
run_plain() { plain+=("$(rps "$URL")"); }
run_scraped() {
    python3 "$WORK/scrape.py" "127.0.0.1:$PORT" > "$WORK/scrapes" &
    SCRAPER=$!
    scraped+=("$(rps "$URL")")
    kill "$SCRAPER"; wait "$SCRAPER" || true; SCRAPER=""
    scrapes=$((scrapes + $(cat "$WORK/scrapes")))
}
run_base() { base+=("$(rps "http://127.0.0.1:$BASE_PORT")"); }
kinds=(run_plain run_scraped)
[ -n "$BASE_PID" ] && kinds+=(run_base)
for i in $(seq "$RUNS"); do
    # the order rotates from run to run, so no kind always follows another
    for k in $(seq 0 $((${#kinds[@]} - 1))); do
        "${kinds[$(( (i + k) % ${#kinds[@]} ))]}"
    done
    echo "   run $i: ${plain[-1]} req/s; with the scraper ${scraped[-1]}${BASE_PID:+; the build before ${base[-1]}}"
done
mp=$(median "${plain[@]}"); ms=$(median "${scraped[@]}")
echo "== /metrics under full load: single-transaction JSON, $RUNS alternating runs of $SECS s, medians"
echo "this build: $mp req/s; scraped every 100 ms ($scrapes scrapes, all 200): $ms req/s ($(awk "BEGIN{printf \"%+.1f\", ($ms/$mp-1)*100}") %)"
if [ -n "$BASE_PID" ]; then
    mb=$(median "${base[@]}")
    echo "the build before (CCFRAUD_BASE_BIN): $mb req/s; this build without a scraper $(awk "BEGIN{printf \"%+.1f\", ($mp/$mb-1)*100}") %, with it $(awk "BEGIN{printf \"%+.1f\", ($ms/$mb-1)*100}") %"
fi
echo "drift after the run: $(curl -s "$URL/metrics" | grep -E '^ccfraud_(drift_window_rows|feature_drift_psi\{column="V1"\})' | tr '\n' ' ')"

#!/usr/bin/env bash
# Cold start of the serving binary, the part of a SageMaker Serverless cold
# start that the image controls: from `ccfraud serve` being started until
# GET /ping first answers 200 (model loaded and warmed), RUNS times, each a
# fresh process on a free loopback port; prints every run and the median,
# min and max. (SageMaker adds its own provisioning and image pull before
# this; CloudWatch reports the whole as ModelSetupTime.)
#
#   scripts/lambda/cold-start.sh ML_ROOT [RUNS]    # ML_ROOT/model/ccfraud-model.json; RUNS default 15
#
# With SKLEARN_TRAIN_CSV=train_data.csv (the lab's headerless file, label
# last) it also times the obvious Python alternative in alternating runs: a
# scikit-learn RandomForestClassifier (100 trees, max_depth 12, seed 0) fitted
# on that file once and saved with joblib, served by the smallest Python
# server that could pass SageMaker's checks (python3, numpy and scikit-learn
# imported, the model loaded, http.server answering /ping) - a floor for a
# real Python container, which adds a web framework and workers.
# SKLEARN_JOBLIB=PATH keeps the fitted forest there (fitted only when PATH
# does not exist yet), so later runs skip the fit.
#
# Binary: CCFRAUD_BIN, else $CARGO_TARGET_DIR/release/ccfraud (default
# ~/.cache/ccfraud/target). /ping is polled every millisecond by one Python
# process (no process start per poll), so the figure resolves to about 1 ms.
set -euo pipefail
ML_ROOT="${1:?usage: cold-start.sh ML_ROOT [RUNS]}"
RUNS="${2:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
BIN="${CCFRAUD_BIN:-$CARGO_TARGET_DIR/release/ccfraud}"
[ -x "$BIN" ] || { echo "cold-start: $BIN not found (build it, or set CCFRAUD_BIN)" >&2; exit 2; }
[ -f "$ML_ROOT/model/ccfraud-model.json" ] || { echo "cold-start: $ML_ROOT/model/ccfraud-model.json missing" >&2; exit 2; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python3 - "$BIN" "$ML_ROOT" "$RUNS" "$WORK" "${SKLEARN_TRAIN_CSV:-}" "${SKLEARN_JOBLIB:-}" <<'PYEOF'
import http.client, os, socket, statistics, subprocess, sys, time

binary, ml_root, runs, work, sklearn_csv, joblib_path = sys.argv[1:3] + [int(sys.argv[3])] + sys.argv[4:7]
size = os.path.getsize(os.path.join(ml_root, "model", "ccfraud-model.json"))
print(f"ccfraud: {binary}, model {ml_root}/model/ccfraud-model.json ({size / 1e6:.1f} MB)")
env = {k: v for k, v in os.environ.items() if not k.startswith(("CCFRAUD_", "SAGEMAKER_"))}
env["CCFRAUD_LOG"] = "warn"
contenders = {
    "ccfraud serve": lambda port: [binary, "serve", "--ml-root", ml_root, "--host", "127.0.0.1", "--port", str(port)],
}

SERVER = """
import http.server, sys
import numpy, sklearn.ensemble, joblib
model = joblib.load(sys.argv[1])
model.predict_proba(numpy.zeros((1, model.n_features_in_)))  # warm, as ccfraud warms its model
class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ping" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Ping).serve_forever()
"""
if sklearn_csv:
    path = joblib_path or os.path.join(work, "forest.joblib")
    if not os.path.exists(path):
        import numpy, joblib
        from sklearn.ensemble import RandomForestClassifier
        data = numpy.loadtxt(sklearn_csv, delimiter=",", dtype=numpy.float32)
        t = time.perf_counter()
        forest = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=0)
        forest.fit(data[:, :-1], data[:, -1])
        joblib.dump(forest, path)
        print(f"scikit-learn: RandomForestClassifier(100 trees, max_depth 12) fitted in {time.perf_counter() - t:.1f} s")
    print(f"scikit-learn: {path} ({os.path.getsize(path) / 1e6:.1f} MB with joblib)")
    server = os.path.join(work, "server.py")
    with open(server, "w") as f:
        f.write(SERVER)
    contenders["python3 + scikit-learn"] = lambda port: [sys.executable, server, path, str(port)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def cold_start(command):
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while True:
            if ping(port) == 200:
                return (time.perf_counter() - start) * 1000
            if proc.poll() is not None:
                sys.exit(f"cold-start: {command(port)[0]} exited with {proc.returncode} before /ping answered 200")
            if time.perf_counter() - start > 60:
                sys.exit("cold-start: no 200 on /ping within 60 s")
            time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait()


times = {name: [] for name in contenders}
for run in range(runs):
    for name, command in contenders.items():  # alternating: both see the same machine
        times[name].append(cold_start(command))
    print(f"run {run + 1}: " + ", ".join(f"{name} {t[-1]:.1f} ms" for name, t in times.items()))
for name, t in times.items():
    print(f"{name}: start to first 200 on /ping over {runs} runs: median {statistics.median(t):.1f} ms, "
          f"min {min(t):.1f} ms, max {max(t):.1f} ms")
if len(times) == 2:
    a, b = (statistics.median(t) for t in times.values())
    print(f"ratio of medians (python3 + scikit-learn / ccfraud serve): {b / a:.1f}x")
PYEOF

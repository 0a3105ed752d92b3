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

exec python3 - "$BIN" "$ML_ROOT" "$RUNS" <<'PYEOF'
import http.client, os, socket, statistics, subprocess, sys, time

binary, ml_root, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(os.path.join(ml_root, "model", "ccfraud-model.json"))
print(f"binary {binary}\nmodel {ml_root}/model/ccfraud-model.json ({size / 1e6:.1f} MB)")


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


env = {k: v for k, v in os.environ.items() if not k.startswith(("CCFRAUD_", "SAGEMAKER_"))}
env["CCFRAUD_LOG"] = "warn"
times = []
for run in range(runs):
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--ml-root", ml_root, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while True:
            if ping(port) == 200:
                elapsed = time.perf_counter() - start
                break
            if proc.poll() is not None:
                sys.exit(f"cold-start: ccfraud serve exited with {proc.returncode} before /ping answered 200")
            if time.perf_counter() - start > 60:
                sys.exit("cold-start: no 200 on /ping within 60 s")
            time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait()
    times.append(elapsed * 1000)
    print(f"run {run + 1}: {times[-1]:.1f} ms")
print(f"start to first 200 on /ping over {runs} runs: median {statistics.median(times):.1f} ms, "
      f"min {min(times):.1f} ms, max {max(times):.1f} ms")
PYEOF

#!/usr/bin/env python3
"""GET /metrics of a live `ccfraud serve`, read by Prometheus's own Python
text-format parser (prometheus_client.parser.text_string_to_metric_families):
every family parses, has the type the README documents, and holds exactly
the values a known set of requests must give.

    python3 scripts/check_metrics.py [BIN]   # BIN: ccfraud (default: $CCFRAUD_BIN)

Trains a small forest on synthetic lab-format rows (seeded) in a temporary
ml-root, starts the server on port 0, sends: 4 single-row JSON requests and a
100-row CSV batch to /invocations, 1 row to /endpoints/{name}/invocations, one
malformed body (400), 2 GET /ping, then scrapes. Prints one line per family
checked; exits non-zero with the reason on the first mismatch.
"""

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

COLUMNS = [f"V{i}" for i in range(1, 29)] + ["Amount"]


def lab_rows(n, seed):
    """Lab-format rows: 29 standard normal features, ~3 % frauds shifted."""
    g = random.Random(seed)
    out = []
    for _ in range(n):
        fraud = g.random() < 0.03
        row = [g.gauss(0, 1) + (2.5 if fraud and j % 5 == 0 else 0) for j in range(29)]
        out.append((row, int(fraud)))
    return out


def csv_text(rows, label=True):
    lines = []
    for row, y in rows:
        fields = [f"{v:.5f}" for v in row] + ([str(y)] if label else [])
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


def request(base, method, path, body=None, content_type=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def fail(msg):
    print(f"check_metrics: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CCFRAUD_BIN")
    expect(binary, "give the ccfraud binary (argument or CCFRAUD_BIN)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCFRAUD_", "SAGEMAKER_"))}
    env["CCFRAUD_LOG"] = "info"
    with tempfile.TemporaryDirectory() as root:
        for channel, rows in (("train", lab_rows(3000, 1)), ("test", lab_rows(500, 2))):
            os.makedirs(f"{root}/input/data/{channel}")
            with open(f"{root}/input/data/{channel}/data.csv", "w") as f:
                f.write(csv_text(rows))
        os.makedirs(f"{root}/input/config")
        with open(f"{root}/input/config/hyperparameters.json", "w") as f:
            json.dump({"model": "forest", "n_trees": "10"}, f)
        trained = subprocess.run([binary, "train", "--ml-root", root], env=env,
                                 capture_output=True, text=True)
        expect(trained.returncode == 0, f"training failed: {trained.stderr}")
        server = subprocess.Popen(
            [binary, "serve", "--ml-root", root, "--host", "127.0.0.1", "--port", "0",
             "--drift-window-rows", "1000"],
            env=env, stderr=subprocess.PIPE, text=True)
        try:
            check(server)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=15)


def check(server):
    addr = None
    for line in server.stderr:
        m = re.search(r" on (127\.0\.0\.1:\d+) ", line)
        if m:
            addr = m.group(1)
            break
    expect(addr, "no start-up line")
    # keep draining stderr so the server never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    base = f"http://{addr}"

    rows = lab_rows(105, 3)
    for row, _ in rows[:4]:
        st, _, body = request(base, "POST", "/invocations", json.dumps(row).encode(), "application/json")
        expect(st == 200, f"/invocations answered {st}: {body!r}")
    st, _, _ = request(base, "POST", "/endpoints/my-endpoint/invocations",
                       json.dumps(rows[4][0]).encode(), "application/json")
    expect(st == 200, f"/endpoints/…/invocations answered {st}")
    st, _, _ = request(base, "POST", "/invocations", b"[1,2]", "application/json")
    expect(st == 400, f"a 2-value row answered {st}, not 400")
    for _ in range(2):
        expect(request(base, "GET", "/ping")[0] == 200, "/ping")
    st, _, _ = request(base, "POST", "/invocations", csv_text(rows[5:], label=False).encode(), "text/csv")
    expect(st == 200, f"the CSV batch answered {st}")

    st, headers, body = request(base, "GET", "/metrics")
    expect(st == 200, f"/metrics answered {st}")
    expect(headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers["Content-Type"])
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}

    def family(name, typ):
        expect(name in families, f"no family {name} in:\n{body.decode()}")
        f = families.pop(name)
        expect(f.type == typ, f"{name} is a {f.type}, not a {typ}")
        expect(f.documentation, f"{name} has no HELP")
        print(f"  {name} ({typ}): {len(f.samples)} samples")
        return f

    def value(f, sample, **labels):
        found = [s.value for s in f.samples if s.name == sample and s.labels == labels]
        expect(len(found) == 1, f"{sample}{labels}: {len(found)} samples in {f.samples}")
        return found[0]

    # the parser names a counter family without its _total suffix
    f = family("ccfraud_http_requests", "counter")
    for route, status, n in (("/invocations", "200", 5), ("/invocations", "400", 1),
                             ("/endpoints/{name}/invocations", "200", 1), ("/ping", "200", 2)):
        got = value(f, "ccfraud_http_requests_total", route=route, status=status)
        expect(got == n, f"requests {route} {status}: {got}, want {n}")
    expect(len(f.samples) == 4, f"unexpected series: {f.samples}")

    f = family("ccfraud_http_request_duration_seconds", "histogram")
    for route, n in (("/invocations", 6), ("/endpoints/{name}/invocations", 1), ("/ping", 2)):
        expect(value(f, "ccfraud_http_request_duration_seconds_count", route=route) == n, route)
        expect(value(f, "ccfraud_http_request_duration_seconds_bucket", route=route, le="+Inf") == n, route)
        buckets = [s.value for s in f.samples
                   if s.name.endswith("_bucket") and s.labels["route"] == route]
        expect(buckets == sorted(buckets), f"{route}: buckets not cumulative")
        expect(value(f, "ccfraud_http_request_duration_seconds_sum", route=route) > 0, route)

    f = family("ccfraud_http_requests_in_flight", "gauge")
    expect(value(f, "ccfraud_http_requests_in_flight") == 1, "in flight: this scrape alone")

    f = family("ccfraud_rows_scored", "counter")
    expect(value(f, "ccfraud_rows_scored_total") == 105, "rows scored")

    f = family("ccfraud_fraud_score", "histogram")
    expect(value(f, "ccfraud_fraud_score_count") == 105, "scores counted")
    expect(value(f, "ccfraud_fraud_score_bucket", le="+Inf") == 105, "+Inf bucket")
    expect(value(f, "ccfraud_fraud_score_bucket", le="1") == 105, "every score <= 1")
    expect(0 < value(f, "ccfraud_fraud_score_sum") < 105, "score sum")

    f = family("ccfraud_model_info", "gauge")
    (s,) = f.samples
    expect(s.value == 1, "model_info is 1")
    expect(s.labels["name"] == "ccfraud" and s.labels["kind"] == "forest", s.labels)
    expect(s.labels["format_version"] == "2", s.labels)
    expect(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s.labels["trained_at"]), s.labels)
    expect(s.labels["created_by"].startswith("ccfraud "), s.labels)

    f = family("ccfraud_drift_window_rows", "gauge")
    expect(value(f, "ccfraud_drift_window_rows") == 105, "the window holds the 105 rows")

    f = family("ccfraud_feature_drift_psi", "gauge")
    psi = {s.labels["column"]: s.value for s in f.samples}
    expect(sorted(psi) == sorted(COLUMNS), f"drift columns: {sorted(psi)}")
    expect(all(math.isfinite(v) and 0 <= v < 1 for v in psi.values()), psi)

    expect(not families, f"undocumented families: {sorted(families)}")
    print("check_metrics: every family parsed and holds the expected values")


if __name__ == "__main__":
    main()

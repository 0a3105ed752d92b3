#!/usr/bin/env python3
"""Hostile load against a release `ccfraud serve` on loopback, bounded in time.

Each mode starts its own server (127.0.0.1, a free port), loads it while a
prober GETs /ping every 50 ms on a fresh connection, and prints figures:

  slow     N slow or never-finished clients (no head, a partial head, a body
           at 1 byte/s, a body never finished) held for --seconds: /ping
           latency meanwhile, and how the server ended them (408, 503, close).
  memory   32 concurrent maximum-size bodies of each format (a JSON list of
           lists of small numbers, CSV, JSON Lines): statuses, peak RSS
           (VmHWM), /ping max latency.
  soak     --seconds at 64 keep-alive connections of single rows, of 1,000-row
           batches, and of 10 % bad input: RSS at start and end of each phase,
           unexpected statuses (must be 0), /ping p99.

  scripts/load.py MODE [--bin target/release/ccfraud] [--ml-root ROOT] ...

Without --ml-root a model is trained on synthetic lab-format rows first.
Exit status 1 when a bound is missed (/ping over 1 s, unexpected statuses,
peak RSS over 512 MB in memory mode). Loopback only; nothing is left running.
"""
import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
ROW = [round(random.Random(7).uniform(-2, 2), 3) for _ in range(29)]
PING_EVERY = 0.05
PING_TIMEOUT = 10.0


def train(bin_, root):
    rng = random.Random(1)
    os.makedirs(f"{root}/input/data/train")
    os.makedirs(f"{root}/input/config")
    with open(f"{root}/input/config/hyperparameters.json", "w") as f:
        json.dump({"model": "logistic"}, f)
    with open(f"{root}/input/data/train/t.csv", "w") as f:
        for _ in range(3000):
            fraud = rng.random() < 0.05
            f.write(",".join(f"{rng.gauss(2.5 if fraud and j % 5 == 0 else 0, 1):.4f}" for j in range(29)))
            f.write(",1\n" if fraud else ",0\n")
    subprocess.run([bin_, "train", "--ml-root", root], check=True, env={**os.environ, "CCFRAUD_LOG": "warn"})


class Server:
    """`ccfraud serve` on a free loopback port, killed on exit."""

    def __init__(self, bin_, root, flags):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CCFRAUD_", "SAGEMAKER_"))}
        self.proc = subprocess.Popen(
            [bin_, "serve", "--host", HOST, "--port", "0", "--ml-root", root, *flags],
            stderr=subprocess.PIPE, text=True, env={**env, "CCFRAUD_LOG": "info"})
        deadline = time.monotonic() + 60
        for line in self.proc.stderr:
            sys.stderr.write("server: " + line)
            m = re.search(r" on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
            if time.monotonic() > deadline:
                break
        else:
            sys.exit("ccfraud serve exited before its start-up line")
        # keep draining stderr so the server never blocks on it
        self.drain = asyncio.get_event_loop().run_in_executor(None, lambda: [None for _ in self.proc.stderr])

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) // 1024  # MB
        return -1

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "killed"


async def request(port, method, path, body=b"", ctype="application/json", conn=None, timeout=PING_TIMEOUT):
    """One HTTP/1.1 request; returns (status, body, conn) with conn kept open
    for reuse unless the server closes it."""
    if conn is None:
        conn = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    r, w = conn
    w.write(f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
    status = int(head.split()[1])
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    data = await asyncio.wait_for(r.readexactly(int(m.group(1))), timeout) if m else b""
    if re.search(rb"(?i)connection: *close", head):
        w.close()
        conn = None
    return status, data, conn


class Prober:
    """GETs /ping every 50 ms on a fresh connection; a failure counts as
    PING_TIMEOUT."""

    def __init__(self, port):
        self.port, self.latencies, self.failures = port, [], 0
        self.task = asyncio.ensure_future(self.run())

    async def run(self):
        while True:
            t = time.monotonic()
            try:
                status, _, conn = await request(self.port, "GET", "/ping")
                if conn:
                    conn[1].close()
                ok = status == 200
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                ok = False
            self.latencies.append(time.monotonic() - t)
            self.failures += not ok
            await asyncio.sleep(PING_EVERY)

    def report(self):
        self.task.cancel()
        lat = sorted(self.latencies) or [0.0]
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        return {"pings": len(lat), "ping_failures": self.failures, "ping_p50_ms": round(p(0.5), 1),
                "ping_p99_ms": round(p(0.99), 1), "ping_max_ms": round(lat[-1] * 1000, 1)}


async def slow(args, srv):
    probe = Prober(srv.port)
    ended = {}

    async def client(kind):
        try:
            r, w = await asyncio.open_connection(HOST, srv.port)
        except OSError as e:
            ended["connect failed: " + e.__class__.__name__] = ended.get("connect failed: " + e.__class__.__name__, 0) + 1
            return
        head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n"
        if kind == 1:
            w.write(head[:30].encode())  # a head never finished
        elif kind >= 2:
            w.write(head.encode() + b"0.1")
        try:
            while True:
                got = await asyncio.wait_for(r.read(64), 1.0) if kind == 3 else await r.read(64)
                if not got:
                    ended["closed"] = ended.get("closed", 0) + 1
                    break
                key = got.split(b"\r\n")[0].decode(errors="replace")
                ended[key] = ended.get(key, 0) + 1
                break
        except asyncio.TimeoutError:
            if kind == 3:  # 1 byte/s
                try:
                    w.write(b"1")
                    return await client_tail(r, w)
                except OSError:
                    pass
        except OSError:
            ended["reset"] = ended.get("reset", 0) + 1
        finally:
            w.close()

    async def client_tail(r, w):
        while True:
            try:
                got = await asyncio.wait_for(r.read(64), 1.0)
                key = got.split(b"\r\n")[0].decode(errors="replace") if got else "closed"
                ended[key] = ended.get(key, 0) + 1
                return
            except asyncio.TimeoutError:
                w.write(b"1")

    tasks = []
    for i in range(args.clients):
        tasks.append(asyncio.ensure_future(client(i % 4)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    opened = time.monotonic()
    done, pending = await asyncio.wait(tasks, timeout=args.seconds)
    legit = await request(srv.port, "POST", "/invocations", (",".join(map(str, ROW)) + "\n").encode(), "text/csv")
    for t in pending:
        t.cancel()
    out = probe.report()
    out.update({"clients": args.clients, "ended_by_server": ended, "still_open_after_s": len(pending),
                "held_s": round(time.monotonic() - opened, 1), "legit_invocation_meanwhile": legit[0],
                "server_rss_mb": srv.status("VmRSS")})
    return out, out["ping_max_ms"] <= 1000 and out["ping_failures"] == 0


def bodies(limit):
    """Maximum-size bodies (just under `limit` bytes) of small numbers."""
    row = [str(i % 10) for i in range(29)]
    csv_line = ",".join(row) + "\n"
    json_row = "[" + ",".join(row) + "]"
    n = (limit - 2) // (len(json_row) + 1)
    return {
        "json": ("application/json", ("[" + ",".join([json_row] * n) + "]").encode()),
        "csv": ("text/csv", (csv_line * ((limit - 1) // len(csv_line))).encode()),
        "jsonlines": ("application/jsonlines", ((json_row + "\n") * ((limit - 1) // (len(json_row) + 1))).encode()),
    }


async def memory(args, srv):
    probe = Prober(srv.port)
    out, ok = {"rss_start_mb": srv.status("VmRSS")}, True
    for name, (ctype, body) in bodies(args.max_body).items():
        if name not in args.formats.split(","):
            continue
        t = time.monotonic()
        results = await asyncio.gather(*[request(srv.port, "POST", "/invocations", body, ctype, timeout=120)
                                         for _ in range(32)], return_exceptions=True)
        statuses = {}
        for r in results:
            k = r[0] if isinstance(r, tuple) else type(r).__name__
            statuses[k] = statuses.get(k, 0) + 1
        out[name] = {"body_bytes": len(body), "statuses": statuses, "seconds": round(time.monotonic() - t, 2),
                     "peak_rss_mb_so_far": srv.status("VmHWM")}
        ok &= set(statuses) <= {200, 503}
    out.update(probe.report())
    out["peak_rss_mb"] = srv.status("VmHWM")
    out["rss_end_mb"] = srv.status("VmRSS")
    ok &= out["peak_rss_mb"] <= 512 and out["ping_max_ms"] <= 1000 and out["ping_failures"] == 0
    return out, ok


async def soak(args, srv):
    single = json.dumps(ROW).encode()
    batch = ("".join(",".join(map(str, ROW)) + "\n" for _ in range(1000))).encode()
    bad = [b'[1,2,"x"]', b"[[1e999]]", b"{", b"[" + b",".join([b"1"] * 30) + b"]"]
    phases = {
        "single rows": lambda rng: (single, "application/json", {200}),
        "1000-row batches": lambda rng: (batch, "text/csv", {200}),
        "10% bad input": lambda rng: (rng.choice(bad), "application/json", {400}) if rng.random() < 0.1
        else (single, "application/json", {200}),
    }
    out, ok = {}, True
    for name, pick in phases.items():
        probe = Prober(srv.port)
        rss_start, counts, unexpected = srv.status("VmRSS"), {}, {}
        end = time.monotonic() + args.seconds

        async def conn_loop(seed):
            rng, conn = random.Random(seed), None
            while time.monotonic() < end:
                body, ctype, want = pick(rng)
                try:
                    status, _, conn = await request(srv.port, "POST", "/invocations", body, ctype, conn)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                    status, conn = type(e).__name__, None
                counts[status] = counts.get(status, 0) + 1
                if status not in want:
                    unexpected[status] = unexpected.get(status, 0) + 1

        await asyncio.gather(*[conn_loop(i) for i in range(64)])
        res = probe.report()
        res.update({"requests": sum(counts.values()), "per_s": round(sum(counts.values()) / args.seconds),
                    "statuses": counts, "unexpected": unexpected, "rss_start_mb": rss_start,
                    "rss_end_mb": srv.status("VmRSS")})
        out[name] = res
        ok &= not unexpected and res["ping_failures"] == 0
    out["peak_rss_mb"] = srv.status("VmHWM")
    return out, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["slow", "memory", "soak"])
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/ccfraud/target"))
    ap.add_argument("--bin", default=f"{target}/release/ccfraud")
    ap.add_argument("--ml-root", help="ml-root with a trained model/ (default: train one)")
    ap.add_argument("--seconds", type=float, help="slow: how long clients are held (20); soak: per phase (60)")
    ap.add_argument("--clients", type=int, default=5000, help="slow: how many clients (5000)")
    ap.add_argument("--max-body", type=int, default=6 * 1024 * 1024, help="memory: body size (6 MiB)")
    ap.add_argument("--formats", default="json,csv,jsonlines", help="memory: which formats (all three)")
    ap.add_argument("flags", nargs="*", help="extra `ccfraud serve` flags (after --)")
    args = ap.parse_args()
    args.seconds = args.seconds or {"slow": 20, "soak": 60}.get(args.mode, 0)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.ml_root
        if not root:
            root = f"{tmp}/ml"
            train(args.bin, root)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        srv = Server(args.bin, root, args.flags)
        try:
            out, ok = loop.run_until_complete(globals()[args.mode](args, srv))
        finally:
            code = srv.stop()
        out["server_exit"] = code
        print(json.dumps(out, indent=2))
        sys.exit(0 if ok and code == 0 else 1)


if __name__ == "__main__":
    main()

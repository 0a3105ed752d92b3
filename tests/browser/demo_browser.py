"""Real-browser test of `ccfraud demo` against a real `ccfraud serve`.

Headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
loads the demo page, picks the lab's example fraud, clicks Predict and must
see a fraud score of 90 % or more and the alert banner; a normal example must
show no banner. Alerts must reach the JSON-lines sink and the webhook, with
no transaction values in them. Screenshots are saved as test artifacts.

    python tests/browser/demo_browser.py --bin PATH --ml-root DIR --artifacts DIR
Last line: "N passed, M failed"; exit 1 on any failure.
"""
import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} - {name}{': ' + str(detail) if detail else ''}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except Exception:
            time.sleep(0.05)
    return False


class Hook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        Hook.received.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--ml-root", required=True)
    ap.add_argument("--artifacts", required=True)
    args = ap.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ccfraud-demo-")
    alert_log = os.path.join(work, "alerts.jsonl")

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()

    api_port, demo_port = free_port(), free_port()
    env = dict(os.environ, CCFRAUD_LOG="warn")
    serve = subprocess.Popen([args.bin, "serve", "--ml-root", args.ml_root, "--host", "127.0.0.1", "--port", str(api_port)], env=env)
    demo = subprocess.Popen(
        [args.bin, "demo", "--host", "127.0.0.1", "--port", str(demo_port),
         "--api-url", f"http://127.0.0.1:{api_port}/invocations",
         "--alert-log", alert_log, "--alert-webhook", f"http://127.0.0.1:{hook.server_port}/hook"],
        env=env,
    )
    driver = None
    try:
        check("serve answers /ping", wait_http(f"http://127.0.0.1:{api_port}/ping"))
        check("demo page is served", wait_http(f"http://127.0.0.1:{demo_port}/"))
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,900"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        driver.get(f"http://127.0.0.1:{demo_port}/")
        wait = WebDriverWait(driver, 15)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "example")).options) > 10)
        options = Select(driver.find_element(By.ID, "example")).options
        check("at least 10 fraud and 5 normal examples",
              sum("FRAUD" in o.text for o in options) >= 10 and sum(o.text.startswith("normal") for o in options) >= 5)

        def predict(example_id):
            driver.execute_script("delete document.body.dataset.fraudScore")
            Select(driver.find_element(By.ID, "example")).select_by_value(example_id)
            driver.find_element(By.ID, "predict").click()
            wait.until(lambda d: d.execute_script("return document.body.dataset.fraudScore") is not None)
            score = float(driver.execute_script("return document.body.dataset.fraudScore"))
            banner = driver.find_element(By.ID, "alert").is_displayed()
            fraud_pct = driver.find_element(By.ID, "fraud-pct").text
            return score, banner, fraud_pct

        score, banner, pct = predict("lab-fraud")
        driver.save_screenshot(os.path.join(args.artifacts, "demo-fraud.png"))
        check("lab example fraud scores >= 90 %", score >= 0.9 and float(pct.rstrip("%")) >= 90.0, f"{pct}")
        check("fraud shows the alert banner", banner)

        score, banner, pct = predict("test-normal-1")
        driver.save_screenshot(os.path.join(args.artifacts, "demo-normal.png"))
        check("normal example scores low", score < 0.5, pct)
        check("normal shows no banner", not banner)

        deadline = time.time() + 5
        while time.time() < deadline and not (os.path.exists(alert_log) and Hook.received):
            time.sleep(0.05)
        lines = open(alert_log).read().splitlines() if os.path.exists(alert_log) else []
        check("one alert line in the sink", len(lines) == 1, lines)
        if lines:
            a = json.loads(lines[0])
            check("alert has time, score, reference and no transaction values",
                  set(a) == {"time", "score", "threshold", "reference"} and a["score"] >= 0.9 and a["reference"] == "lab-fraud", a)
        check("webhook received the alert", len(Hook.received) == 1, Hook.received)
    except Exception as e:  # a crash is a failure with its reason
        detail = repr(e)
        if driver:
            driver.save_screenshot(os.path.join(args.artifacts, "demo-failure.png"))
            detail += " | page error: " + driver.find_element(By.ID, "error").text
            detail += " | console: " + repr(driver.get_log("browser"))
        check("browser run", False, detail)
    finally:
        if driver:
            driver.quit()
        for p in (serve, demo):
            p.terminate()
            p.wait(timeout=10)
        hook.shutdown()
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

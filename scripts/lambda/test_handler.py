"""Tests of scripts/lambda/handler.py against a real `ccfraud serve`.

The handler's sagemaker-runtime client is a real boto3 client whose
endpoint_url is a `ccfraud serve` started here (session fixture) on port 0
(the port is read from its start-up line), serving a trained model: CCFRAUD_ML_ROOT_TRAINED when set
(an ml-root with model/ccfraud-model.json), else a small forest trained here
on the prepared data (CCFRAUD_PREPARED_DIR, /tmp/prep or
~/.cache/ccfraud/prepared: train_data.csv and test_data.csv). A second
server serves a model of another schema (a CSV with a header and a
categorical column, made here with a seeded generator and trained by
`ccfraud train`), so the function is seen to assume no columns. SNS is a real
boto3 client under botocore's Stubber, so every publish is checked against
the SNS API model. The alert rules (the model's decision, ALERT_THRESHOLD,
the 0.9 fallback for answers without decisions), the reasons in the message
and its attributes are also tested on fixed answers of the serving contract
(the endpoint client under Stubber too, which requires CustomAttributes
"explain=3" on every call); against the real server, the message must name
the server's own reasons, and the lab's own Lambda (tests/lab_lambda.py,
unchanged) must get 200 and its score with and without explain. Every call
carries an InferenceId within botocore's model constraints, which the real
server ignores. The SAM template is linted as written and SAM-transformed,
and resolved offline for each deployment shape (instance endpoint with auto
scaling, serverless, data capture, alarms, Clarify); SageMaker Clarify's
synthetic CSV batch, built from the template's own baseline, is played
against the real server. The binary:
CCFRAUD_BIN, else $CARGO_TARGET_DIR/release/ccfraud (default
~/.cache/ccfraud/target).

Run through scripts/test-lambda.sh (venv with the pinned boto3, pytest and
cfn-lint).
"""

import base64
import contextlib
import datetime
import io
import json
import logging
import math
import os
import re
import shutil
import socket
import subprocess
import queue
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import handler  # noqa: E402

REGION = "us-east-1"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ccfraud-alerts"
ENDPOINT_NAME = "ccfraud-endpoint"
THRESHOLD = 0.9
AMOUNT_MEAN = 88.34961925093134  # src/data: the lab's standardization of Amount
AMOUNT_STD = 250.1196701352354

# The lab's example fraud transaction (LAB.md, "Invoke the endpoint"), from the
# one copy that the demo, the tests and the scripts share.
EXAMPLES = json.loads((HERE.parents[1] / "data/demo_examples.json").read_text())["examples"]
LAB_FRAUD = next(e["features"] for e in EXAMPLES if e["id"] == "lab-fraud")

CORS_KEYS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods")


# ---- the real server -------------------------------------------------------------------


def _binary():
    explicit = os.environ.get("CCFRAUD_BIN")
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/ccfraud/target")
    path = Path(explicit) if explicit else Path(target) / "release/ccfraud"
    # The binary may be being rebuilt by cargo at this very moment: wait a little.
    deadline = time.monotonic() + 120
    while not (path.is_file() and os.access(path, os.X_OK)):
        if time.monotonic() > deadline:
            pytest.fail(f"ccfraud binary {path} not found (build it, or set CCFRAUD_BIN)")
        time.sleep(2)
    return path


def _prepared_dir():
    candidates = [os.environ.get("CCFRAUD_PREPARED_DIR"), "/tmp/prep", str(Path.home() / ".cache/ccfraud/prepared")]
    for c in candidates:
        if c and (Path(c) / "train_data.csv").is_file() and (Path(c) / "test_data.csv").is_file():
            return Path(c)
    if os.environ.get("CCFRAUD_PREPARED_DIR"):
        pytest.fail(f"CCFRAUD_PREPARED_DIR={os.environ['CCFRAUD_PREPARED_DIR']} lacks train_data.csv/test_data.csv")
    return None


@contextlib.contextmanager
def _refused_port():
    """A loopback port that refuses connections for the block's duration:
    bound (so nothing else can take it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _post_raw(url, data, content_type="application/json"):
    """POSTs bytes to the server directly: (status, JSON answer)."""
    req = urllib.request.Request(url + "/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


EXPLAIN_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


def _post(url, doc, explain=None):
    """POSTs `doc` to the server directly; with `explain`, asks for that many
    reasons as the function does (the SageMaker custom-attributes header)."""
    headers = {"Content-Type": "application/json"}
    if explain is not None:
        headers[EXPLAIN_HEADER] = f"explain={explain}"
    req = urllib.request.Request(url + "/invocations", data=json.dumps(doc).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _scores(answer):
    return [c["classes"][1]["score"] for c in answer["result"]["classifications"]]


@pytest.fixture(scope="session")
def ccfraud_bin():
    return _binary()


@pytest.fixture(scope="session")
def ml_root(ccfraud_bin, tmp_path_factory):
    trained = os.environ.get("CCFRAUD_ML_ROOT_TRAINED")
    if trained:
        root = Path(trained)
        if not (root / "model/ccfraud-model.json").is_file():
            pytest.fail(f"CCFRAUD_ML_ROOT_TRAINED={trained} has no model/ccfraud-model.json")
        return root
    prep = _prepared_dir()
    if prep is None:
        pytest.fail("no prepared data: set CCFRAUD_PREPARED_DIR (scripts/test-lambda.sh prepares it)")
    root = tmp_path_factory.mktemp("ml")
    for channel, name in (("train", "train_data.csv"), ("test", "test_data.csv")):
        (root / "input/data" / channel).mkdir(parents=True)
        (root / "input/data" / channel / name).symlink_to(prep / name)
    return _train(ccfraud_bin, root, {"model": "forest", "n_trees": "20"})


def _train(ccfraud_bin, root, hyperparameters):
    """`ccfraud train` on the ml-root's channels with these hyperparameters."""
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
    run = subprocess.run(
        [str(ccfraud_bin), "train", "--ml-root", str(root)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"ccfraud train failed:\n{run.stdout}\n{run.stderr}"
    return root


@pytest.fixture(scope="session")
def server_url(ccfraud_bin, ml_root, tmp_path_factory):
    with _serving(ccfraud_bin, ml_root, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


@contextlib.contextmanager
def _serving(ccfraud_bin, ml_root, log_path):
    """A real `ccfraud serve` of `ml_root` on a free loopback port: its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCFRAUD_", "SAGEMAKER_", "AWS_"))}
    env["CCFRAUD_LOG"] = "info"
    proc = subprocess.Popen(
        [str(ccfraud_bin), "serve", "--ml-root", str(ml_root), "--host", "127.0.0.1", "--port", "0",
         "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    # The start-up line names the port ("... on 127.0.0.1:PORT ..."); every line
    # goes to serve.log, read on a thread so the server never blocks on the pipe.
    found = queue.Queue()

    def drain():
        with log_path.open("w") as log:
            for line in proc.stderr:
                log.write(line)
                log.flush()
                m = re.search(r" on 127\.0\.0\.1:(\d+)", line)
                if m:
                    found.put(int(m.group(1)))
        found.put(None)  # the server closed stderr: it exited

    threading.Thread(target=drain, daemon=True).start()
    try:
        try:
            port = found.get(timeout=60)
        except queue.Empty:
            pytest.fail(f"ccfraud serve printed no start-up line within 60 s; see {log_path}")
        if port is None:
            pytest.fail(f"ccfraud serve exited with {proc.wait()} before starting; see {log_path}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _test_csv(ml_root):
    for path in (ml_root / "input/data/test/test_data.csv",
                 *((p / "test_data.csv") for p in [_prepared_dir()] if p)):
        if path.is_file():
            return path
    pytest.fail("no test_data.csv to take normal and fraud transactions from")


@pytest.fixture(scope="session")
def transactions(ml_root, server_url):
    """Real transactions from the test CSV (29 features + label), scored by the server:
    a normal one scoring low and a second fraud (besides the lab's) at or above THRESHOLD."""
    normals, frauds = [], []
    with _test_csv(ml_root).open() as f:
        for line in f:
            cells = line.strip().split(",")
            if len(cells) != 30:
                continue
            row, label = [float(c) for c in cells[:29]], float(cells[29])
            if label == 1:
                frauds.append(row)
            elif len(normals) < 50:
                normals.append(row)
    assert normals and frauds, "test CSV lacks normal or fraud rows"
    normal_scores = _scores(_post(server_url, normals))
    normal = normals[min(range(len(normals)), key=lambda i: normal_scores[i])]
    fraud_scores = _scores(_post(server_url, frauds))
    lab_score = _scores(_post(server_url, LAB_FRAUD))[0]
    assert lab_score >= THRESHOLD, f"the model scores the lab's fraud {lab_score:.4f} < {THRESHOLD}"
    assert _scores(_post(server_url, normal))[0] < THRESHOLD
    # A real fraud of the test CSV that the model flags; the lab's again when
    # none is (a weak model, or a test CSV that is not the real data).
    high = [r for r, s in zip(frauds, fraud_scores) if s >= THRESHOLD]
    return {"normal": normal, "fraud2": high[0] if high else list(LAB_FRAUD), "lab_score": lab_score}


# ---- clients and environment -----------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def aws_isolation(tmp_path_factory):
    """Dummy credentials; no shared config, instance metadata or real AWS."""
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                mp.delenv(k)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


def _sagemaker_client(url):
    return boto3.client(
        "sagemaker-runtime", region_name=REGION, endpoint_url=url,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30),
    )


class Recorder:
    """Counts calls of one operation of a client (before Stubber sees them)."""

    def __init__(self, client, event):
        self.calls = []
        self.client, self.event = client, event
        client.meta.events.register(event, self, unique_id=f"recorder-{id(self)}")

    def __call__(self, params, **_):
        self.calls.append(dict(params))

    def close(self):
        self.client.meta.events.unregister(self.event, unique_id=f"recorder-{id(self)}")


@pytest.fixture(scope="session")
def sm_client(server_url):
    return _sagemaker_client(server_url)


@pytest.fixture
def invoked(sm_client):
    rec = Recorder(sm_client, "provide-client-params.sagemaker-runtime.InvokeEndpoint")
    yield rec.calls
    rec.close()


@pytest.fixture
def sns():
    client = boto3.client("sns", region_name=REGION)
    rec = Recorder(client, "provide-client-params.sns.Publish")
    with Stubber(client) as stub:
        stub.published = rec.calls
        yield stub
    rec.close()


@pytest.fixture(autouse=True)
def lambda_env(monkeypatch, request):
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT_NAME)
    monkeypatch.setenv("ALERT_THRESHOLD", str(THRESHOLD))
    monkeypatch.setenv("SNS_TOPIC_ARN", TOPIC_ARN)
    for k in ("CORS_ORIGIN", "INVOKE_TIMEOUT_SECONDS"):
        monkeypatch.delenv(k, raising=False)
    yield
    handler.reset_clients()


@pytest.fixture
def wired(sm_client, sns):
    """The handler with the real endpoint client and the stubbed SNS client."""
    handler.set_clients(sagemaker_runtime=sm_client, sns=sns.client)
    return sns


def expect_publish(stub, n):
    for i in range(n):
        stub.add_response(
            "publish", {"MessageId": f"msg-{i}"},
            expected_params={"TopicArn": TOPIC_ARN, "Subject": handler.ALERT_SUBJECT, "Message": ANY,
                             "MessageAttributes": ANY},
        )


def event(body, request_id="req-1", b64=False, method="POST"):
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    if b64 and body is not None:
        body = base64.b64encode(body.encode()).decode()
    return {
        "resource": "/predict", "path": "/predict", "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"requestId": request_id, "stage": "prod"},
        "body": body, "isBase64Encoded": b64,
    }


def check_cors(resp, origin="*"):
    for k in CORS_KEYS:
        assert resp["headers"].get(k), f"missing {k}: {resp['headers']}"
    assert resp["headers"]["Access-Control-Allow-Origin"] == origin
    assert "POST" in resp["headers"]["Access-Control-Allow-Methods"]
    assert "Content-Type" in resp["headers"]["Access-Control-Allow-Headers"]


def ok_scores(resp, n):
    assert resp["statusCode"] == 200, resp
    check_cors(resp)
    assert resp["headers"]["Content-Type"] == "application/json"
    scores = _scores(json.loads(resp["body"]))
    assert len(scores) == n
    return scores


def bad(resp, status=400):
    assert resp["statusCode"] == status, resp
    check_cors(resp)
    doc = json.loads(resp["body"])
    assert isinstance(doc["error"], str) and doc["error"]
    return doc


def assert_no_features(message, rows):
    for row in rows:
        for v in row:
            for text in {repr(v), f"{v:.6g}", f"{v:.5f}", f"{abs(v):.5f}"}:
                assert text not in message, f"feature value {text} leaked into the alert:\n{message}"
    assert "[" not in message and "{" not in message


# ---- alerts ----------------------------------------------------------------------------


def test_lab_fraud_alerts_exactly_once(wired, transactions, server_url):
    expect_publish(wired, 1)
    resp = handler.lambda_handler(event(LAB_FRAUD), None)
    (score,) = ok_scores(resp, 1)
    assert score >= THRESHOLD
    # passed through unchanged: the same answer the server gives directly to the same ask
    assert json.loads(resp["body"]) == _post(server_url, LAB_FRAUD, explain=3)
    wired.assert_no_pending_responses()
    assert len(wired.published) == 1
    msg = wired.published[0]
    assert msg["TopicArn"] == TOPIC_ARN and msg["Subject"]
    text = msg["Message"]
    assert "req-1#0" in text
    assert f"{score:.4f}" in text
    when = re.search(r"Time \(UTC\): (\S+)", text).group(1)
    parsed = datetime.datetime.fromisoformat(when)
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - parsed).total_seconds()) < 120
    assert_no_features(text, [LAB_FRAUD])


def test_normal_transaction_publishes_nothing(wired, transactions, caplog):
    caplog.set_level(logging.WARNING, logger="handler")
    resp = handler.lambda_handler(event(transactions["normal"]), None)
    (score,) = ok_scores(resp, 1)
    assert score < THRESHOLD
    assert wired.published == []
    assert not caplog.records


def test_batch_of_two_frauds_and_one_normal_publishes_twice(wired, transactions):
    expect_publish(wired, 2)
    batch = [LAB_FRAUD, transactions["normal"], transactions["fraud2"]]
    resp = handler.lambda_handler(event(batch, request_id="batch-7"), None)
    scores = ok_scores(resp, 3)
    assert scores[0] >= THRESHOLD and scores[2] >= THRESHOLD and scores[1] < THRESHOLD
    wired.assert_no_pending_responses()
    assert len(wired.published) == 2
    refs = [re.search(r"reference: (\S+)", m["Message"]).group(1) for m in wired.published]
    assert refs == ["batch-7#0", "batch-7#2"]
    for m in wired.published:
        assert_no_features(m["Message"], batch)


def test_sns_failure_is_logged_and_answer_is_still_200(wired, transactions, caplog):
    wired.add_client_error("publish", service_error_code="InternalError", service_message="boom", http_status_code=500)
    resp = handler.lambda_handler(event(LAB_FRAUD), None)
    (score,) = ok_scores(resp, 1)
    assert score >= THRESHOLD
    wired.assert_no_pending_responses()
    assert len(wired.published) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "handler"]
    assert errors and "SNS publish failed" in errors[0].getMessage()
    assert_no_features(caplog.text, [LAB_FRAUD])


def test_one_failed_publish_does_not_stop_the_others(wired, transactions):
    wired.add_client_error("publish", service_error_code="Throttling", http_status_code=400)
    expect_publish(wired, 1)
    resp = handler.lambda_handler(event([LAB_FRAUD, transactions["fraud2"]]), None)
    ok_scores(resp, 2)
    wired.assert_no_pending_responses()
    assert len(wired.published) == 2


def test_no_topic_no_alert(wired, transactions, monkeypatch):
    monkeypatch.delenv("SNS_TOPIC_ARN")
    resp = handler.lambda_handler(event(LAB_FRAUD), None)
    assert ok_scores(resp, 1)[0] >= THRESHOLD
    assert wired.published == []


def test_threshold_from_environment(wired, transactions, monkeypatch):
    monkeypatch.setenv("ALERT_THRESHOLD", "1")  # nothing scores >= 1.0 short of certainty
    resp = handler.lambda_handler(event(LAB_FRAUD), None)
    if ok_scores(resp, 1)[0] < 1.0:
        assert wired.published == []
    monkeypatch.setenv("ALERT_THRESHOLD", "0")  # everything alerts
    expect_publish(wired, 2)
    ok_scores(handler.lambda_handler(event([transactions["normal"], transactions["normal"]]), None), 2)
    wired.assert_no_pending_responses()


def test_reference_without_request_id_is_a_feature_hash(wired, transactions):
    expect_publish(wired, 1)
    ev = event(LAB_FRAUD)
    del ev["requestContext"]
    ok_scores(handler.lambda_handler(ev, None), 1)
    ref = re.search(r"reference: (\S+)", wired.published[0]["Message"]).group(1)
    assert re.fullmatch(r"sha256:[0-9a-f]{16}#0", ref)
    assert ref == handler.transaction_reference(None, 0, ev["body"].encode())
    assert_no_features(wired.published[0]["Message"], [LAB_FRAUD])


# ---- decisions, reasons and message attributes (endpoint stubbed) -----------------------
#
# The endpoint's answer is fixed here (botocore's Stubber on a real
# sagemaker-runtime client, every call checked against the API model and
# against the exact parameters the function must send, CustomAttributes
# included), so each alert rule is seen on answers chosen to tell the rules
# apart: a "review" below 0.9, an "approve" above it, an older answer with no
# decisions at all.


def endpoint_answer(scores, actions=None, reasons=None, model="gbdt"):
    """An answer of the serving contract: classifications, and the sibling keys when given."""
    result = {"classifications": [{"classes": [{"label": "0", "score": 1 - s}, {"label": "1", "score": s}]}
                                  for s in scores]}
    if model is not None:
        result["model"] = model
    if actions is not None:
        result["decisions"] = [{"action": a, "expected_loss": round(s * 120.0, 4)} for a, s in zip(actions, scores)]
    if reasons is not None:
        result["explanations"] = [
            {"space": "log_odds", "base": -6.1, "value": -6.1 + sum(r["contribution"] for r in rs), "reasons": rs}
            for rs in reasons
        ]
    return {"result": result}


@contextlib.contextmanager
def stubbed_endpoint(*answers):
    """The handler's sagemaker-runtime client answering `answers` in turn, each
    call required to ask exactly what the function asks (explain=3)."""
    client = _sagemaker_client("http://127.0.0.1:9")  # never reached: stubbed
    with Stubber(client) as stub:
        for a in answers:
            payload = json.dumps(a).encode()
            stub.add_response(
                "invoke_endpoint",
                {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json"},
                expected_params={"EndpointName": ENDPOINT_NAME, "ContentType": "application/json",
                                 "Accept": "application/json", "CustomAttributes": "explain=3",
                                 "InferenceId": ANY, "Body": ANY},
            )
        yield client
        stub.assert_no_pending_responses()


def alerted_rows(messages):
    return [int(re.search(r"reference: \S+#(\d+)", m["Message"]).group(1)) for m in messages]


def reasons_line(message):
    return re.search(r"^Top reasons: (.*)$", message, re.M).group(1)


def test_every_call_asks_for_explain_3(sns):
    with stubbed_endpoint(endpoint_answer([0.1])) as client:  # the Stubber checks CustomAttributes
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 1)
    assert handler.CUSTOM_ATTRIBUTES == "explain=3"


def test_alerts_follow_the_models_decision_without_alert_threshold(sns, monkeypatch):
    monkeypatch.delenv("ALERT_THRESHOLD")
    # a model whose decision threshold is low (0.3, say, chosen by cost) ...
    low = endpoint_answer([0.35, 0.2], actions=["review", "approve"])
    # ... and one whose threshold is above 0.9
    high = endpoint_answer([0.95, 0.98], actions=["approve", "review"])
    expect_publish(sns, 2)
    with stubbed_endpoint(low, high) as client:
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        resp = handler.lambda_handler(event([LAB_FRAUD, LAB_FRAUD], request_id="low"), None)
        assert json.loads(resp["body"]) == low  # passed through, sibling keys and all
        ok_scores(resp, 2)
        ok_scores(handler.lambda_handler(event([LAB_FRAUD, LAB_FRAUD], request_id="high"), None), 2)
    sns.assert_no_pending_responses()
    refs = [re.search(r"reference: (\S+)", m["Message"]).group(1) for m in sns.published]
    assert refs == ["low#0", "high#1"]  # 0.35 alerts, 0.95 does not: the decision rules, not 0.9
    assert all("Alerted on: the model's decision: review" in m["Message"] for m in sns.published)


def test_alert_threshold_overrides_the_models_decision(sns, monkeypatch):
    answer = endpoint_answer([0.35, 0.6, 0.2], actions=["review", "review", "approve"])
    monkeypatch.setenv("ALERT_THRESHOLD", "0.5")
    expect_publish(sns, 1)
    with stubbed_endpoint(answer, answer) as client:
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 3)
        assert alerted_rows(sns.published) == [1]  # the review at 0.35 is below 0.5: no alert
        assert "Alerted on: score at or above ALERT_THRESHOLD 0.5" in sns.published[0]["Message"]
        monkeypatch.setenv("ALERT_THRESHOLD", "0.1")
        expect_publish(sns, 3)
        ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 3)
        assert alerted_rows(sns.published[1:]) == [0, 1, 2]  # the approve at 0.2 alerts too
    sns.assert_no_pending_responses()


def test_blank_alert_threshold_means_the_models_decision(sns, monkeypatch):
    monkeypatch.setenv("ALERT_THRESHOLD", "  ")  # the template's default is ""
    expect_publish(sns, 1)
    with stubbed_endpoint(endpoint_answer([0.4, 0.95], actions=["review", "approve"])) as client:
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 2)
    assert alerted_rows(sns.published) == [0]


def test_answer_without_decisions_falls_back_to_0_9(sns, monkeypatch, caplog):
    monkeypatch.delenv("ALERT_THRESHOLD")
    old = endpoint_answer([0.89, 0.9, 0.95, 0.1], model=None)  # a container from before decisions
    wrong_length = endpoint_answer([0.5, 0.92], model="forest")
    wrong_length["result"]["decisions"] = [{"action": "review"}]
    expect_publish(sns, 3)
    with stubbed_endpoint(old, wrong_length) as client:
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        resp = handler.lambda_handler(event(LAB_FRAUD), None)
        assert json.loads(resp["body"]) == old
        assert alerted_rows(sns.published) == [1, 2]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # an old answer is normal
        ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 2)
        assert alerted_rows(sns.published[2:]) == [1]
        assert "decisions are not 2 approve/review objects" in caplog.text  # a bad one is not
    for m in sns.published:
        assert "Alerted on: score at or above 0.9 (the endpoint gave no decision)" in m["Message"]
        assert reasons_line(m["Message"]) == "none given by the endpoint"
    assert [m["MessageAttributes"]["model"]["StringValue"] for m in sns.published] == ["unknown", "unknown", "forest"]


def test_message_names_the_top_3_reasons_and_never_values(sns, monkeypatch):
    monkeypatch.delenv("ALERT_THRESHOLD")
    reasons = [  # not in order of strength, five of them, values of every kind
        {"feature": "V4", "value": 4.1234, "contribution": 0.9},
        {"feature": "V12", "value": -3.0417, "contribution": -1.4},
        {"feature": "country", "value": "FR", "contribution": 0.0},
        {"feature": "V14", "value": -5.2137, "contribution": 2.1},
        {"feature": "hour", "value": None, "contribution": -0.3},
    ]
    hostile = [{"feature": "Amount\nFraud score: 0.0000", "value": 9999.99, "contribution": 1.5}]
    expect_publish(sns, 2)
    with stubbed_endpoint(endpoint_answer([0.97, 0.93], actions=["review", "review"],
                                          reasons=[reasons, hostile])) as client:
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 2)
    first, second = (m["Message"] for m in sns.published)
    assert reasons_line(first) == "V14 (towards fraud), V12 (away from fraud), V4 (towards fraud)"
    assert reasons_line(second) == "Amount?Fraud score: 0.0000 (towards fraud)"  # one line, no forged field
    assert len(re.findall(r"^Fraud score:", second, re.M)) == 1
    for text in (first, second):
        for r in reasons + hostile:
            if r["value"] is not None:
                assert str(r["value"]) not in text
        assert_no_features(text, [LAB_FRAUD])
    assert "country" not in first and "hour" not in first  # a zero and the fifth are left out


def test_message_attributes_severity_and_model(sns, monkeypatch):
    monkeypatch.setenv("ALERT_THRESHOLD", "0.5")
    for score, severity in ((0.95, "high"), (0.9, "high"), (0.6, "medium")):
        sns.add_response("publish", {"MessageId": "m"}, expected_params={
            "TopicArn": TOPIC_ARN, "Subject": handler.ALERT_SUBJECT, "Message": ANY,
            "MessageAttributes": {"severity": {"DataType": "String", "StringValue": severity},
                                  "model": {"DataType": "String", "StringValue": "blend"}}})
    with stubbed_endpoint(endpoint_answer([0.95, 0.9, 0.6, 0.3], model="blend")) as client:
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 4)
    sns.assert_no_pending_responses()  # the Stubber checked each message's attributes exactly
    assert len(sns.published) == 3


def test_template_alert_threshold_defaults_to_the_models_decision():
    from cfnlint.decode import decode

    tpl, matches = decode(str(HERE / "template.yaml"))
    assert not matches
    param = tpl["Parameters"]["AlertThreshold"]
    assert param["Default"] == "" and "decision" in param["Description"]
    pattern = re.compile(param["AllowedPattern"])
    for ok in ("", "0", "0.9", "1", "1.0", ".5"):
        assert pattern.fullmatch(ok), ok
    for bad in ("1.5", "-0.1", "high", "2", "0.9x"):
        assert not pattern.fullmatch(bad), bad


# ---- reasons from the real server ------------------------------------------------------


def test_real_alert_names_the_servers_reasons(wired, invoked, server_url, monkeypatch):
    monkeypatch.delenv("ALERT_THRESHOLD")
    direct = _post(server_url, LAB_FRAUD, explain=3)["result"]
    assert {"model", "decisions", "explanations"} <= set(direct), f"the server does not explain: {direct}"
    assert direct["decisions"][0]["action"] == "review", direct["decisions"]
    reasons = direct["explanations"][0]["reasons"]
    assert 1 <= len(reasons) <= 3, reasons
    expect_publish(wired, 1)
    resp = handler.lambda_handler(event(LAB_FRAUD), None)
    assert json.loads(resp["body"])["result"] == direct
    assert invoked[0]["CustomAttributes"] == "explain=3"
    wired.assert_no_pending_responses()
    (msg,) = wired.published
    strongest = sorted((r for r in reasons if r["contribution"] != 0), key=lambda r: -abs(r["contribution"]))
    expected = ", ".join(f"{r['feature']} ({'towards' if r['contribution'] > 0 else 'away from'} fraud)"
                         for r in strongest)
    assert reasons_line(msg["Message"]) == expected
    assert "Alerted on: the model's decision: review" in msg["Message"]
    for r in reasons:
        assert isinstance(r["value"], (int, float))
        assert_no_features(msg["Message"], [[r["value"]]])
    assert_no_features(msg["Message"], [LAB_FRAUD])
    score = _scores({"result": direct})[0]
    assert msg["MessageAttributes"] == {
        "severity": {"DataType": "String", "StringValue": "high" if score >= 0.9 else "medium"},
        "model": {"DataType": "String", "StringValue": direct["model"]},
    }


def test_real_normal_transaction_is_approved_without_threshold(wired, transactions, server_url, monkeypatch):
    monkeypatch.delenv("ALERT_THRESHOLD")
    direct = _post(server_url, transactions["normal"], explain=3)["result"]
    assert direct["decisions"][0]["action"] == "approve", direct
    ok_scores(handler.lambda_handler(event(transactions["normal"]), None), 1)
    assert wired.published == []


# The lab's Lambda (tests/lab_lambda.py, its code verbatim) asks nothing of
# explain; run again with the header added to its client's every call (a
# handler on boto3's default session, copied into the client the lab's code
# creates), it must still get 200 and its score from the lab's parsing path.
ASK_EXPLAIN = """
import runpy, sys, boto3
boto3.setup_default_session()
def ask(request, **_):
    request.headers["X-Amzn-SageMaker-Custom-Attributes"] = "explain=3"
boto3.DEFAULT_SESSION.events.register("before-sign.sagemaker-runtime.InvokeEndpoint", ask)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_lab_lambda_unchanged_with_and_without_explain(server_url):
    lab = str(HERE.parents[1] / "tests/lab_lambda.py")
    runs = {
        "plain": subprocess.run([sys.executable, lab, server_url], capture_output=True, text=True, timeout=120),
        "explain": subprocess.run([sys.executable, "-c", ASK_EXPLAIN, lab, server_url],
                                  capture_output=True, text=True, timeout=120),
    }
    scores = {}
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}: the lab's Lambda failed:\n{run.stdout}\n{run.stderr}"
        scores[name] = float(re.search(r"lab lambda fraud score: ([0-9.]+)", run.stdout).group(1))
        assert scores[name] >= 0.9
    # the lab's code prints the endpoint's answer: the sibling keys only when asked
    assert "'explanations'" not in runs["plain"].stdout and "'decisions'" not in runs["plain"].stdout
    assert "'explanations'" in runs["explain"].stdout and "'decisions'" in runs["explain"].stdout
    assert scores["plain"] == scores["explain"]


# ---- request formats -------------------------------------------------------------------


def named(row, raw_amount=True):
    obj = {f"V{i + 1}": v for i, v in enumerate(row[:28])}
    if raw_amount:
        obj["Amount"] = row[28] * AMOUNT_STD + AMOUNT_MEAN
    else:
        obj["Amount_std"] = row[28]
    return obj


def test_named_feature_objects(wired, transactions):
    expect_publish(wired, 1)
    (direct,) = ok_scores(handler.lambda_handler(event(LAB_FRAUD), None), 1)
    (by_name,) = ok_scores(handler.lambda_handler(event(named(LAB_FRAUD)), None), 1)
    assert math.isclose(direct, by_name, abs_tol=1e-4)
    wired.assert_no_pending_responses()


def test_instances_wrapper_and_list_of_objects(wired, transactions):
    normal = transactions["normal"]
    ok_scores(handler.lambda_handler(event({"instances": [normal, normal]}), None), 2)
    docs = [dict(named(normal), Time=12.0), named(normal, raw_amount=False)]
    ok_scores(handler.lambda_handler(event(docs), None), 2)
    assert wired.published == []


def test_base64_encoded_body(wired, transactions):
    expect_publish(wired, 1)
    resp = handler.lambda_handler(event([LAB_FRAUD, transactions["normal"]], b64=True), None)
    ok_scores(resp, 2)
    wired.assert_no_pending_responses()


def test_http_api_v2_event(wired, transactions):
    ev = {
        "version": "2.0", "routeKey": "POST /predict", "rawPath": "/predict",
        "requestContext": {"requestId": "v2-req", "http": {"method": "POST", "path": "/predict"}},
        "body": json.dumps(transactions["normal"]), "isBase64Encoded": False,
    }
    ok_scores(handler.lambda_handler(ev, None), 1)


# ---- a model of another schema ---------------------------------------------------------
#
# Nothing above is the function's own assumption about columns: the lab's
# model reads the lab's 29 values. Here the same function fronts a model
# trained on a CSV with a header, a categorical column and another label:
# rows of three values, one of them a string.

OTHER_COLUMNS = ["amount", "country", "hour"]
OTHER_COUNTRIES = ["US", "US", "GB", "FR"]  # drawn with these weights


def _other_schema_csv(path, rows=3000, seed=11):
    """Seeded transactions: fraud exactly when the country is FR and the amount 400 or more."""
    rng = random.Random(seed)
    with path.open("w") as f:
        f.write("amount,country,hour,is_fraud\n")
        for _ in range(rows):
            amount, country, hour = round(rng.uniform(1, 1000), 2), rng.choice(OTHER_COUNTRIES), rng.randrange(24)
            f.write(f"{amount},{country},{hour},{int(country == 'FR' and amount >= 400)}\n")


@pytest.fixture(scope="session")
def other_server_url(ccfraud_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("ml-other")
    (root / "input/data/train").mkdir(parents=True)
    _other_schema_csv(root / "input/data/train/transactions.csv")
    # logistic regression: on this rule its scores are crisp (the forest ranks
    # it perfectly too, but its averaged leaves give FR at 900 ~0.84 < 0.9)
    _train(ccfraud_bin, root, {"model": "logistic", "label": "is_fraud",
                               "categorical": "country", "amount": "amount"})
    with _serving(ccfraud_bin, root, tmp_path_factory.mktemp("serve-other") / "serve.log") as url:
        yield url


@pytest.fixture(scope="session")
def other_sm_client(other_server_url):
    return _sagemaker_client(other_server_url)


@pytest.fixture
def other_wired(other_sm_client, sns):
    """The handler in front of the other schema's server, SNS stubbed."""
    handler.set_clients(sagemaker_runtime=other_sm_client, sns=sns.client)
    return sns


@pytest.fixture
def invoked_other(other_sm_client):
    rec = Recorder(other_sm_client, "provide-client-params.sagemaker-runtime.InvokeEndpoint")
    yield rec.calls
    rec.close()


def test_other_schema_is_served(other_server_url):
    with urllib.request.urlopen(other_server_url + "/schema", timeout=30) as r:
        schema = json.loads(r.read())
    assert [c["name"] for c in schema["columns"]] == OTHER_COLUMNS
    country = schema["columns"][1]
    assert country["kind"] == "categorical" and sorted(country["categories"]) == ["FR", "GB", "US"]
    assert schema["label"] == "is_fraud" and schema["form"] != "lab"


def test_other_schema_named_rows_alert_per_row(other_wired, other_server_url):
    batch = [
        {"amount": 900.0, "country": "FR", "hour": 3},
        {"amount": 12.5, "country": "US", "hour": 14},
        {"amount": 950.0, "country": "FR", "hour": None},  # a missing value
        {"amount": None, "country": "ZZ", "hour": 2},  # a country outside the vocabulary
    ]
    direct = _scores(_post(other_server_url, batch))
    assert direct[0] >= THRESHOLD and direct[1] < THRESHOLD, direct
    flagged = [i for i, s in enumerate(direct) if s >= THRESHOLD]
    expect_publish(other_wired, len(flagged))
    resp = handler.lambda_handler(event(batch, request_id="other-4"), None)
    scores = ok_scores(resp, 4)
    assert json.loads(resp["body"]) == _post(other_server_url, batch, explain=3)
    assert all(0.0 <= s <= 1.0 for s in scores)
    other_wired.assert_no_pending_responses()
    refs = [re.search(r"reference: (\S+)", m["Message"]).group(1) for m in other_wired.published]
    assert refs == [f"other-4#{i}" for i in flagged]
    for m in other_wired.published:  # reasons name columns, never their values
        assert not any(v in m["Message"] for v in ("FR", "ZZ", "900.0", "950.0"))


def test_other_schema_rows_in_column_order_and_big_batches(other_wired):
    expect_publish(other_wired, 2)  # FR at 900 is a fraud, named or in order
    (by_name,) = ok_scores(handler.lambda_handler(event({"amount": 900.0, "country": "FR", "hour": 3}), None), 1)
    (in_order,) = ok_scores(handler.lambda_handler(event([900.0, "FR", 3]), None), 1)
    assert math.isclose(by_name, in_order, abs_tol=1e-6) and by_name >= THRESHOLD
    assert len(other_wired.published) == 2
    rng = random.Random(5)
    rows = [[round(rng.uniform(1, 300), 2), rng.choice(["US", "GB"]), rng.randrange(24)] for _ in range(500)]
    scores = ok_scores(handler.lambda_handler(event({"instances": rows}), None), 500)
    assert max(scores) < THRESHOLD  # no FR, no alert
    assert len(other_wired.published) == 2
    other_wired.assert_no_pending_responses()


def test_other_schema_refusals_pass_through(other_wired, invoked_other, other_server_url):
    for body, column in (({"amount": 1.0, "country": "US"}, "hour"),
                         ({"amount": 1.0, "country": "US", "hour": 1, "colour": "red"}, "colour"),
                         (LAB_FRAUD, None)):
        resp = handler.lambda_handler(event(body), None)
        direct_status, direct = _post_raw(other_server_url, json.dumps(body).encode())
        assert direct_status == 400 and resp["statusCode"] == 400, resp
        assert json.loads(resp["body"]) == direct
        if column:
            assert column in direct["error"], direct
    assert len(invoked_other) == 3
    assert other_wired.published == []


# Bodies the container refuses. The function does not look inside a body: each
# reaches the endpoint once and the container's 4xx answer - status, message,
# error_type, row, field - reaches the caller as the container gave it.
NAN29 = "[" + ",".join(["NaN"] * 29) + "]"
BAD_BODIES = {
    "not-json": "this is not json",
    "three-numbers": "[1, 2, 3]",
    "nan-string": json.dumps(["NaN"] + LAB_FRAUD[1:]),
    "nan-literal": NAN29,
    "infinity": json.dumps(LAB_FRAUD[:28] + [1]).replace("1]", "1e999]"),
    "empty": "",
    "blank": "  \n ",
    "missing": None,
    "empty-list": "[]",
    "string": '"abc"',
    "number": "42",
    "booleans": json.dumps([True] * 29),
    "ragged-batch": json.dumps([LAB_FRAUD, LAB_FRAUD[:28]]),
    "thirty": json.dumps(LAB_FRAUD + [0.0]),
    "named-missing": json.dumps({"V1": 1.0}),
    "named-unknown": json.dumps(dict(named(LAB_FRAUD), Foo=1)),
    "named-both-amounts": json.dumps(dict(named(LAB_FRAUD), Amount_std=0.1)),
    "named-string-value": json.dumps(dict(named(LAB_FRAUD), V3="1.0")),
    "instances-extra-key": json.dumps({"instances": [LAB_FRAUD], "x": 1}),
    "instances-scalar": json.dumps({"instances": 5}),
    "batch-of-numbers-and-lists": json.dumps([1, [2]]),
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_container_refusals_pass_through(wired, invoked, server_url, body):
    resp = handler.lambda_handler(event(body), None)
    direct_status, direct = _post_raw(server_url, (body or "").encode())
    assert direct_status == 400, f"the container accepted a bad body: {direct}"
    assert resp["statusCode"] == direct_status, resp
    check_cors(resp)
    assert json.loads(resp["body"]) == direct
    assert direct["error_type"] == "invalid_input" and direct["error"]
    assert len(invoked) == 1, "the body goes to the endpoint once"
    assert wired.published == []


def test_container_row_and_field_reach_the_caller(wired, invoked):
    doc = bad(handler.lambda_handler(event([LAB_FRAUD, LAB_FRAUD[:28]]), None))
    assert doc["error_type"] == "invalid_input" and doc["row"] == 2
    assert "expected 29 features" in doc["error"] and "found 28" in doc["error"]
    doc = bad(handler.lambda_handler(event([named(LAB_FRAUD), dict(named(LAB_FRAUD), V3="x")]), None))
    assert doc["row"] == 2 and doc["field"] == "V3"
    assert len(invoked) == 2


def test_duplicate_keys_are_refused(wired):
    body = json.dumps(named(LAB_FRAUD))[:-1] + ', "V1": 2}'
    doc = bad(handler.lambda_handler(event(body), None))
    assert "'V1' appears twice" in doc["error"] and doc["field"] == "V1"


def test_bad_base64_is_400_and_not_sent(wired, invoked):
    ev = event("x")
    ev["body"], ev["isBase64Encoded"] = "%%% not base64 %%%", True
    assert "base64" in bad(handler.lambda_handler(ev, None))["error"]
    assert invoked == []


def test_base64_of_bad_utf8_reaches_the_container(wired, invoked):
    ev = event("x")
    ev["body"], ev["isBase64Encoded"] = base64.b64encode(b"\xff\xfe[1]").decode(), True
    assert "UTF-8" in bad(handler.lambda_handler(ev, None))["error"]
    assert len(invoked) == 1


def test_body_over_6_mb_is_413_and_not_sent(wired, invoked):
    row = json.dumps(LAB_FRAUD)
    body = "[" + ",".join([row] * (handler.MAX_BODY_BYTES // len(row) + 1)) + "]"
    assert len(body) > handler.MAX_BODY_BYTES
    assert bad(handler.lambda_handler(event(body), None), 413)["error_type"] == "payload_too_large"
    assert invoked == []


# ---- endpoint failures -----------------------------------------------------------------


def test_endpoint_down_is_502(sns):
    with _refused_port() as port:
        handler.set_clients(sagemaker_runtime=_sagemaker_client(f"http://127.0.0.1:{port}"), sns=sns.client)
        doc = bad(handler.lambda_handler(event(LAB_FRAUD), None), 502)
    assert doc["error_type"] == "endpoint_unreachable"
    assert sns.published == []


def test_container_415_passes_through(wired, invoked, monkeypatch):
    # Only a misconfigured function sends another Content-Type; the caller still
    # gets the container's own status and words.
    monkeypatch.setattr(handler, "CONTENT_TYPE", "application/xml")
    doc = bad(handler.lambda_handler(event(LAB_FRAUD), None), 415)
    assert doc["error_type"] == "unsupported_media_type"
    assert "application/xml" in doc["error"]
    assert len(invoked) == 1 and wired.published == []


CONTAINER_400 = {"error": "row 1: missing feature V2", "error_type": "invalid_input", "row": 1, "field": "V2"}
SAGEMAKER_ERRORS = [
    # (code, http status, modeled fields, expected answer status)
    ("ModelError", 424, {"OriginalStatusCode": 400, "OriginalMessage": json.dumps(CONTAINER_400)}, 400),
    ("ModelError", 424, {"OriginalStatusCode": 413, "OriginalMessage": "too large"}, 413),
    ("ModelError", 424, {"OriginalStatusCode": 500, "OriginalMessage": "panic"}, 502),
    ("ValidationError", 400, {}, 502),  # e.g. the endpoint does not exist: not the caller's fault
    ("ThrottlingException", 400, {}, 502),
    ("ServiceUnavailable", 503, {}, 502),
]


@pytest.mark.parametrize("code,http,fields,expected", SAGEMAKER_ERRORS,
                         ids=[f"{e[0]}-{e[2].get('OriginalStatusCode', e[1])}-{e[3]}" for e in SAGEMAKER_ERRORS])
def test_sagemaker_error_shapes(sns, code, http, fields, expected):
    client = _sagemaker_client("http://127.0.0.1:9")  # never reached: stubbed
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code=code, service_message="m",
                              http_status_code=http, modeled_fields=fields or None)
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        doc = bad(handler.lambda_handler(event(LAB_FRAUD), None), expected)
        stub.assert_no_pending_responses()
    if expected == 400:
        assert doc == CONTAINER_400
    elif expected == 413:
        assert doc["error"] == "too large"
    else:
        assert doc["error_type"] == "endpoint_error"
    assert sns.published == []


def test_unexpected_endpoint_answer_is_502(sns):
    client = _sagemaker_client("http://127.0.0.1:9")
    with Stubber(client) as stub:
        for payload in (b"not json", b'{"result": {"classifications": []}}'):
            stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(payload), len(payload)),
                                                  "ContentType": "application/json"})
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        for _ in range(2):
            assert bad(handler.lambda_handler(event(LAB_FRAUD), None), 502)["error_type"] == "bad_endpoint_response"


# ---- HTTP details ----------------------------------------------------------------------


def test_options_preflight(wired, invoked):
    resp = handler.lambda_handler(event(None, method="OPTIONS"), None)
    assert resp["statusCode"] == 204
    check_cors(resp)
    assert invoked == []


def test_cors_origin_from_environment(wired, transactions, monkeypatch):
    monkeypatch.setenv("CORS_ORIGIN", "https://shop.example.com")
    for resp in (handler.lambda_handler(event(transactions["normal"]), None),
                 handler.lambda_handler(event("nope"), None),
                 handler.lambda_handler(event(None, method="OPTIONS"), None)):
        check_cors(resp, "https://shop.example.com")
        assert resp["headers"]["Vary"] == "Origin"


def test_other_methods_are_405(wired, invoked):
    resp = handler.lambda_handler(event(None, method="GET"), None)
    assert bad(resp, 405)["error_type"] == "method_not_allowed"
    assert resp["headers"]["Allow"] == handler.ALLOW_METHODS
    assert invoked == []


def test_missing_endpoint_name_is_500(wired, monkeypatch, caplog):
    monkeypatch.delenv("ENDPOINT_NAME")
    assert bad(handler.lambda_handler(event(LAB_FRAUD), None), 500)["error_type"] == "misconfigured"
    assert "ENDPOINT_NAME" in caplog.text


@pytest.mark.parametrize("value", ["high", "1.5", "-0.1"])
def test_bad_threshold_is_500(wired, monkeypatch, value):
    monkeypatch.setenv("ALERT_THRESHOLD", value)
    bad(handler.lambda_handler(event(LAB_FRAUD), None), 500)


def test_clients_created_lazily_from_environment(server_url, transactions, monkeypatch):
    handler.reset_clients()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server_url)
    monkeypatch.delenv("SNS_TOPIC_ARN")
    ok_scores(handler.lambda_handler(event(transactions["normal"]), None), 1)
    assert handler._clients["sagemaker-runtime"] is not None
    assert handler._clients["sns"] is None  # no alert, no SNS client


# ---- the SAM template ------------------------------------------------------------------


def _cfn_lint():
    exe = Path(sys.executable).parent / "cfn-lint"
    return str(exe) if exe.exists() else shutil.which("cfn-lint")


def test_cfn_lint_passes_with_no_errors_or_warnings():
    exe = _cfn_lint()
    assert exe, "cfn-lint is not installed (scripts/test-lambda.sh installs it)"
    run = subprocess.run([exe, str(HERE / "template.yaml")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and not run.stdout.strip(), f"cfn-lint:\n{run.stdout}{run.stderr}"


def test_template_wiring():
    from cfnlint.decode import decode

    tpl, matches = decode(str(HERE / "template.yaml"))
    assert not matches
    res = tpl["Resources"]
    fn = res["EndpointInvokerFunction"]
    assert fn["Type"] == "AWS::Serverless::Function"
    props = fn["Properties"]
    assert props["CodeUri"] == "." and props["Handler"] == "handler.lambda_handler"
    assert tpl["Globals"]["Function"]["Runtime"] == "python3.12"
    env = props["Environment"]["Variables"]
    assert env["ENDPOINT_NAME"] == {"Fn::GetAtt": ["FraudEndpoint", "EndpointName"]}
    assert env["SNS_TOPIC_ARN"] == {"Ref": "AlertTopic"}
    assert env["ALERT_THRESHOLD"] == {"Ref": "AlertThreshold"}
    # least privilege: exactly two statements, each on one resource of this stack
    (policy,) = props["Policies"]
    stmts = {s["Action"]: s["Resource"] for s in policy["Statement"]}
    assert stmts == {"sagemaker:InvokeEndpoint": {"Ref": "FraudEndpoint"}, "sns:Publish": {"Ref": "AlertTopic"}}
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    # the endpoint chain
    assert res["FraudModel"]["Properties"]["PrimaryContainer"]["Image"] == {"Ref": "ImageUri"}
    assert res["FraudModel"]["Properties"]["PrimaryContainer"]["ModelDataUrl"] == {"Ref": "ModelDataUrl"}
    (variant,) = res["FraudEndpointConfig"]["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == {"Fn::If": ["IsServerless", {"Ref": "AWS::NoValue"}, {"Ref": "InstanceType"}]}
    assert tpl["Parameters"]["InstanceType"]["Default"] == "ml.m5.large"
    assert tpl["Parameters"]["EndpointType"]["Default"] == "instance"
    assert res["AlertEmailSubscription"]["Condition"] == "HasAlertEmail"
    (ev,) = props["Events"].values()
    assert ev["Properties"]["Method"].upper() == "POST"
    assert "Cors" in res[ev["Properties"]["RestApiId"]["Ref"]]["Properties"]
    assert set(tpl["Outputs"]) >= {"ApiUrl", "EndpointName", "AlertTopicArn", "AlarmTopicArn", "ClarifyEndpointName"}
    # every variable the handler reads that the stack sets is one it knows
    source = (HERE / "handler.py").read_text()
    for name in env:
        assert f'"{name}"' in source


def test_sam_transform_yields_a_valid_stack(tmp_path):
    """cfn-lint checks SAM resources against SAM's schemas without expanding
    them; run the real SAM transform (aws-sam-translator, offline) and lint
    the plain CloudFormation it produces too."""
    from cfnlint.decode import decode
    from samtranslator.translator.transform import transform

    class NoManagedPolicyLookups:
        def load(self):
            return {}

    tpl, matches = decode(str(HERE / "template.yaml"))
    assert not matches
    tpl = json.loads(json.dumps(tpl))
    # `sam build`/`sam package` replace CodeUri . with the uploaded zip's S3 URI.
    tpl["Resources"]["EndpointInvokerFunction"]["Properties"]["CodeUri"] = "s3://artifacts/handler.zip"
    params = {
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ccfraud:1.0",
        "ModelDataUrl": "s3://models/ccfraud/model.tar.gz",
        "AlertEmail": "fraud-team@example.com",
    }
    out = transform(tpl, params, NoManagedPolicyLookups())
    types = {k: v["Type"] for k, v in out["Resources"].items()}
    assert types["EndpointInvokerFunction"] == "AWS::Lambda::Function"
    assert types["FraudApi"] == "AWS::ApiGateway::RestApi"
    assert "AWS::ApiGateway::Stage" in types.values() and "AWS::Lambda::Permission" in types.values()
    assert not any(t.startswith("AWS::Serverless::") for t in types.values())
    fn = out["Resources"]["EndpointInvokerFunction"]["Properties"]
    assert fn["Runtime"] == "python3.12" and fn["Handler"] == "handler.lambda_handler"
    # the generated role holds exactly the template's two statements (plus SAM's basic logging)
    role = out["Resources"][fn["Role"]["Fn::GetAtt"][0]]["Properties"]
    (policy,) = role["Policies"]
    assert {s["Action"]: s["Resource"] for s in policy["PolicyDocument"]["Statement"]} == {
        "sagemaker:InvokeEndpoint": {"Ref": "FraudEndpoint"}, "sns:Publish": {"Ref": "AlertTopic"}}
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    # the plain CloudFormation parts pass through: conditions, rules, scaling, alarms, Clarify
    assert out["Rules"] == tpl["Rules"] and out["Conditions"] == tpl["Conditions"]
    for name in ("FraudScalableTarget", "FraudScalingPolicy", "Endpoint5xxAlarm", "ModelLatencyAlarm",
                 "ClarifyEndpointConfig", "ClarifyEndpoint"):
        assert out["Resources"][name] == tpl["Resources"][name]
    assert fn["Environment"]["Variables"]["MAX_BODY_BYTES"] == {"Fn::If": ["IsServerless", "4000000", "6291456"]}
    paths = out["Resources"]["FraudApi"]["Properties"]["Body"]["paths"]
    assert paths["/predict"]["post"]["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
    assert "options" in paths["/predict"], "CORS preflight missing"
    transformed = tmp_path / "transformed.json"
    transformed.write_text(json.dumps(out, indent=1))
    run = subprocess.run([_cfn_lint(), str(transformed)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and not run.stdout.strip(), f"cfn-lint on the transformed stack:\n{run.stdout}{run.stderr}"


# ---- InferenceId (Model Monitor's key for ground truth) ------------------------------------


def _inference_id_rule():
    """InferenceId's constraints from botocore's own sagemaker-runtime model:
    (min, max, Python regex). The pattern is translated from the model's Java
    regex, which must still be the one this translation knows."""
    model = boto3.session.Session().client("sagemaker-runtime", region_name=REGION).meta.service_model
    shape = model.operation_model("InvokeEndpoint").input_shape.members["InferenceId"]
    assert shape.serialization == {"location": "header", "name": "X-Amzn-SageMaker-Inference-Id"}
    assert shape.metadata["pattern"] == r"\A\S[\p{Print}]*\z", shape.metadata
    # \p{Print} in Java (without UNICODE_CHARACTER_CLASS) is ASCII 0x20-0x7E
    return shape.metadata["min"], shape.metadata["max"], re.compile(r"\S[\x20-\x7e]*\Z")


def _valid_inference_id(value):
    low, high, pattern = _inference_id_rule()
    return low <= len(value) <= high and pattern.match(value) is not None


class LambdaContext:
    aws_request_id = "0f3c4c8e-5f2b-4f6a-9a57-2d1c1e0b7a11"


INFERENCE_ID_CASES = [
    # (name, request id in the event, context, expected InferenceId: a string, or "hash:<prefix>")
    ("rest-api-uuid", "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", None, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
    ("http-api-v2", "JKJaXmPLvHcESHA=", None, "JKJaXmPLvHcESHA="),
    ("lambda-context", None, LambdaContext(), LambdaContext.aws_request_id),
    ("no-id", None, None, "hash:sha256:"),
    ("64-chars", "r" * 64, None, "r" * 64),
    ("65-chars", "r" * 65, None, "hash:rid-sha256:"),
    ("control-char", "req\n1", None, "hash:rid-sha256:"),
    ("non-ascii", "réq-1", None, "hash:rid-sha256:"),
    ("leading-space", " req-1", None, "hash:rid-sha256:"),
]


@pytest.mark.parametrize("rid,context,expected", [c[1:] for c in INFERENCE_ID_CASES],
                         ids=[c[0] for c in INFERENCE_ID_CASES])
def test_inference_id_is_sent_and_well_formed(sns, rid, context, expected):
    ev = event(LAB_FRAUD, request_id=rid)
    if rid is None:
        del ev["requestContext"]
    body = ev["body"].encode()
    want = handler.inference_id(rid or getattr(context, "aws_request_id", None), body)
    if expected.startswith("hash:"):
        prefix = expected[len("hash:"):]
        digits = 16 if prefix == "sha256:" else 32
        assert re.fullmatch(re.escape(prefix) + f"[0-9a-f]{{{digits}}}", want), want
    else:
        assert want == expected
    assert _valid_inference_id(want), want
    client = _sagemaker_client("http://127.0.0.1:9")  # never reached: stubbed
    payload = json.dumps(endpoint_answer([0.1])).encode()
    with Stubber(client) as stub:  # the exact InferenceId, checked against the API model too
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json"},
            expected_params={"EndpointName": ENDPOINT_NAME, "ContentType": "application/json",
                             "Accept": "application/json", "CustomAttributes": "explain=3",
                             "InferenceId": want, "Body": ANY},
        )
        handler.set_clients(sagemaker_runtime=client, sns=sns.client)
        ok_scores(handler.lambda_handler(ev, context), 1)
        stub.assert_no_pending_responses()


def test_inference_id_is_stable_and_names_the_alerts():
    body = json.dumps(LAB_FRAUD).encode()
    assert handler.inference_id("req-9", body) == "req-9"
    assert handler.inference_id(None, body) == handler.inference_id(None, body)
    assert handler.inference_id(None, body) != handler.inference_id(None, body + b" ")
    long_id = "x" * 100
    assert handler.inference_id(long_id, body) == handler.inference_id(long_id, b"other")
    for rid in ("req-9", None, long_id):
        assert handler.transaction_reference(rid, 3, body) == f"{handler.inference_id(rid, body)}#3"


def test_inference_id_header_reaches_the_server_and_changes_nothing(wired, sm_client, server_url):
    """The real server receives X-Amzn-SageMaker-Inference-Id (SageMaker itself
    consumes it; a container sees it at most as an unknown header) and answers
    exactly as without it; the alert's reference carries the same id."""
    sent = []

    def capture(request, **_):
        sent.append(dict(request.headers))

    sm_client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", capture, unique_id="capture-iid")
    try:
        expect_publish(wired, 1)
        resp = handler.lambda_handler(event(LAB_FRAUD, request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef"), None)
    finally:
        sm_client.meta.events.unregister("before-send.sagemaker-runtime.InvokeEndpoint", unique_id="capture-iid")
    ok_scores(resp, 1)
    (headers,) = sent
    value = headers["X-Amzn-SageMaker-Inference-Id"]
    value = value.decode() if isinstance(value, bytes) else value
    assert value == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    plain = _post(server_url, LAB_FRAUD, explain=3)
    req = urllib.request.Request(
        server_url + "/invocations", data=json.dumps(LAB_FRAUD).encode(),
        headers={"Content-Type": "application/json", EXPLAIN_HEADER: "explain=3",
                 "X-Amzn-SageMaker-Inference-Id": value})
    with urllib.request.urlopen(req, timeout=30) as r:
        with_id = json.loads(r.read())
    assert json.loads(resp["body"]) == plain == with_id
    wired.assert_no_pending_responses()
    assert "Transaction reference: c6af9ac6-7b61-11e6-9a41-93e8deadbeef#0" in wired.published[0]["Message"]


# ---- the request size limit (MAX_BODY_BYTES) ---------------------------------------------


def test_max_body_bytes_lowers_the_limit(wired, invoked, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "4000000")  # what the template sets for a serverless endpoint
    row = json.dumps(LAB_FRAUD)
    over = row + " " * (4_000_001 - len(row))
    doc = bad(handler.lambda_handler(event(over), None), 413)
    assert doc["error_type"] == "payload_too_large" and "4000000" in doc["error"]
    assert invoked == []
    expect_publish(wired, 1)
    at = row + " " * (4_000_000 - len(row))  # the limit itself is allowed: the container reads one row
    assert ok_scores(handler.lambda_handler(event(at), None), 1)[0] >= THRESHOLD
    assert len(invoked) == 1


@pytest.mark.parametrize("value", ["lots", "0", "6291457", "1.5", "-1"])
def test_bad_max_body_bytes_is_500(wired, invoked, monkeypatch, value):
    monkeypatch.setenv("MAX_BODY_BYTES", value)
    assert bad(handler.lambda_handler(event(LAB_FRAUD), None), 500)["error_type"] == "misconfigured"
    assert invoked == []


# ---- the template's stacks, parameter by parameter ---------------------------------------
#
# CloudFormation decides conditions, Fn::If and AWS::NoValue from the
# parameters; _stack does the same offline for the functions this template
# uses, so each deployment shape (instance, serverless, data capture, Clarify)
# is checked as the resources it would create.

NOVALUE = object()


def _template():
    from cfnlint.decode import decode

    tpl, matches = decode(str(HERE / "template.yaml"))
    assert not matches
    return json.loads(json.dumps(tpl))


def _stack(tpl, **given):
    """(resources, outputs, names of failed Rules) for these parameter values
    (the rest at their defaults): conditions evaluated, Fn::If, Fn::Select and
    Fn::Split of known values resolved, AWS::NoValue dropped, Refs to parameters
    replaced by their values; other intrinsics left as written."""
    params = {}
    for name, p in tpl["Parameters"].items():
        value = str(given.pop(name, p.get("Default", "")))
        if p["Type"] == "CommaDelimitedList":
            params[name] = value.split(",")
        elif p["Type"] == "Number":
            params[name] = float(value) if "." in value else int(value)
        else:
            params[name] = value
    assert not given, f"unknown parameters {given}"
    decided = {}

    def condition(name):
        if name not in decided:
            decided[name] = truth(tpl["Conditions"][name])
        return decided[name]

    def truth(expr):
        ((fn, args),) = expr.items()
        if fn == "Fn::Equals":
            a, b = (walk(x) for x in args)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not truth(args[0])
        if fn == "Fn::And":
            return all(truth(x) for x in args)
        if fn == "Fn::Or":
            return any(truth(x) for x in args)
        if fn == "Condition":
            return condition(args)
        raise AssertionError(f"condition function {fn} not modelled")

    def walk(x):
        if isinstance(x, list):
            return [w for w in (walk(e) for e in x) if w is not NOVALUE]
        if not isinstance(x, dict):
            return x
        if len(x) == 1:
            ((fn, args),) = x.items()
            if fn == "Fn::If":
                return walk(args[1] if condition(args[0]) else args[2])
            if fn == "Ref" and args == "AWS::NoValue":
                return NOVALUE
            if fn == "Ref" and args in params:
                return params[args]
            if fn == "Fn::Split":
                sep, s = walk(args[0]), walk(args[1])
                if isinstance(s, str):
                    return s.split(sep)
            if fn == "Fn::Select":
                i, seq = walk(args[0]), walk(args[1])
                if isinstance(seq, list):
                    return seq[int(i)]
        out = {}
        for k, v in x.items():
            w = walk(v)
            if w is not NOVALUE:
                out[k] = w
        return out

    resources = {k: walk(v) for k, v in tpl["Resources"].items() if "Condition" not in v or condition(v["Condition"])}
    outputs = {k: walk(v) for k, v in tpl["Outputs"].items() if "Condition" not in v or condition(v["Condition"])}
    failed = [name for name, rule in tpl.get("Rules", {}).items()
              if ("RuleCondition" not in rule or truth(rule["RuleCondition"]))
              and not all(truth(a["Assert"]) for a in rule["Assertions"])]
    return resources, outputs, failed


REQUIRED = {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ccfraud:1.0",
            "ModelDataUrl": "s3://models/ccfraud/model.tar.gz"}


def _variant(resources, config="FraudEndpointConfig"):
    (variant,) = resources[config]["Properties"]["ProductionVariants"]
    return variant


def _endpoint_dimensions(alarm):
    return {d["Name"]: d["Value"] for d in alarm["Properties"]["Dimensions"]}


def test_default_stack_is_an_autoscaled_instance_endpoint():
    tpl = _template()
    res, outputs, failed = _stack(tpl, **REQUIRED)
    assert failed == []
    variant = _variant(res)
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    assert "ServerlessConfig" not in variant
    assert "DataCaptureConfig" not in res["FraudEndpointConfig"]["Properties"]
    assert "ExplainerConfig" not in res["FraudEndpointConfig"]["Properties"]
    target = res["FraudScalableTarget"]["Properties"]
    assert target["ServiceNamespace"] == "sagemaker"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["ResourceId"] == {"Fn::Sub": "endpoint/${FraudEndpoint.EndpointName}/variant/" + variant["VariantName"]}
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    policy = res["FraudScalingPolicy"]["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == {"Ref": "FraudScalableTarget"}
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert tracking["TargetValue"] == 68700
    env = res["EndpointInvokerFunction"]["Properties"]["Environment"]["Variables"]
    assert int(env["MAX_BODY_BYTES"]) == handler.MAX_BODY_BYTES
    statements = res["SageMakerExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert "WriteDataCapture" not in {s["Sid"] for s in statements}
    assert "ClarifyEndpoint" not in res and "ClarifyEndpointName" not in outputs
    assert "AlarmEmailSubscription" not in res


def test_scaling_target_follows_the_measured_capacity():
    """TargetInvocationsPerInstance's default is AWS's rule (max RPS x 60 x
    0.5) applied to the README's measured explain=3 throughput, which is what
    every call of the Lambda asks for."""
    readme = (HERE.parents[1] / "README.md").read_text()
    m = re.search(r"the same with `explain=3`[^|]*\| ([0-9,]+) req/s", readme)
    assert m, "README's speed table lost its explain=3 throughput line"
    rps = int(m.group(1).replace(",", ""))
    param = _template()["Parameters"]["TargetInvocationsPerInstance"]
    assert param["Default"] == rps * 60 * 0.5
    assert f"{rps:,}" in param["Description"] and "0.5" in param["Description"] and "load-test" in param["Description"]


def test_serverless_stack():
    tpl = _template()
    res, outputs, failed = _stack(tpl, EndpointType="serverless", ServerlessMemorySizeInMB=2048,
                                  ServerlessMaxConcurrency=50, **REQUIRED)
    assert failed == []
    variant = _variant(res)
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 50}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "DataCaptureConfig" not in res["FraudEndpointConfig"]["Properties"]
    assert "FraudScalableTarget" not in res and "FraudScalingPolicy" not in res
    env = res["EndpointInvokerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MAX_BODY_BYTES"] == "4000000"
    # the alarms watch a serverless endpoint the same way
    assert {"Endpoint5xxAlarm", "ModelLatencyAlarm"} <= set(res)


def test_serverless_refuses_data_capture():
    tpl = _template()
    _, _, failed = _stack(tpl, EndpointType="serverless", DataCaptureS3Uri="s3://capture-bucket/ccfraud", **REQUIRED)
    assert failed == ["ServerlessHasNoDataCapture"]
    assert "data capture" in tpl["Rules"]["ServerlessHasNoDataCapture"]["Assertions"][0]["AssertDescription"]


def test_instance_stack_with_data_capture():
    tpl = _template()
    res, _, failed = _stack(tpl, DataCaptureS3Uri="s3://capture-bucket/ccfraud/capture",
                            DataCaptureSamplingPercentage=25, MinInstanceCount=2, MaxInstanceCount=6, **REQUIRED)
    assert failed == []
    capture = res["FraudEndpointConfig"]["Properties"]["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 25
    assert capture["DestinationS3Uri"] == "s3://capture-bucket/ccfraud/capture"
    assert sorted(o["CaptureMode"] for o in capture["CaptureOptions"]) == ["Input", "Output"]
    assert capture["CaptureContentTypeHeader"]["CsvContentTypes"] == ["text/csv"]
    assert "application/json" in capture["CaptureContentTypeHeader"]["JsonContentTypes"]
    assert _variant(res)["InitialInstanceCount"] == 2
    target = res["FraudScalableTarget"]["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    statements = res["SageMakerExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (write,) = [s for s in statements if s["Sid"] == "WriteDataCapture"]
    assert write["Action"] == "s3:PutObject"
    template, variables = write["Resource"]["Fn::Sub"]
    assert template == "arn:${AWS::Partition}:s3:::${Prefix}/*"
    assert variables == {"Prefix": "capture-bucket/ccfraud/capture"}


def test_data_capture_uri_pattern():
    pattern = re.compile(_template()["Parameters"]["DataCaptureS3Uri"]["AllowedPattern"])
    for ok in ("", "s3://capture-bucket", "s3://capture-bucket/ccfraud", "s3://my.bucket-1/a/b/c"):
        assert pattern.fullmatch(ok), ok
    for no in ("capture-bucket/x", "s3://capture-bucket/", "s3://capture-bucket/a//b", "s3://Bucket/x", "https://b/x"):
        assert not pattern.fullmatch(no), no


def test_alarms_watch_the_endpoint_and_go_to_their_own_topic():
    tpl = _template()
    res, outputs, _ = _stack(tpl, AlarmEmail="oncall@example.com", Error5xxAlarmThreshold=3,
                             ModelLatencyAlarmMicroseconds=20000, **REQUIRED)
    variant = _variant(res)
    expected_dims = {"EndpointName": {"Fn::GetAtt": ["FraudEndpoint", "EndpointName"]},
                     "VariantName": variant["VariantName"]}
    errors, latency = res["Endpoint5xxAlarm"]["Properties"], res["ModelLatencyAlarm"]["Properties"]
    for alarm, metric in ((errors, "Invocation5XXErrors"), (latency, "ModelLatency")):
        assert alarm["Namespace"] == "AWS/SageMaker" and alarm["MetricName"] == metric
        assert _endpoint_dimensions(res["Endpoint5xxAlarm" if alarm is errors else "ModelLatencyAlarm"]) == expected_dims
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"  # no traffic is no fault
    assert errors["Statistic"] == "Sum" and errors["Threshold"] == 3
    assert latency["ExtendedStatistic"] == "p99" and latency["Threshold"] == 20000
    assert res["AlarmEmailSubscription"]["Properties"]["Endpoint"] == "oncall@example.com"
    # CloudWatch cannot publish to a topic under the AWS-managed aws/sns key
    assert "KmsMasterKeyId" not in res["AlarmTopic"].get("Properties", {})
    assert "AlarmTopicArn" in outputs


def test_clarify_stack():
    tpl = _template()
    for endpoint_type in ("instance", "serverless"):
        res, outputs, failed = _stack(tpl, EnableClarify="true", EndpointType=endpoint_type, **REQUIRED)
        assert failed == []
        # the main endpoint stays what the Lambda can call: no explainer on it
        assert "ExplainerConfig" not in res["FraudEndpointConfig"]["Properties"]
        clarify = res["ClarifyEndpointConfig"]["Properties"]
        variant = _variant(res, "ClarifyEndpointConfig")
        # Clarify online explainability runs on real-time instance endpoints
        assert variant["InstanceType"] == "ml.m5.large" and "ServerlessConfig" not in variant
        assert variant["ModelName"] == {"Fn::GetAtt": ["FraudModel", "ModelName"]}
        explainer = clarify["ExplainerConfig"]["ClarifyExplainerConfig"]
        assert explainer["EnableExplanations"] == "`true`"
        assert explainer["InferenceConfig"]["ProbabilityIndex"] == 0
        assert explainer["InferenceConfig"]["FeatureHeaders"] == [f"V{i}" for i in range(1, 29)] + ["Amount"]
        baseline = explainer["ShapConfig"]["ShapBaselineConfig"]
        assert baseline["MimeType"] == "text/csv"
        assert baseline["ShapBaseline"] == tpl["Parameters"]["ClarifyShapBaseline"]["Default"]
        assert res["ClarifyEndpoint"]["Properties"]["EndpointConfigName"] == {
            "Fn::GetAtt": ["ClarifyEndpointConfig", "EndpointConfigName"]}
        assert "ClarifyEndpointName" in outputs


# ---- Clarify's calls, played against the real server -------------------------------------
#
# SageMaker Clarify's online explainer (Kernel SHAP) sends the container CSV
# bodies of synthetic rows - each the record with some features replaced by
# the baseline's - with Content-Type and Accept text/csv and no header, and
# reads column ProbabilityIndex of each answer line. This plays one such
# explanation for the lab's fraud with the template's own baseline and
# settings: n_samples = min(2 * n_features + 2^11, 2^n_features - 2)
# coalitions (the developer guide's default), plus the all-baseline and
# all-record rows.


def _clarify_settings():
    tpl = _template()
    res, _, _ = _stack(tpl, EnableClarify="true", **REQUIRED)
    explainer = res["ClarifyEndpointConfig"]["Properties"]["ExplainerConfig"]["ClarifyExplainerConfig"]
    baseline_csv = explainer["ShapConfig"]["ShapBaselineConfig"]["ShapBaseline"]
    baseline = [[float(v) for v in line.split(",")] for line in baseline_csv.splitlines()]
    return explainer["InferenceConfig"], baseline


def _post_csv(url, rows):
    body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()
    req = urllib.request.Request(url + "/invocations", data=body,
                                 headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.headers["Content-Type"].split(";")[0] == "text/csv"
        return r.read().decode()


def test_clarify_feature_headers_are_the_servers_schema(server_url):
    config, baseline = _clarify_settings()
    with urllib.request.urlopen(server_url + "/schema", timeout=30) as r:
        schema = json.loads(r.read())
    names = [c["name"] for c in schema["columns"]]
    assert config["FeatureHeaders"] == names
    assert all(len(row) == len(names) for row in baseline), "a baseline row is not one value per column"


def test_clarify_synthetic_batch_against_the_real_server(server_url):
    config, baseline = _clarify_settings()
    n = len(config["FeatureHeaders"])
    record = list(LAB_FRAUD)
    assert len(record) == n
    n_samples = min(2 * n + 2 ** 11, 2 ** n - 2)
    rng = random.Random(29)
    rows = [list(baseline[0]), record]  # every feature from the baseline; every feature from the record
    for _ in range(n_samples):
        b = baseline[rng.randrange(len(baseline))]
        size = rng.randint(1, n - 1)
        kept = set(rng.sample(range(n), size))
        rows.append([record[j] if j in kept else b[j] for j in range(n)])
    assert len(rows) == n_samples + 2 == 2108
    text = _post_csv(server_url, rows)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == len(rows), f"{len(lines)} answer lines for {len(rows)} rows"
    column = config["ProbabilityIndex"]
    probabilities = [float(line.split(",")[column]) for line in lines]
    assert all(0.0 <= p <= 1.0 and math.isfinite(p) for p in probabilities)
    # the record's own row scores as the same transaction sent alone (JSON, as the Lambda does)
    alone = _scores(_post(server_url, record))[0]
    assert math.isclose(probabilities[1], alone, abs_tol=1e-6), (probabilities[1], alone)
    assert alone >= THRESHOLD
    # the baseline is a transaction the model leaves alone: the SHAP values
    # then say how the record's features move it from legitimate to fraud
    assert probabilities[0] < 0.5 and _scores(_post(server_url, baseline[0]))[0] < 0.5
    # the synthetic rows span the two: not one constant answer
    assert min(probabilities) < 0.5 < max(probabilities)


def test_readme_documents_every_template_parameter():
    readme = (HERE.parents[1] / "README.md").read_text()
    start = readme.index("### Deploying the endpoint")
    section = readme[start:readme.index("\n## ", start)]
    missing = [name for name in _template()["Parameters"] if f"`{name}`" not in section]
    assert not missing, f"README's deployment section does not name {missing}"

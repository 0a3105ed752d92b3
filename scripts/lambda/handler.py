"""API Gateway -> SageMaker fraud-score proxy with SNS alerts.

The lab's `endpoint_invoker` Lambda (LAB.md, "Create a Lambda function" and
the SNS appendix), made fit for production. Runs on the AWS Lambda Python
runtime with its bundled boto3: standard library + boto3 only.

The model container knows the model's columns (its schema: GET /schema) and
validates transactions against them (column count and names, numbers,
categories, batch shape); it answers a bad one with a 400
{"error", "error_type", "row", "field"}. This function repeats none of that
and assumes no schema: it checks only what the container cannot see: the
HTTP method, CORS, the body's size and its base64 encoding.

Environment:
  ENDPOINT_NAME         SageMaker endpoint to invoke (required)
  ALERT_THRESHOLD       fraud score at or above which an alert is sent; unset or
                        empty (the default): the model's own decision (see Alerts)
  SNS_TOPIC_ARN         topic for alerts; when unset or empty no alert is sent
  CORS_ORIGIN           Access-Control-Allow-Origin of every answer (default "*")
  INVOKE_TIMEOUT_SECONDS  read timeout of one endpoint call, 1..60 (default 10)
  MAX_BODY_BYTES        largest body forwarded, 1..6291456 (default 6 MiB, the
                        real-time limit; the template sets 4000000 for a
                        serverless endpoint, whose limit is 4 MB)
  LOG_LEVEL             logging level (default INFO)

Request (API Gateway proxy integration, REST v1 or HTTP API v2 payload): a
JSON body in any form the container accepts for its model - a list of values
in the schema's column order (for the lab's model: V1..V28 and the
standardized Amount), a list of such lists, objects keyed by column name
(categorical values as strings, null for a missing value), {"instances": ...}.
It is forwarded byte for byte as application/json, always with the
SageMaker custom attribute "explain=3" (header
X-Amzn-SageMaker-Custom-Attributes), which asks the container for each
transaction's decision and its top 3 reasons, and with an InferenceId (header
X-Amzn-SageMaker-Inference-Id, which the container ignores): the API
Gateway request id, which API Gateway also returns to the caller in the
x-amzn-RequestId header. With data capture on, SageMaker stores it with the
captured request and answer, so Model Monitor can merge ground truth
(labels uploaded later with that id as eventId) with them. The body may be
base64-encoded (isBase64Encoded). OPTIONS is a CORS preflight.

Answers (always JSON, always with CORS headers):
  200  the endpoint's JSON, passed through unchanged: one classification per
       transaction, however many the body holds,
       {"result": {"classifications": [{"classes": [{"label": "0", "score": p0},
                                                    {"label": "1", "score": p1}]}, ..]}}
       and, from a container that explains, sibling keys in "result": "model",
       "decisions" [{"action": "approve"|"review", "expected_loss"?}, ..] and
       "explanations" [{"space", "base", "value", "reasons": [{"feature",
       "value", "contribution"}, ..]}, ..] (the lab's parsing path is untouched)
  4xx  the container refused the request: its status and its JSON
       {"error", "error_type", "row"?, "field"?} passed through
  400  body marked base64 that is not; 405 method other than POST/OPTIONS;
       413 body over MAX_BODY_BYTES (the 6 MB Lambda/SageMaker limit)
  500  the function is misconfigured (e.g. ENDPOINT_NAME unset)
  502  {"error": ..., "error_type": "endpoint_error" | "endpoint_unreachable" |
       "bad_endpoint_response"}: the endpoint failed (5xx), could not be
       reached, refused the call itself (e.g. no such endpoint, throttling),
       or answered something that is not a classification

Alerts: one SNS message per transaction that alerts. Which do: with
ALERT_THRESHOLD set, those whose fraud score (class "1") is at or above it;
without it, those the model itself sends to review (the answer's
decisions[i].action == "review": the score is at or above the decision
threshold chosen at training, possibly by cost); when the answer has no
usable "decisions" (a container from before decisions; unusable ones are
logged), those scoring 0.9 or more.
The message holds the time (UTC, ISO 8601), the score, the rule it alerted
on, a transaction reference (the request's InferenceId + "#" + row index) and up to
3 reasons by feature name and direction, strongest first, e.g.
"V14 (towards fraud)", "V12 (away from fraud)" - never the features' values.
Each message has two SNS message attributes (String) for subscription filter
policies: "severity", "high" when the score is 0.9 or more and "medium"
otherwise, and "model", the answer's result.model ("unknown" when it has
none). A failed publish is logged and does not fail the answer.

Clients are created lazily, once per container; tests (or other callers)
inject their own with `set_clients(...)`.
"""

import base64
import binascii
import datetime
import hashlib
import json
import logging
import math
import os
import re

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)
try:
    logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO")
except ValueError:  # an unknown level name must not break the function's start
    logger.setLevel(logging.INFO)

# Alert threshold for an endpoint whose answer has no decisions (an older container).
FALLBACK_THRESHOLD = 0.9
# Score at or above which an alert's "severity" attribute is "high" (else "medium").
HIGH_SEVERITY_SCORE = 0.9
# What every endpoint call asks for: a decision and the top 3 reasons per row.
CUSTOM_ATTRIBUTES = "explain=3"
TOP_REASONS = 3
# A feature name in an alert is cut to this many characters.
MAX_FEATURE_NAME = 64
# Lambda's synchronous payload limit and SageMaker's invocation limit are 6 MB
# (MAX_BODY_BYTES in the environment may lower it: serverless endpoints take 4 MB).
MAX_BODY_BYTES = 6 * 1024 * 1024
# SageMaker's InferenceId: 1 to 64 characters, the first not white space, the
# rest printable ASCII (the API model's pattern \A\S[\p{Print}]*\z); this
# is the ASCII subset of it.
INFERENCE_ID = re.compile(r"[!-~][ -~]{0,63}")
CONTENT_TYPE = "application/json"
ALLOW_HEADERS = "Content-Type,Authorization,X-Amz-Date,X-Api-Key,X-Amz-Security-Token"
ALLOW_METHODS = "OPTIONS,POST"
ALERT_SUBJECT = "Card transaction alert: possible fraud"
# Where _keep_container_error leaves the container's own error answer.
CONTAINER_ERROR = "CcfraudContainerError"

_clients = {"sagemaker-runtime": None, "sns": None}


# ---- clients --------------------------------------------------------------------------


def set_clients(sagemaker_runtime=None, sns=None):
    """Injects clients (tests); None leaves that client to be created lazily."""
    _clients["sagemaker-runtime"] = sagemaker_runtime
    _clients["sns"] = sns


def reset_clients():
    """Forgets all clients; the next call creates them from the environment."""
    set_clients(None, None)


def _keep_container_error(http_response, parsed, **_):
    """A model container reached directly (ccfraud serve, SageMaker local
    mode) answers a refusal with its own JSON, which botocore does not parse;
    keep it beside botocore's parse so the caller gets the container's words."""
    try:
        if http_response.status_code >= 300 and isinstance(parsed, dict):
            doc = _container_error(http_response.content.decode("utf-8", "replace"))
            if doc is not None:
                parsed[CONTAINER_ERROR] = doc
    except Exception:  # noqa: BLE001 - only an aid to the error message
        pass


def _sagemaker_client():
    client = _clients["sagemaker-runtime"]
    if client is None:
        # API Gateway gives up after 29 s: two tries of 10 s plus back-off fit.
        timeout = _env_float("INVOKE_TIMEOUT_SECONDS", 10.0, low=1.0, high=60.0)
        _clients["sagemaker-runtime"] = boto3.client(
            "sagemaker-runtime",
            config=Config(
                connect_timeout=3,
                read_timeout=timeout,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )
        client = _clients["sagemaker-runtime"]
    client.meta.events.register(
        "after-call.sagemaker-runtime.InvokeEndpoint", _keep_container_error, unique_id="ccfraud-keep-error"
    )
    return client


def _sns_client():
    if _clients["sns"] is None:
        _clients["sns"] = boto3.client(
            "sns",
            config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}),
        )
    return _clients["sns"]


# ---- configuration --------------------------------------------------------------------


class ConfigError(Exception):
    """The function's environment is wrong: an operator problem, not the caller's."""


def _env_float(name, default, low, high):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not (low <= value <= high):
        raise ConfigError(f"{name}={raw!r} must be within [{low}, {high}]")
    return value


def _settings():
    endpoint = os.environ.get("ENDPOINT_NAME", "").strip()
    if not endpoint:
        raise ConfigError("ENDPOINT_NAME is not set")
    threshold = _env_float("ALERT_THRESHOLD", None, 0.0, 1.0)  # None: the model's decision
    topic = os.environ.get("SNS_TOPIC_ARN", "").strip() or None
    limit = _env_float("MAX_BODY_BYTES", MAX_BODY_BYTES, 1, MAX_BODY_BYTES)
    if limit != int(limit):
        raise ConfigError(f"MAX_BODY_BYTES={os.environ['MAX_BODY_BYTES']!r} is not a whole number of bytes")
    return endpoint, threshold, topic, int(limit)


# ---- HTTP answers ---------------------------------------------------------------------


def _cors_headers():
    origin = os.environ.get("CORS_ORIGIN", "").strip() or "*"
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Allow-Methods": ALLOW_METHODS,
    }
    if origin != "*":
        headers["Vary"] = "Origin"
    return headers


def _answer(status, body_text, extra_headers=None):
    headers = {"Content-Type": "application/json"}
    headers.update(_cors_headers())
    if extra_headers:
        headers.update(extra_headers)
    return {"statusCode": status, "headers": headers, "body": body_text, "isBase64Encoded": False}


def _error(status, message, error_type):
    return _answer(status, json.dumps({"error": message, "error_type": error_type}))


class Refused(Exception):
    """An answer other than 200: its status and JSON body."""

    def __init__(self, status, message, error_type, detail=None):
        super().__init__(message)
        self.status = status
        self.doc = dict(detail) if detail else {}
        self.doc.update(error=message, error_type=error_type)


# ---- the request body -----------------------------------------------------------------


def _body_bytes(event, limit=MAX_BODY_BYTES):
    """The bytes to forward: decoded from base64 when so marked; at most `limit` bytes."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise Refused(400, "body must be text", "invalid_input")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, "body is marked base64-encoded but is not valid base64", "invalid_input") from None
    else:
        # surrogatepass: a lone surrogate reaches the container, which names the byte
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > limit:
        raise Refused(413, f"body is {len(raw)} bytes; the limit is {limit}", "payload_too_large")
    return raw


# ---- endpoint call --------------------------------------------------------------------


def _container_error(text):
    """The container's error document {"error": str, "error_type": str, ...}, or None."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str) and isinstance(doc.get("error_type"), str):
        return doc
    return None


def _refusal(status, doc):
    """The container's 4xx goes to the caller as is; anything else is a 502."""
    if 400 <= status < 500:
        return Refused(status, doc["error"], doc["error_type"], detail=doc)
    return Refused(502, f"the model failed (status {status}): {doc['error']}", "endpoint_error")


def _classify_client_error(err):
    """botocore ClientError -> Refused."""
    resp = err.response or {}
    error = resp.get("Error", {})
    code = error.get("Code", "")
    if code == "ModelError":
        # SageMaker: the container answered non-2xx; its status and body are attached.
        original = resp.get("OriginalStatusCode")
        text = resp.get("OriginalMessage") or error.get("Message") or ""
        if not isinstance(original, int):
            return Refused(502, f"the model failed: {text.strip()[:500]}", "endpoint_error")
        doc = _container_error(text) or {"error": text.strip()[:500] or f"status {original}", "error_type": "invalid_input"}
        return _refusal(original, doc)
    doc = resp.get(CONTAINER_ERROR)
    http = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if doc is not None and isinstance(http, int):
        # A model container reached directly (ccfraud serve, SageMaker local mode).
        return _refusal(http, doc)
    # SageMaker itself refused the call (no such endpoint, throttling, ...): not the caller's doing.
    return Refused(502, f"endpoint call failed: {code or http}: {error.get('Message', '')}", "endpoint_error")


def _invoke(endpoint, body, inference):
    client = _sagemaker_client()
    try:
        result = client.invoke_endpoint(
            EndpointName=endpoint,
            ContentType=CONTENT_TYPE,
            Accept="application/json",
            CustomAttributes=CUSTOM_ATTRIBUTES,
            InferenceId=inference,
            Body=body,
        )
        raw = result["Body"].read()
    except ClientError as e:
        refused = _classify_client_error(e)
        logger.warning("invoke_endpoint %s: %s %s", endpoint, refused.status, refused)
        raise refused from None
    except BotoCoreError as e:
        logger.error("invoke_endpoint %s unreachable: %s", endpoint, e)
        raise Refused(502, f"endpoint unreachable: {type(e).__name__}", "endpoint_unreachable") from None
    try:
        text = raw.decode("utf-8")
        answer = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        logger.error("invoke_endpoint %s: answer is not JSON (%d bytes)", endpoint, len(raw))
        raise Refused(502, "endpoint answered with something that is not JSON", "bad_endpoint_response") from None
    return text, answer


def fraud_scores(answer):
    """The class-"1" score of each transaction from the endpoint's JSON: one per
    classification, as many as the request had rows (the second class when no
    class is labelled "1")."""
    try:
        classifications = answer["result"]["classifications"]
        if not isinstance(classifications, list) or not classifications:
            raise ValueError("no classifications")
        scores = []
        for c in classifications:
            classes = c["classes"]
            by_label = {str(k["label"]): k["score"] for k in classes}
            score = float(by_label["1"] if "1" in by_label else classes[1]["score"])
            if not math.isfinite(score):
                raise ValueError("score is not finite")
            scores.append(score)
        return scores
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise Refused(502, f"endpoint answer has an unexpected shape: {e}", "bad_endpoint_response") from None


# ---- alerts ---------------------------------------------------------------------------


def inference_id(request_id, body):
    """The request's InferenceId: the request id as it is when SageMaker accepts
    it (API Gateway's are: UUIDs for REST APIs, short base64-like ids for HTTP APIs),
    else "rid-sha256:" + 32 hex digits of its SHA-256; without a request id,
    "sha256:" + 16 hex digits of the body's (the same body, the same id)."""
    if request_id:
        rid = str(request_id)
        if INFERENCE_ID.fullmatch(rid):
            return rid
        return "rid-sha256:" + hashlib.sha256(rid.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def transaction_reference(request_id, index, body):
    """Points at a transaction (row `index` of the request `body`) without
    revealing it: the request's InferenceId, "#", the row index."""
    return f"{inference_id(request_id, body)}#{index}"


def _printable(text, limit):
    """`text` with control characters replaced, cut to `limit` characters: names
    come from training data and end up in e-mails and SMS."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


def decisions(answer, n):
    """The actions ("approve" / "review") of the answer's `decisions`, one per
    transaction; None when the answer has none (a container from before
    decisions) or they are not usable (logged)."""
    result = answer["result"]
    if "decisions" not in result:
        return None
    found = result["decisions"]
    if (
        isinstance(found, list)
        and len(found) == n
        and all(isinstance(d, dict) and d.get("action") in ("approve", "review") for d in found)
    ):
        return [d["action"] for d in found]
    logger.warning(
        "endpoint answer's decisions are not %d approve/review objects; alerting at score >= %s",
        n, FALLBACK_THRESHOLD,
    )
    return None


def alert_rule(answer, scores, threshold):
    """(indices of the transactions that alert, the rule in words): the score
    against ALERT_THRESHOLD when set, else the model's own decision, else the
    score against FALLBACK_THRESHOLD."""
    if threshold is not None:
        return [i for i, s in enumerate(scores) if s >= threshold], f"score at or above ALERT_THRESHOLD {threshold:g}"
    actions = decisions(answer, len(scores))
    if actions is None:
        flagged = [i for i, s in enumerate(scores) if s >= FALLBACK_THRESHOLD]
        return flagged, f"score at or above {FALLBACK_THRESHOLD:g} (the endpoint gave no decision)"
    return [i for i, a in enumerate(actions) if a == "review"], "the model's decision: review"


def top_reasons(answer, index, n):
    """Up to TOP_REASONS reasons of transaction `index` as (feature name,
    direction), strongest |contribution| first: names and directions only,
    never the features' values. Empty when the answer explains nothing."""
    explanations = answer["result"].get("explanations")
    if not isinstance(explanations, list) or len(explanations) != n or not isinstance(explanations[index], dict):
        return []
    reasons = explanations[index].get("reasons")
    if not isinstance(reasons, list):
        return []
    found = []
    for r in reasons:
        if not isinstance(r, dict):
            continue
        name, c = r.get("feature"), r.get("contribution")
        if not isinstance(name, str) or not name or isinstance(c, bool) or not isinstance(c, (int, float)):
            continue
        if not math.isfinite(c) or c == 0:
            continue  # a zero pushes neither way
        found.append((abs(c), _printable(name, MAX_FEATURE_NAME), c > 0))
    found.sort(key=lambda t: -t[0])  # stable: the endpoint's order among equals
    return [(name, "towards fraud" if up else "away from fraud") for _, name, up in found[:TOP_REASONS]]


def model_name(answer):
    """The answer's result.model (the served model's kind), or "unknown"."""
    model = answer["result"].get("model")
    if isinstance(model, str) and model.strip():
        return _printable(model.strip(), 64)
    return "unknown"


def message_attributes(score, model):
    """SNS message attributes for subscription filter policies."""
    return {
        "severity": {"DataType": "String", "StringValue": "high" if score >= HIGH_SEVERITY_SCORE else "medium"},
        "model": {"DataType": "String", "StringValue": model},
    }


def alert_message(score, reference, when, rule, reasons):
    why = ", ".join(f"{name} ({direction})" for name, direction in reasons) or "none given by the endpoint"
    return (
        "A card transaction was flagged as possible fraud.\n"
        f"Time (UTC): {when}\n"
        f"Fraud score: {score:.4f}\n"
        f"Alerted on: {rule}\n"
        f"Top reasons: {why}\n"
        f"Transaction reference: {reference}\n"
        "Do you recognise this transaction? If not, please check your card account."
    )


def _publish_alerts(topic, threshold, answer, scores, body, request_id):
    flagged, rule = alert_rule(answer, scores, threshold)
    if not flagged:
        return 0
    if topic is None:
        logger.info("%d transaction(s) alert (%s); SNS_TOPIC_ARN unset, no alert sent", len(flagged), rule)
        return 0
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    model = model_name(answer)
    sent = 0
    for i in flagged:
        reference = transaction_reference(request_id, i, body)
        try:
            _sns_client().publish(
                TopicArn=topic,
                Subject=ALERT_SUBJECT,
                Message=alert_message(scores[i], reference, when, rule, top_reasons(answer, i, len(scores))),
                MessageAttributes=message_attributes(scores[i], model),
            )
            sent += 1
        except Exception:  # noqa: BLE001 - an alert failure must not fail the answer
            logger.exception("SNS publish failed for transaction %s (score %.4f)", reference, scores[i])
    return sent


# ---- entry point ----------------------------------------------------------------------


def _method(event):
    method = event.get("httpMethod")
    if not method:
        method = ((event.get("requestContext") or {}).get("http") or {}).get("method")
    return (method or "POST").upper()


def _request_id(event, context):
    rid = (event.get("requestContext") or {}).get("requestId")
    if not rid and context is not None:
        rid = getattr(context, "aws_request_id", None)
    return rid


def lambda_handler(event, context):
    if not isinstance(event, dict):
        return _error(400, "event is not an API Gateway proxy event", "invalid_input")
    method = _method(event)
    if method == "OPTIONS":
        return _answer(204, "", {"Access-Control-Max-Age": "600"})
    if method != "POST":
        resp = _error(405, f"method {method} not allowed: POST a transaction", "method_not_allowed")
        resp["headers"]["Allow"] = ALLOW_METHODS
        return resp
    try:
        endpoint, threshold, topic, limit = _settings()
    except ConfigError as e:
        logger.error("misconfigured: %s", e)
        return _error(500, "the fraud-check service is misconfigured", "misconfigured")

    request_id = _request_id(event, context)
    try:
        body = _body_bytes(event, limit)
        text, answer = _invoke(endpoint, body, inference_id(request_id, body))
        scores = fraud_scores(answer)
    except Refused as e:
        return _answer(e.status, json.dumps(e.doc))

    sent = _publish_alerts(topic, threshold, answer, scores, body, request_id)
    logger.info(
        "request %s: %d transaction(s), max fraud score %.4f, %d alert(s) sent",
        request_id, len(scores), max(scores), sent,
    )
    return _answer(200, text)

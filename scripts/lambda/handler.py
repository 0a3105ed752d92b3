"""API Gateway -> SageMaker fraud-score proxy with SNS alerts.

The lab's `endpoint_invoker` Lambda (LAB.md, "Create a Lambda function" and
the SNS appendix), made fit for production. Runs on the AWS Lambda Python
runtime with its bundled boto3: standard library + boto3 only.

Environment:
  ENDPOINT_NAME         SageMaker endpoint to invoke (required)
  ALERT_THRESHOLD       fraud score at or above which an alert is sent (default 0.9)
  SNS_TOPIC_ARN         topic for alerts; when unset or empty no alert is sent
  CORS_ORIGIN           Access-Control-Allow-Origin of every answer (default "*")
  MAX_BATCH_ROWS        most transactions in one request (default 1000)
  INVOKE_TIMEOUT_SECONDS  read timeout of one endpoint call, 1..60 (default 10)
  LOG_LEVEL             logging level (default INFO)

Request (API Gateway proxy integration, REST v1 or HTTP API v2 payload), a
JSON body holding one of:
  * a list of 29 numbers (V1..V28, standardized Amount), as the lab sends;
  * a list of such lists (a batch);
  * an object {"V1": .., .., "V28": .., "Amount": raw amount} (or
    "Amount_std": standardized amount; "Time" and "Class" are ignored), or a
    list of such objects;
  * {"instances": <any of the above>} (or "inputs").
The body may be base64-encoded (isBase64Encoded). OPTIONS is a CORS preflight.

Answers (always JSON, always with CORS headers):
  200  the endpoint's JSON, passed through unchanged:
       {"result": {"classifications": [{"classes": [{"label": "0", "score": p0},
                                                    {"label": "1", "score": p1}]}, ..]}}
  400  {"error": ..., "error_type": "invalid_input"} for a body that is not a
       valid request (also when the model container rejects the input)
  405  method other than POST/OPTIONS; 413 body too large
  500  the function is misconfigured (e.g. ENDPOINT_NAME unset)
  502  {"error": ..., "error_type": "endpoint_error" | "endpoint_unreachable" |
       "bad_endpoint_response"} when the endpoint call fails

Alerts: one SNS message per transaction whose fraud score (class "1") is at
or above ALERT_THRESHOLD. The message holds the time (UTC, ISO 8601), the
score and a transaction reference (API Gateway request id + row index, or a
SHA-256 prefix of the features when there is no request id) - never the
features themselves. A failed publish is logged and does not fail the answer.

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

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)
try:
    logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO")
except ValueError:  # an unknown level name must not break the function's start
    logger.setLevel(logging.INFO)

N_FEATURES = 29
FEATURE_NAMES = tuple(f"V{i}" for i in range(1, 29)) + ("Amount",)
IGNORED_KEYS = frozenset({"Time", "Class"})
WRAPPER_KEYS = ("instances", "inputs")
DEFAULT_THRESHOLD = 0.9
DEFAULT_MAX_ROWS = 1000
# Lambda's synchronous payload limit and SageMaker's invocation limit are 6 MB.
MAX_BODY_BYTES = 6 * 1024 * 1024
CONTENT_TYPE = "application/json"
ALLOW_HEADERS = "Content-Type,Authorization,X-Amz-Date,X-Api-Key,X-Amz-Security-Token"
ALLOW_METHODS = "OPTIONS,POST"
ALERT_SUBJECT = "Card transaction alert: possible fraud"

_clients = {"sagemaker-runtime": None, "sns": None}


# ---- clients --------------------------------------------------------------------------


def set_clients(sagemaker_runtime=None, sns=None):
    """Injects clients (tests); None leaves that client to be created lazily."""
    _clients["sagemaker-runtime"] = sagemaker_runtime
    _clients["sns"] = sns


def reset_clients():
    """Forgets all clients; the next call creates them from the environment."""
    set_clients(None, None)


def _keep_error_body(http_response, parsed, **_):
    """botocore drops the body of an error that is not AWS-shaped (a model
    container reached directly answers {"error": ...}); keep its message."""
    try:
        error = parsed.get("Error")
        if http_response.status_code >= 300 and isinstance(error, dict) and not error.get("Message"):
            error["Message"] = _container_message(http_response.content.decode("utf-8", "replace"))
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
        "after-call.sagemaker-runtime.InvokeEndpoint", _keep_error_body, unique_id="ccfraud-keep-error-body"
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
    threshold = _env_float("ALERT_THRESHOLD", DEFAULT_THRESHOLD, 0.0, 1.0)
    max_rows = int(_env_float("MAX_BATCH_ROWS", DEFAULT_MAX_ROWS, 1, 100000))
    topic = os.environ.get("SNS_TOPIC_ARN", "").strip() or None
    return endpoint, threshold, max_rows, topic


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


def _error(status, message, error_type, **extra):
    payload = {"error": message, "error_type": error_type}
    payload.update(extra)
    return _answer(status, json.dumps(payload))


# ---- request parsing ------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, message, status=400, error_type="invalid_input"):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def _reject_constant(name):
    raise BadRequest(f"malformed JSON: {name} is not a valid number")


def _no_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise BadRequest(f"malformed JSON: duplicate key {key!r}")
        obj[key] = value
    return obj


def _body_text(event):
    body = event.get("body")
    if body is None:
        raise BadRequest("empty body: send at least one transaction")
    if not isinstance(body, str):
        raise BadRequest("body must be text")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("body is marked base64-encoded but is not valid base64") from None
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}", 413, "payload_too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"body is not valid UTF-8 (byte {e.start})") from None
    if not text.strip():
        raise BadRequest("empty body: send at least one transaction")
    return text


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v, where):
    if not _is_number(v):
        raise BadRequest(f"{where}: expected a finite number, found {_kind(v)}")
    try:
        x = float(v)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise BadRequest(f"{where}: expected a finite number")
    return x


def _kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if _is_number(v):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "an object"


def _number_row(items, row):
    if len(items) != N_FEATURES:
        raise BadRequest(
            f"row {row}: expected {N_FEATURES} features (V1..V28, Amount standardized), found {len(items)}"
        )
    return [_finite(v, f"row {row}, feature {j + 1} ({FEATURE_NAMES[j]})") for j, v in enumerate(items)]


def _named_row(obj, row):
    """Validates a named-feature object; returns its values in model order
    (Amount raw or standardized as given: the endpoint standardizes)."""
    values = {}
    for key, v in obj.items():
        if key in IGNORED_KEYS:
            continue
        if key == "Amount_std":
            name = "Amount"
        elif key in FEATURE_NAMES:
            name = key
        else:
            raise BadRequest(f"row {row}: unknown feature {key!r} (expected V1..V28 and Amount or Amount_std)")
        if name in values:
            raise BadRequest(f"row {row}: give either Amount or Amount_std, not both")
        values[name] = _finite(v, f"row {row}, feature {key}")
    missing = [n for n in FEATURE_NAMES if n not in values]
    if missing:
        raise BadRequest(f"row {row}: missing feature {missing[0]}")
    return [values[n] for n in FEATURE_NAMES]


def _rows(doc, top=True):
    if isinstance(doc, dict):
        for key in WRAPPER_KEYS:
            if key in doc:
                if not top:
                    raise BadRequest(f"{key!r} cannot be nested")
                if len(doc) != 1:
                    raise BadRequest(f"{key!r} must be the only key")
                if not isinstance(doc[key], (list, dict)):
                    raise BadRequest(f"{key!r} must hold a list")
                return _rows(doc[key], top=False)
        return [_named_row(doc, 1)]
    if isinstance(doc, list):
        if doc and all(_is_number(v) for v in doc):
            return [_number_row(doc, 1)]
        rows = []
        for i, item in enumerate(doc, start=1):
            if isinstance(item, list):
                rows.append(_number_row(item, i))
            elif isinstance(item, dict):
                rows.append(_named_row(item, i))
            else:
                raise BadRequest(
                    f"row {i}: expected a list of {N_FEATURES} numbers or an object of named features, "
                    f"found {_kind(item)}"
                )
        return rows
    raise BadRequest(
        f"expected a list of {N_FEATURES} numbers, a list of such lists, or an object; found {_kind(doc)}"
    )


def parse_transactions(text, max_rows=DEFAULT_MAX_ROWS):
    """Body text -> (the JSON document to forward, validated rows)."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise BadRequest(f"malformed JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise BadRequest("malformed JSON: nested too deeply") from None
    rows = _rows(doc)
    if not rows:
        raise BadRequest("no transactions in the body")
    if len(rows) > max_rows:
        raise BadRequest(f"{len(rows)} transactions in one request; the limit is {max_rows}", 413, "payload_too_large")
    return doc, rows


# ---- endpoint call --------------------------------------------------------------------


class EndpointFailure(Exception):
    def __init__(self, message, status=502, error_type="endpoint_error"):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


# Container answers that mean "this input is wrong", which the caller can fix.
_INPUT_STATUSES = frozenset({400, 413, 422})


def _container_message(text):
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return (text or "").strip()[:500]
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"]
    return str(text).strip()[:500]


def _classify_client_error(err):
    """botocore ClientError -> EndpointFailure (400 for rejected input, else 502)."""
    resp = err.response or {}
    code = resp.get("Error", {}).get("Code", "")
    http = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "ModelError":
        # SageMaker: the container answered non-2xx; its status and body are attached.
        original = resp.get("OriginalStatusCode")
        message = _container_message(resp.get("OriginalMessage") or resp.get("Error", {}).get("Message"))
        if original in _INPUT_STATUSES:
            return EndpointFailure(f"the model rejected the input: {message}", 400, "invalid_input")
        return EndpointFailure(f"the model failed (status {original}): {message}")
    if http in _INPUT_STATUSES and resp.get("Error", {}).get("Type") is None and code in ("", str(http)):
        # A model container reached directly (ccfraud serve, SageMaker local mode)
        # answers {"error": ..., "error_type": ...}, which botocore keeps as Message.
        message = resp.get("Error", {}).get("Message", "")
        return EndpointFailure(f"the model rejected the input: {message}", 400, "invalid_input")
    return EndpointFailure(f"endpoint call failed: {code or http}: {resp.get('Error', {}).get('Message', '')}")


def _invoke(endpoint, doc):
    client = _sagemaker_client()
    try:
        result = client.invoke_endpoint(
            EndpointName=endpoint,
            ContentType=CONTENT_TYPE,
            Accept="application/json",
            Body=json.dumps(doc, separators=(",", ":")).encode("utf-8"),
        )
        raw = result["Body"].read()
    except ClientError as e:
        failure = _classify_client_error(e)
        logger.warning("invoke_endpoint %s: %s", endpoint, failure)
        raise failure from None
    except BotoCoreError as e:
        logger.error("invoke_endpoint %s unreachable: %s", endpoint, e)
        raise EndpointFailure(f"endpoint unreachable: {type(e).__name__}", 502, "endpoint_unreachable") from None
    try:
        text = raw.decode("utf-8")
        answer = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        logger.error("invoke_endpoint %s: answer is not JSON (%d bytes)", endpoint, len(raw))
        raise EndpointFailure("endpoint answered with something that is not JSON", 502, "bad_endpoint_response") from None
    return text, answer


def fraud_scores(answer, n_rows):
    """The class-"1" score of each row from the endpoint's JSON."""
    try:
        classifications = answer["result"]["classifications"]
        if not isinstance(classifications, list) or len(classifications) != n_rows:
            raise ValueError(f"{n_rows} transactions sent, {len(classifications)} classifications received")
        scores = []
        for c in classifications:
            classes = c["classes"]
            by_label = {str(k["label"]): k["score"] for k in classes}
            score = by_label["1"] if "1" in by_label else classes[1]["score"]
            score = float(score)
            if not math.isfinite(score):
                raise ValueError("score is not finite")
            scores.append(score)
        return scores
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise EndpointFailure(
            f"endpoint answer has an unexpected shape: {e}", 502, "bad_endpoint_response"
        ) from None


# ---- alerts ---------------------------------------------------------------------------


def transaction_reference(request_id, index, row):
    """Points at a transaction without revealing it."""
    if request_id:
        return f"{request_id}#{index}"
    canonical = json.dumps([float(v) for v in row], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


def alert_message(score, reference, when):
    return (
        "A card transaction was flagged as possible fraud.\n"
        f"Time (UTC): {when}\n"
        f"Fraud score: {score:.4f}\n"
        f"Transaction reference: {reference}\n"
        "Do you recognise this transaction? If not, please check your card account."
    )


def _publish_alerts(topic, threshold, scores, rows, request_id):
    sent = 0
    flagged = [i for i, s in enumerate(scores) if s >= threshold]
    if not flagged:
        return 0
    if topic is None:
        logger.info("%d transaction(s) at or above %.4f; SNS_TOPIC_ARN unset, no alert sent", len(flagged), threshold)
        return 0
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for i in flagged:
        reference = transaction_reference(request_id, i, rows[i])
        try:
            _sns_client().publish(
                TopicArn=topic,
                Subject=ALERT_SUBJECT,
                Message=alert_message(scores[i], reference, when),
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
        endpoint, threshold, max_rows, topic = _settings()
    except ConfigError as e:
        logger.error("misconfigured: %s", e)
        return _error(500, "the fraud-check service is misconfigured", "misconfigured")

    try:
        doc, rows = parse_transactions(_body_text(event), max_rows)
    except BadRequest as e:
        return _error(e.status, str(e), e.error_type)

    request_id = _request_id(event, context)
    try:
        text, answer = _invoke(endpoint, doc)
        scores = fraud_scores(answer, len(rows))
    except EndpointFailure as e:
        return _error(e.status, str(e), e.error_type)

    sent = _publish_alerts(topic, threshold, scores, rows, request_id)
    logger.info(
        "request %s: %d transaction(s), max fraud score %.4f, %d alert(s) sent",
        request_id, len(rows), max(scores), sent,
    )
    return _answer(200, text)

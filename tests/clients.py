"""One running `ccfraud serve`, every client a team would point at it, the
lab's example fraud (issue 14's acceptance): each client is the library as
published, unmodified, and all must give the same fraud probability.

    python tests/clients.py http://127.0.0.1:PORT [MIN_SCORE]

1. the lab's Lambda code, verbatim (tests/lab_lambda.py), through boto3;
2. boto3's `sagemaker-runtime` `invoke_endpoint` (CSV in, JSON out, with an
   `InferenceId`);
3. the SageMaker Python SDK's `Predictor` (JSON serializer) and
   `TensorFlowPredictor` (SageMaker's TF Serving client: `predict` with
   `instances`, `classify` with `examples`, through `tfs-method`);
4. TF Serving's REST API as its documentation calls it (`GET
   /v1/models/ccfraud`, `POST …:predict` and `…:classify`); no REST client
   library of TF Serving exists on PyPI (`tensorflow-serving-api` is gRPC
   and needs TensorFlow), so these are plain HTTP requests of the
   documented shapes;
5. `tritonclient[http]`, an Open Inference Protocol v2 client: live,
   ready, metadata, and `infer` with its default binary tensor data.

Needs boto3, sagemaker (v2) and tritonclient[http] (scripts/test.sh makes
the venv, scripts/requirements-clients.txt). Prints one line per client and
`clients fraud score: P`; exits 1 when a client fails, two clients
disagree, or the score is below MIN_SCORE (default 0).
"""
import json
import os
import sys
import urllib.request

URL = sys.argv[1].rstrip("/")
MIN_SCORE = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# the lab's handler, verbatim; importing it points boto3 at URL and sets
# dummy credentials (SageMaker is never reached)
import lab_lambda  # noqa: E402

import boto3  # noqa: E402
import numpy as np  # noqa: E402

FRAUD = lab_lambda.LAB_FRAUD
# the lab's columns by name (the 29th is the standardized amount)
NAMES = [f"V{i}" for i in range(1, 29)] + ["Amount_std"]
scores = {}


def record(client, score):
    scores[client] = float(score)
    print(f"{client}: {float(score):.6f}")


def http_json(method, path, body=None):
    req = urllib.request.Request(
        URL + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


# 1. the lab's Lambda
out = lab_lambda.lambda_handler({"body": json.dumps(FRAUD)}, None)
assert out["statusCode"] == 200, out
record("lab lambda", json.loads(out["body"])["result"]["classifications"][0]["classes"][1]["score"])

# 2. boto3 sagemaker-runtime
runtime = boto3.client("sagemaker-runtime", endpoint_url=URL, region_name="us-east-1")
answer = runtime.invoke_endpoint(
    EndpointName="ccfraud-endpoint",
    ContentType="text/csv",
    Accept="application/json",
    Body=",".join(repr(v) for v in FRAUD),
    InferenceId="clients-py-1",
)
record("boto3 sagemaker-runtime", json.loads(answer["Body"].read())["result"]["classifications"][0]["classes"][1]["score"])

# 3. the SageMaker SDK's predictors
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
from sagemaker.deserializers import JSONDeserializer  # noqa: E402
from sagemaker.predictor import Predictor  # noqa: E402
from sagemaker.serializers import JSONSerializer  # noqa: E402
from sagemaker.session import Session  # noqa: E402
from sagemaker.tensorflow import TensorFlowPredictor  # noqa: E402

session = Session(
    boto_session=boto3.Session(region_name="us-east-1"),
    sagemaker_runtime_client=runtime,
    sagemaker_config={"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}},
)
predictor = Predictor("ccfraud-endpoint", sagemaker_session=session, serializer=JSONSerializer(), deserializer=JSONDeserializer())
record("sagemaker Predictor", predictor.predict([FRAUD])["result"]["classifications"][0]["classes"][1]["score"])
tf = TensorFlowPredictor("ccfraud-endpoint", sagemaker_session=session, model_name="ccfraud")
record("sagemaker TensorFlowPredictor.predict", tf.predict({"instances": [FRAUD]})["predictions"][0])
example = dict(zip(NAMES, FRAUD))
classified = tf.classify({"signature_name": "serving_default", "examples": [example]})["result"][0]
assert [c[0] for c in classified] == ["0", "1"], classified
record("sagemaker TensorFlowPredictor.classify", classified[1][1])

# 4. TF Serving REST, the documented calls
status = http_json("GET", "/v1/models/ccfraud")["model_version_status"][0]
assert status["state"] == "AVAILABLE", status
record("TF Serving REST :predict", http_json("POST", "/v1/models/ccfraud:predict", {"instances": [FRAUD]})["predictions"][0])
record("TF Serving REST :classify", http_json("POST", "/v1/models/ccfraud/versions/1:classify", {"examples": [example]})["result"][0][1][1])

# 5. an Open Inference Protocol v2 client
import tritonclient.http as triton  # noqa: E402

client = triton.InferenceServerClient(url=URL.split("://", 1)[-1])
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("ccfraud")
meta = client.get_model_metadata("ccfraud")
assert meta["inputs"][0]["shape"] == [-1, 29], meta
tensor = triton.InferInput("features", [1, 29], "FP32")
tensor.set_data_from_numpy(np.array([FRAUD], dtype=np.float32))  # binary by default
result = client.infer("ccfraud", inputs=[tensor], outputs=[triton.InferRequestedOutput("probability"), triton.InferRequestedOutput("predicted_label")])
record("tritonclient (OIP v2) infer", result.as_numpy("probability")[0])
assert int(result.as_numpy("predicted_label")[0]) in (0, 1)

# one answer: f32 text round trips may differ in the last digits only
low, high = min(scores.values()), max(scores.values())
if high - low > 1e-6:
    print(f"clients disagree: {scores}")
    sys.exit(1)
print(f"clients fraud score: {high:.4f} ({len(scores)} clients)")
sys.exit(0 if high >= MIN_SCORE else 1)

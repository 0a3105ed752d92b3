"""Runs the lab's Lambda handler, as printed in the lab's README, unmodified,
against a running `ccfraud serve`.

boto3's `runtime.sagemaker` client is pointed at the server through
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME (boto3's per-service endpoint variable), so
the request goes over HTTP to POST /endpoints/{name}/invocations exactly as
it would to SageMaker, with no Content-Type, as the lab's code sends it.

    python3 tests/lab_lambda.py http://127.0.0.1:PORT
Prints the fraud score of the lab's example transaction; exits 1 when the
handler fails or the score is below 0.9.
"""
import json
import os
import sys

os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = sys.argv[1]
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

# --- the lab's Lambda function, verbatim (LAB.md, "Create a Lambda function") ---
import boto3
import json
client = boto3.client('runtime.sagemaker')
ENDPOINT_NAME = 'sagemaker-tensorflow-xxxx-xx-xx-xx-xx-xx-xxx'

def lambda_handler(event, context):
    # TODO implement
    print(event['body'])
    print(type(event['body']))
    # list(event['body'])
    target = json.loads(event['body'])
    result = client.invoke_endpoint(EndpointName=ENDPOINT_NAME,Body=json.dumps(target))
    response = json.loads(result['Body'].read())

    print(response)

    http_response = {
        'statusCode': 200,
        'body': json.dumps(response),
        'headers':{
            'Content-Type':'application/json',
            'Access-Control-Allow-Origin':'*'
        }
    }
    return http_response
# --- end of the lab's code ---

# The lab's example fraud, from the one copy the demo, tests and scripts share.
_EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "demo_examples.json")
with open(_EXAMPLES) as f:
    LAB_FRAUD = next(e["features"] for e in json.load(f)["examples"] if e["id"] == "lab-fraud")

if __name__ == "__main__":
    out = lambda_handler({"body": json.dumps(LAB_FRAUD)}, None)
    assert out["statusCode"] == 200, out
    # the web app's parsing path
    result = json.loads(out["body"])
    score = result["result"]["classifications"][0]["classes"][1]["score"]
    print(f"lab lambda fraud score: {score:.4f}")
    sys.exit(0 if score >= 0.9 else 1)

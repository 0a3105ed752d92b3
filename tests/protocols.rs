//! The real `ccfraud serve` speaking every protocol of issue 14 over HTTP:
//! TF Serving REST (`/v1/models/…`, and `tfs-method` through
//! `/invocations`), the Open Inference Protocol v2 (`/v2/…`, JSON and
//! binary tensors), `signature_name` on `/invocations`, and the SageMaker
//! settings `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` and
//! `SAGEMAKER_INFERENCE_OUTPUT`. Every protocol must give the same score
//! as `/invocations` for the same rows. (Each protocol's own client
//! library is run against the server by `scripts/test-clients.sh`.)

mod common;
use common::*;

fn rows(n: usize, seed: u64) -> Vec<Vec<f64>> {
    lab_csv(n, seed)
        .lines()
        .map(|l| l.split(',').take(29).map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// The fraud probabilities `/invocations` gives for `rows` (JSON asked
/// explicitly: a server under test may default to another format).
fn reference(s: &Server, rows: &[Vec<f64>]) -> Vec<f64> {
    let body = serde_json::to_vec(rows).unwrap();
    let (status, _, out) = s.request(
        "POST",
        "/invocations",
        &[JSON, ("Accept", "application/json")],
        &body,
    );
    assert_eq!(status, 200);
    json(&out)["result"]["classifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["classes"][1]["score"].as_f64().unwrap())
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn tf_serving_rest_predict_classify_regress_status_metadata() {
    let s = Server::start(trained_all(), &[]);
    let r = rows(3, 41);
    let want = reference(&s, &r);
    // status and metadata, by name and by version
    for path in ["/v1/models/ccfraud", "/v1/models/ccfraud/versions/1"] {
        let (status, _, body) = s.request("GET", path, &[], b"");
        assert_eq!(status, 200, "{path}");
        assert_eq!(json(&body)["model_version_status"][0]["state"], "AVAILABLE");
    }
    let (status, _, body) = s.request("GET", "/v1/models/ccfraud/metadata", &[], b"");
    assert_eq!(status, 200);
    let sig = &json(&body)["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"].as_object().unwrap().len(), 29);
    // predict, row format
    let body = serde_json::json!({"signature_name": "serving_default", "instances": r}).to_string();
    let (status, _, out) = s.request(
        "POST",
        "/v1/models/ccfraud:predict",
        &[JSON],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    close(&floats(&json(&out)["predictions"]), &want);
    // predict, columnar: one list per named column
    let names: Vec<String> = (1..=28)
        .map(|i| format!("V{i}"))
        .chain(["Amount_std".to_string()])
        .collect();
    let columns: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(j, n)| {
            (
                n.clone(),
                r.iter().map(|row| row[j]).collect::<Vec<f64>>().into(),
            )
        })
        .collect();
    let body = serde_json::json!({"inputs": columns}).to_string();
    let (status, _, out) = s.request(
        "POST",
        "/v1/models/ccfraud/versions/1:predict",
        &[JSON],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    close(&floats(&json(&out)["outputs"]), &want);
    // classify and regress with tf.Example-style features (one-item lists)
    let examples: Vec<serde_json::Value> = r
        .iter()
        .map(|row| {
            names
                .iter()
                .zip(row)
                .map(|(n, v)| (n.clone(), serde_json::json!([v])))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let body = serde_json::json!({"examples": examples}).to_string();
    let (status, _, out) = s.request(
        "POST",
        "/v1/models/ccfraud:classify",
        &[JSON],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let result = &json(&out)["result"];
    let got: Vec<f64> = result
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c[0][0], "0");
            assert_eq!(c[1][0], "1");
            c[1][1].as_f64().unwrap()
        })
        .collect();
    close(&got, &want);
    let (status, _, out) = s.request(
        "POST",
        "/v1/models/ccfraud:regress",
        &[JSON],
        body.as_bytes(),
    );
    assert_eq!(status, 200);
    close(&floats(&json(&out)["result"]), &want);
    // refusals: TF Serving's {"error": …}, with the status that fits
    let cases: [(&str, &str, &str, u16, &str); 6] = [
        (
            "POST",
            "/v1/models/other:predict",
            "{}",
            404,
            "'other' is not served",
        ),
        (
            "POST",
            "/v1/models/ccfraud/versions/2:predict",
            "{}",
            404,
            "version 2",
        ),
        ("GET", "/v1/models/ccfraud:predict", "", 405, "GET"),
        ("POST", "/v1/models/ccfraud", "{}", 405, "POST"),
        ("POST", "/v1/models/ccfraud:explode", "{}", 404, "no route"),
        (
            "POST",
            "/v1/models/ccfraud:predict",
            r#"{"signature_name": "x", "instances": []}"#,
            400,
            "signature_name 'x'",
        ),
    ];
    for (method, path, body, want_status, text) in cases {
        let (status, _, out) = s.request(method, path, &[JSON], body.as_bytes());
        assert_eq!(status, want_status, "{method} {path}");
        let e = json(&out)["error"].as_str().unwrap().to_string();
        assert!(e.contains(text), "{method} {path}: {e}");
    }
}

#[test]
fn sagemaker_tensorflow_attributes_and_signature_name_on_invocations() {
    let s = Server::start(trained_all(), &[]);
    let r = rows(2, 42);
    let want = reference(&s, &r);
    // TensorFlowPredictor.predict: the body is a TF Serving request, the
    // answer its shape
    let body = serde_json::json!({"instances": r}).to_string();
    let (status, headers, out) = s.request(
        "POST",
        "/invocations",
        &[
            JSON,
            (
                "X-Amzn-SageMaker-Custom-Attributes",
                "tfs-method=predict,tfs-model-name=ccfraud",
            ),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    assert!(headers.contains("tfs-method=predict"), "{headers}");
    close(&floats(&json(&out)["predictions"]), &want);
    let (status, _, out) = s.request(
        "POST",
        "/invocations",
        &[
            JSON,
            ("X-Amzn-SageMaker-Custom-Attributes", "tfs-method=classify"),
        ],
        serde_json::json!({"examples": [{"V1": 0.0}]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(json(&out)["error"]
        .as_str()
        .unwrap()
        .contains("missing feature V2"));
    let (status, _, _) = s.request(
        "POST",
        "/invocations",
        &[
            JSON,
            ("X-Amzn-SageMaker-Custom-Attributes", "tfs-model-name=other"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 404);
    // signature_name beside instances: the default is accepted and the
    // answer is the lab's shape; another signature is a 400 naming it
    let body = serde_json::json!({"signature_name": "serving_default", "instances": r}).to_string();
    let (status, _, out) = s.request("POST", "/invocations", &[JSON], body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let got: Vec<f64> = json(&out)["result"]["classifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["classes"][1]["score"].as_f64().unwrap())
        .collect();
    close(&got, &want);
    let body = serde_json::json!({"signature_name": "predict_images", "instances": r}).to_string();
    let (status, _, out) = s.request("POST", "/invocations", &[JSON], body.as_bytes());
    assert_eq!(status, 400);
    assert_eq!(json(&out)["field"], "signature_name");
}

#[test]
fn open_inference_protocol_v2_json_and_binary() {
    let s = Server::start(trained_all(), &["--model-name", "fraud"]);
    let r = rows(3, 43);
    let want = reference(&s, &r);
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/fraud/ready",
        "/v2/models/fraud/versions/1/ready",
        "/v2",
    ] {
        let (status, _, _) = s.request("GET", path, &[], b"");
        assert_eq!(status, 200, "{path}");
    }
    let (status, _, _) = s.request("GET", "/v2/models/ccfraud/ready", &[], b"");
    assert_eq!(status, 404);
    let (status, _, body) = s.request("GET", "/v2/models/fraud", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(
        json(&body)["inputs"][0]["shape"],
        serde_json::json!([-1, 29])
    );
    // JSON tensor [N, 29], FP64
    let flat: Vec<f64> = r.iter().flatten().copied().collect();
    let body = serde_json::json!({"id": "q1", "inputs": [{"name": "features", "shape": [3, 29], "datatype": "FP64", "data": flat}]}).to_string();
    let (status, _, out) = s.request("POST", "/v2/models/fraud/infer", &[JSON], body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let v = json(&out);
    assert_eq!(
        (v["model_name"].as_str(), v["id"].as_str()),
        (Some("fraud"), Some("q1"))
    );
    assert_eq!(v["outputs"][0]["name"], "probability");
    close(&floats(&v["outputs"][0]["data"]), &want);
    // binary extension, FP32: the JSON header, then the raw tensor
    let bin: Vec<u8> = flat
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    let header = serde_json::json!({"inputs": [{"name": "features", "shape": [3, 29], "datatype": "FP32", "parameters": {"binary_data_size": bin.len()}}], "outputs": [{"name": "probability", "parameters": {"binary_data": true}}]}).to_string();
    let mut body = header.clone().into_bytes();
    body.extend(&bin);
    let n = header.len().to_string();
    let (status, _, out) = s.request(
        "POST",
        "/v2/models/fraud/versions/1/infer",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Inference-Header-Content-Length", &n),
        ],
        &body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let v = json(&out);
    assert_eq!(v["outputs"].as_array().unwrap().len(), 1);
    close(&floats(&v["outputs"][0]["data"]), &want);
    // refusals name the input
    let body = serde_json::json!({"inputs": [{"name": "features", "shape": [3, 28], "datatype": "FP64", "data": flat}]}).to_string();
    let (status, _, out) = s.request("POST", "/v2/models/fraud/infer", &[JSON], body.as_bytes());
    assert_eq!(status, 400);
    assert!(json(&out)["error"]
        .as_str()
        .unwrap()
        .starts_with("input 'features': shape [3, 28]"));
    let (status, _, _) = s.request(
        "POST",
        "/v2/models/fraud/infer",
        &[("Inference-Header-Content-Length", "x")],
        b"{}",
    );
    assert_eq!(status, 400);
}

#[test]
fn default_accept_and_inference_output_shape_batch_answers() {
    let s = Server::start(
        trained_all(),
        &[
            "--default-accept",
            "text/csv",
            "--inference-output",
            "predicted_label,probability",
        ],
    );
    let r = rows(3, 44);
    let want = reference(&s, &r);
    let csv: String = r
        .iter()
        .map(|row| row.iter().map(f64::to_string).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n");
    // batch transform: CSV in, no Accept: one CSV line per record
    let (status, headers, out) = s.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv")],
        csv.as_bytes(),
    );
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: text/csv"), "{headers}");
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for (line, p) in lines.iter().zip(&want) {
        let (label, prob) = line.split_once(',').unwrap();
        let prob: f64 = prob.parse().unwrap();
        assert!((prob - p).abs() < 1e-6, "{line}");
        assert!(label == "0" || label == "1");
    }
    // an explicit Accept still wins; JSON keeps the lab's shape
    let (status, _, out) = s.request(
        "POST",
        "/invocations",
        &[
            ("Content-Type", "text/csv"),
            ("Accept", "application/jsonlines"),
        ],
        csv.as_bytes(),
    );
    assert_eq!(status, 200);
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
    assert!(
        first["predicted_label"].is_u64() && first["probability"].is_f64(),
        "{first}"
    );
    // a bad setting stops the server at start with a usage error
    let out = ccfraud()
        .args(["serve", "--port", "0", "--host", "127.0.0.1", "--ml-root"])
        .arg(trained_all())
        .env("SAGEMAKER_INFERENCE_OUTPUT", "score")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SAGEMAKER_INFERENCE_OUTPUT 'score'"));
}

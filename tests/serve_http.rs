//! The real `ccfraud serve` binary on an ephemeral port, with a model trained
//! by the real `ccfraud train`: every request and response format, `Accept`
//! quality values, batch equals single, every client error, the SageMaker
//! runtime path, the lab's own request (its example fraud read from
//! `data/demo_examples.json`, the copy the demo page serves), CORS for the
//! demo page, start-up failures and SIGTERM; `GET /schema`, and a model
//! trained on a user's CSV (issue 11) serving requests under its schema. Also the real `ccfraud demo`:
//! its page, and alerts reaching the log file and a real webhook listener.

mod common;
use common::*;
use std::process::Command;

fn rows(n: usize, seed: u64) -> Vec<Vec<f64>> {
    lab_csv(n, seed)
        .lines()
        .map(|l| l.split(',').take(29).map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn json_list(r: &[f64]) -> String {
    serde_json::to_string(r).unwrap()
}

fn scores_of(body: &[u8]) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    v["result"]["classifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let a = c["classes"][0]["score"].as_f64().unwrap();
            let b = c["classes"][1]["score"].as_f64().unwrap();
            assert_eq!(c["classes"][0]["label"], "0");
            assert_eq!(c["classes"][1]["label"], "1");
            assert!((a + b - 1.0).abs() < 1e-6);
            b
        })
        .collect()
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// (name, headers, body)
type FormatCase = (&'static str, Vec<(&'static str, &'static str)>, String);
/// (name, headers, body, expected status, text the error must contain)
type ErrorCase = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn ping_and_execution_parameters() {
    let s = Server::start(trained_all(), &["--workers", "3"]);
    let (status, _, body) = s.request("GET", "/ping", &[], b"");
    assert_eq!((status, body.len()), (200, 0));
    let (status, _, body) = s.request("GET", "/execution-parameters", &[], b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["MaxConcurrentTransforms"], 3);
    assert_eq!(v["BatchStrategy"], "MULTI_RECORD");
    assert_eq!(v["MaxPayloadInMB"], 6);
}

/// `GET /report` answers the training report beside the model, and 404
/// (the JSON error shape) for a model folder without one.
#[test]
fn the_training_report_is_served_when_the_model_has_one() {
    let s = Server::start(trained_all(), &[]);
    let (status, head, body) = s.request("GET", "/report", &[], b"");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<title>ccfraud training report</title>"));
    assert!(html.contains("ROC on test") || html.contains("ROC on validation"));
    let (status, _, _) = s.request("POST", "/report", &[], b"");
    assert_eq!(status, 405);

    let bare = tempfile::tempdir().unwrap();
    let model = bare.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(
        trained_all().join("model/ccfraud-model.json"),
        model.join("ccfraud-model.json"),
    )
    .unwrap();
    let s = Server::start(bare.path(), &[]);
    let (status, _, body) = s.request("GET", "/report", &[], b"");
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].is_string(), "{v}");
}

/// `GET /schema` answers the model's schema exactly as `Schema` writes it:
/// for the lab's model, its 29 numeric columns, label `Class`.
#[test]
fn schema_route_answers_the_labs_schema() {
    let s = Server::start(trained_all(), &[]);
    let (status, head, body) = s.request("GET", "/schema", &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.contains("content-type: application/json"), "{head}");
    let text = String::from_utf8(body).unwrap();
    let columns: Vec<String> = (1..=28)
        .map(|i| format!("V{i}"))
        .chain(["Amount".to_string()])
        .map(|n| format!(r#"{{"name":"{n}","kind":"numeric"}}"#))
        .collect();
    let want = format!(
        r#"{{"form":"lab","columns":[{}],"label":"Class","amount":"Amount"}}"#,
        columns.join(",")
    );
    assert_eq!(text, want);
    assert_eq!(
        text,
        serde_json::to_string(&ccfraud::schema::Schema::lab()).unwrap()
    );
    // HEAD: the same head, no body
    let (status, head, body) = s.request("HEAD", "/schema", &[], b"");
    assert_eq!((status, body.len()), (200, 0));
    assert!(head.contains("content-type: application/json"), "{head}");
    let (status, _, body) = s.request("POST", "/schema", &[JSON], b"{}");
    assert_eq!(status, 405, "{}", String::from_utf8_lossy(&body));
}

/// Issue 11: a model trained by the real `ccfraud train` on a user's CSV
/// (a header, a categorical column of strings, empty fields) serves
/// requests under its schema: named and positional JSON, JSON Lines and
/// CSV with a header in any column order give the same scores; missing
/// values and unknown categories are answered; unknown, omitted and
/// mistyped columns are refused by name.
#[test]
fn a_model_of_a_users_csv_serves_requests_under_its_schema() {
    let root = trained_header();
    let s = Server::start(root, &[]);
    let (status, head, body) = s.request("GET", "/schema", &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.contains("content-type: application/json"), "{head}");
    let schema: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(schema["form"], "header");
    assert_eq!(schema["label"], "is_fraud");
    assert_eq!(schema["amount"], "amount");
    let names: Vec<&str> = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["amount", "country", "hour"]);
    assert_eq!(schema["columns"][1]["kind"], "categorical");
    let mut vocabulary: Vec<&str> = schema["columns"][1]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    vocabulary.sort();
    assert_eq!(vocabulary, ["FR", "GB", "NG", "US"]);
    // the route answers what the artifact holds, byte for byte
    let artifact = std::fs::read_to_string(root.join("model/ccfraud-model.json")).unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(artifact.lines().nth(1).unwrap()).unwrap();
    assert_eq!(schema, payload["schema"]);

    // (amount, country, hour); None is a missing value
    let txs: [(Option<f64>, Option<&str>, Option<u32>); 5] = [
        (Some(12.5), Some("US"), Some(14)),
        (Some(640.0), Some("NG"), Some(2)),
        (None, Some("GB"), Some(9)),
        (Some(75.0), None, None),
        (Some(80.0), Some("ZZ"), Some(3)),
    ];
    let lists: Vec<serde_json::Value> = txs
        .iter()
        .map(|(a, c, h)| serde_json::json!([a, c, h]))
        .collect();
    let named: Vec<serde_json::Value> = txs
        .iter()
        .map(|(a, c, h)| serde_json::json!({"hour": h, "is_fraud": 0, "country": c, "amount": a}))
        .collect();
    let field = |v: Option<String>| v.unwrap_or_default();
    let csv_header: String = std::iter::once("hour,country,amount\n".to_string())
        .chain(txs.iter().map(|(a, c, h)| {
            format!(
                "{},{},{}\n",
                field(h.map(|h| h.to_string())),
                field(c.map(str::to_string)),
                field(a.map(|a| a.to_string()))
            )
        }))
        .collect();
    let csv_plain: String = txs
        .iter()
        .map(|(a, c, h)| {
            format!(
                "{},{},{}\n",
                field(a.map(|a| a.to_string())),
                field(c.map(str::to_string)),
                field(h.map(|h| h.to_string()))
            )
        })
        .collect();
    let jsonl: String = named.iter().map(|v| v.to_string() + "\n").collect();
    for kind in ["dnn", "logistic", "forest", "gbdt"] {
        let s = Server::start(root, &["--model", kind]);
        let single: Vec<f64> = lists
            .iter()
            .map(|l| {
                let (status, _, out) =
                    s.request("POST", "/invocations", &[], l.to_string().as_bytes());
                assert_eq!(status, 200, "{kind} {l}: {}", String::from_utf8_lossy(&out));
                let v = scores_of(&out);
                assert_eq!(v.len(), 1);
                v[0]
            })
            .collect();
        let cases: Vec<FormatCase> = vec![
            (
                "list of lists",
                vec![JSON],
                serde_json::json!(lists).to_string(),
            ),
            (
                "instances",
                vec![JSON],
                serde_json::json!({"instances": lists}).to_string(),
            ),
            ("named", vec![JSON], serde_json::json!(named).to_string()),
            (
                "jsonl named",
                vec![("Content-Type", "application/jsonlines")],
                jsonl.clone(),
            ),
            (
                "csv with a header",
                vec![("Content-Type", "text/csv")],
                csv_header.clone(),
            ),
            ("csv detected", vec![], csv_header.clone()),
            ("csv", vec![("Content-Type", "text/csv")], csv_plain.clone()),
        ];
        for (name, headers, body) in cases {
            let (status, _, out) = s.request("POST", "/invocations", &headers, body.as_bytes());
            assert_eq!(
                status,
                200,
                "{kind} {name}: {}",
                String::from_utf8_lossy(&out)
            );
            let got = scores_of(&out);
            assert_eq!(got.len(), single.len(), "{kind} {name}");
            for (a, b) in got.iter().zip(&single) {
                assert!((a - b).abs() < 1e-5, "{kind} {name}: {a} vs {b}");
            }
        }
        // every country outside the vocabulary is the same "other"
        let other = |c: &str| {
            let body = serde_json::json!({"amount": 80.0, "country": c, "hour": 3}).to_string();
            let (status, _, out) = s.request("POST", "/invocations", &[JSON], body.as_bytes());
            assert_eq!(status, 200, "{kind} {c}: {}", String::from_utf8_lossy(&out));
            scores_of(&out)[0]
        };
        assert!((other("QQ") - single[4]).abs() < 1e-6, "{kind}");
        assert!(
            (other("a country never seen") - single[4]).abs() < 1e-6,
            "{kind}"
        );
    }

    let errors: Vec<ErrorCase> = vec![
        (
            "unknown column",
            vec![JSON],
            br#"{"amount": 1, "country": "US", "hour": 3, "merchant": "x"}"#.to_vec(),
            400,
            "unknown column 'merchant' (the model's columns: amount, country, hour)",
        ),
        (
            "omitted column",
            vec![JSON],
            br#"[{"amount": 1, "country": "US", "hour": 3}, {"amount": 1, "country": "US"}]"#
                .to_vec(),
            400,
            "row 2: missing column 'hour'",
        ),
        (
            "string in a numeric column",
            vec![JSON],
            br#"[12.5, "US", "night"]"#.to_vec(),
            400,
            "expected a number for column 'hour', found a string \"night\"",
        ),
        (
            "feature count",
            vec![],
            b"[12.5, \"US\"]".to_vec(),
            400,
            "expected 3 features (the model's columns: amount, country, hour), found 2",
        ),
        (
            "csv header of a column the model lacks",
            vec![("Content-Type", "text/csv")],
            b"amount,country,hour,merchant\n1,US,3,x\n".to_vec(),
            400,
            "unknown column 'merchant'",
        ),
        (
            "csv string in a numeric column",
            vec![("Content-Type", "text/csv")],
            b"1,US,3\nx,US,3\n".to_vec(),
            400,
            "line 2, column 1 (amount): not a number: 'x'",
        ),
    ];
    let fields = ["merchant", "hour", "hour", "", "merchant", "amount"];
    for ((name, headers, body, want, text), field) in errors.into_iter().zip(fields) {
        let (status, head, out) = s.request("POST", "/invocations", &headers, &body);
        assert_eq!(status, want, "{name}: {}", String::from_utf8_lossy(&out));
        assert!(
            head.contains("content-type: application/json"),
            "{name}: {head}"
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(text), "{name}: {msg}");
        assert_eq!(v["error_type"], "invalid_input", "{name}");
        assert_eq!(v["field"].as_str().unwrap_or(""), field, "{name}: {msg}");
    }
}

#[test]
fn every_request_format_gives_the_same_scores_as_single_requests() {
    let s = Server::start(trained_all(), &[]);
    let batch = rows(50, 3);
    let single: Vec<f64> = batch
        .iter()
        .map(|r| {
            let (status, _, body) = s.request("POST", "/invocations", &[], json_list(r).as_bytes());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v = scores_of(&body);
            assert_eq!(v.len(), 1);
            v[0]
        })
        .collect();
    let list = serde_json::to_string(&batch).unwrap();
    let csv: String = batch
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
                + "\n\n"
        })
        .collect();
    let jsonl: String = batch.iter().map(|r| json_list(r) + "\n").collect();
    let named = serde_json::to_string(
        &batch
            .iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                for (j, v) in r.iter().enumerate().take(28) {
                    m.insert(format!("V{}", j + 1), (*v).into());
                }
                // raw Amount that standardizes back to the row's value
                m.insert(
                    "Amount".into(),
                    (r[28] * 250.1196701352354 + 88.34961925093134).into(),
                );
                serde_json::Value::Object(m)
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let cases: Vec<FormatCase> = vec![
        ("list of lists", vec![JSON], list.clone()),
        (
            "charset",
            vec![("Content-Type", "application/json; charset=utf-8")],
            list.clone(),
        ),
        (
            "instances",
            vec![JSON],
            format!("{{\"instances\": {list}}}"),
        ),
        ("inputs", vec![JSON], format!("{{\"inputs\": {list}}}")),
        ("named", vec![JSON], named),
        ("csv", vec![("Content-Type", "text/csv")], csv.clone()),
        (
            "csv detected",
            vec![("Content-Type", "application/octet-stream")],
            csv,
        ),
        (
            "jsonl",
            vec![("Content-Type", "application/jsonlines")],
            jsonl.clone(),
        ),
        ("jsonl detected", vec![], jsonl),
        (
            "octet-stream json",
            vec![
                ("Content-Type", "application/octet-stream"),
                ("Accept", "*/*"),
            ],
            list,
        ),
    ];
    for (name, headers, body) in cases {
        let (status, _, out) = s.request("POST", "/invocations", &headers, body.as_bytes());
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&out));
        let got = scores_of(&out);
        assert_eq!(got.len(), single.len(), "{name}");
        for (a, b) in got.iter().zip(&single) {
            assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn csv_and_jsonlines_responses_and_custom_attributes() {
    let s = Server::start(trained_all(), &[]);
    let batch = rows(5, 4);
    let list = serde_json::to_string(&batch).unwrap();
    let (status, head, body) = s.request(
        "POST",
        "/invocations",
        &[
            JSON,
            ("Accept", "text/csv"),
            ("X-Amzn-SageMaker-Custom-Attributes", "trace=abc"),
        ],
        list.as_bytes(),
    );
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/csv"), "{head}");
    assert!(
        head.contains("x-amzn-sagemaker-custom-attributes: trace=abc"),
        "{head}"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(!text.ends_with('\n'));
    assert_eq!(text.lines().count(), 5);
    for line in text.lines() {
        let (score, decision) = line.split_once(',').unwrap();
        let score: f64 = score.parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(decision == "0" || decision == "1");
    }
    let (status, head, body) = s.request(
        "POST",
        "/invocations",
        &[JSON, ("Accept", "application/jsonlines")],
        list.as_bytes(),
    );
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/jsonlines"));
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.lines().count(), 5);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["score"].is_f64() && v["fraud"].is_boolean());
    }
}

#[test]
fn client_errors_are_json_4xx_and_the_server_keeps_serving() {
    let s = Server::start(trained_all(), &["--max-body-bytes", "100000"]);
    let good = json_list(&rows(1, 5)[0]);
    let big = "1,".repeat(60_000);
    let deep = "[".repeat(5000);
    let cases: Vec<ErrorCase> = vec![
        (
            "malformed",
            vec![JSON],
            b"[1, 2".to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "feature count",
            vec![JSON],
            b"[1, 2, 3]".to_vec(),
            400,
            "expected 29 features",
        ),
        (
            "non-numeric",
            vec![JSON],
            good.replacen('[', "[\"x\",", 1).into_bytes(),
            400,
            "found a string",
        ),
        (
            "string value",
            vec![JSON],
            format!("[[{}]]", "\"a\",".repeat(28) + "1").into_bytes(),
            400,
            "feature 1 (V1)",
        ),
        (
            "inf csv",
            vec![("Content-Type", "text/csv")],
            ("inf,".repeat(28) + "1").into_bytes(),
            400,
            "not finite",
        ),
        ("empty", vec![JSON], b"".to_vec(), 400, "empty body"),
        (
            "deep nesting",
            vec![JSON],
            deep.into_bytes(),
            400,
            "malformed JSON",
        ),
        (
            "invalid utf-8",
            vec![JSON],
            b"[\xff\xfe]".to_vec(),
            400,
            "UTF-8",
        ),
        (
            "csv text",
            vec![("Content-Type", "text/csv")],
            b"hello world".to_vec(),
            400,
            "not a number",
        ),
        (
            "unknown content type",
            vec![("Content-Type", "image/png")],
            good.clone().into_bytes(),
            415,
            "unsupported Content-Type",
        ),
        (
            "unsupported accept",
            vec![JSON, ("Accept", "image/png")],
            good.clone().into_bytes(),
            406,
            "Accept",
        ),
        (
            "too large",
            vec![("Content-Type", "text/csv")],
            big.into_bytes(),
            413,
            "limit",
        ),
    ];
    for (name, headers, body, want, text) in cases {
        let (status, head, out) = s.request("POST", "/invocations", &headers, &body);
        assert_eq!(status, want, "{name}: {}", String::from_utf8_lossy(&out));
        assert!(
            head.contains("content-type: application/json"),
            "{name}: {head}"
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(text), "{name}: {msg}");
        assert!(v["error_type"].is_string());
        // the next request is served normally
        let (status, _, _) = s.request("POST", "/invocations", &[JSON], good.as_bytes());
        assert_eq!(status, 200, "after {name}");
    }
    let (status, _, out) = s.request(
        "POST",
        "/invocations",
        &[JSON],
        format!("[{good}, [1]]").as_bytes(),
    );
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["row"], 2);
    let (status, _, _) = s.request("GET", "/invocations", &[], b"");
    assert_eq!(status, 405);
    let (status, _, out) = s.request("GET", "/nope", &[], b"");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&out).contains("no route"));
}

#[test]
fn sagemaker_runtime_path_and_model_choice() {
    let s = Server::start(trained_all(), &["--model", "logistic"]);
    let good = json_list(&rows(1, 6)[0]);
    let (status, _, a) = s.request(
        "POST",
        "/endpoints/my-endpoint/invocations",
        &[],
        good.as_bytes(),
    );
    assert_eq!(status, 200);
    let (status, _, b) = s.request("POST", "/invocations", &[], good.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(scores_of(&a), scores_of(&b));
}

#[test]
fn browsers_may_call_from_another_origin() {
    let s = Server::start(trained_all(), &[]);
    // the demo page's JSON POST needs a preflight
    let (status, head, _) = s.request(
        "OPTIONS",
        "/invocations",
        &[
            ("Origin", "http://demo"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type, accept, x-amzn-sagemaker-custom-attributes",
            ),
        ],
        b"",
    );
    assert!((200..300).contains(&status), "{status}: {head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("access-control-max-age: 86400"), "{head}");
    let listed = |name: &str| -> Vec<String> {
        let line = head
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {head}"));
        line.split(',').map(|m| m.trim().to_string()).collect()
    };
    let mut methods = listed("access-control-allow-methods:");
    methods.sort();
    assert_eq!(methods, ["options", "post"], "{head}");
    let mut headers = listed("access-control-allow-headers:");
    headers.sort();
    assert_eq!(
        headers,
        [
            "accept",
            "content-type",
            "x-amzn-sagemaker-custom-attributes"
        ],
        "{head}"
    );
    // the POST itself, and its errors, carry the header too
    let good = json_list(&rows(1, 7)[0]);
    for (body, want) in [(good.as_str(), 200), ("[1]", 400)] {
        let (status, head, _) = s.request(
            "POST",
            "/invocations",
            &[JSON, ("Origin", "http://demo")],
            body.as_bytes(),
        );
        assert_eq!(status, want);
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
    }

    // one exact origin
    let s = Server::start(trained_all(), &["--cors-origin", "http://127.0.0.1:8000"]);
    let (status, head, _) = s.request(
        "OPTIONS",
        "/endpoints/x/invocations",
        &[
            ("Origin", "http://127.0.0.1:8000"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert!((200..300).contains(&status), "{status}: {head}");
    assert!(
        head.contains("access-control-allow-origin: http://127.0.0.1:8000"),
        "{head}"
    );
    let (status, head, _) = s.request(
        "POST",
        "/invocations",
        &[JSON, ("Origin", "http://elsewhere")],
        good.as_bytes(),
    );
    assert_eq!(status, 200);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

/// The lab's example fraud, from the one copy the demo page also serves.
/// Issue 13: reasons and decisions on request, in every model kind and
/// every answer format; nothing changes without the ask.
#[test]
fn reasons_and_decisions_come_when_asked_and_only_then() {
    let batch = rows(4, 11);
    let list = serde_json::to_string(&batch).unwrap();
    for kind in ["dnn", "logistic", "forest", "gbdt"] {
        let s = Server::start(trained_all(), &["--model", kind]);
        let (_, _, plain) = s.request("POST", "/invocations", &[JSON], list.as_bytes());
        let plain_text = String::from_utf8(plain.clone()).unwrap();
        assert!(!plain_text.contains("explanations"), "{plain_text}");
        let asked = [
            (
                "/invocations",
                vec![
                    JSON,
                    ("X-Amzn-SageMaker-Custom-Attributes", "a=b; explain=2"),
                ],
                list.clone(),
            ),
            ("/invocations?explain=2", vec![JSON], list.clone()),
            (
                "/invocations",
                vec![JSON],
                format!("{{\"instances\": {list}, \"explain\": 2}}"),
            ),
        ];
        for (path, headers, body) in asked {
            let (status, _, out) = s.request("POST", path, &headers, body.as_bytes());
            assert_eq!(
                status,
                200,
                "{kind} {path}: {}",
                String::from_utf8_lossy(&out)
            );
            // the same scores, the lab's path untouched
            assert_eq!(scores_of(&out), scores_of(&plain), "{kind} {path}");
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["result"]["model"], kind);
            let ex = v["result"]["explanations"].as_array().unwrap();
            let decisions = v["result"]["decisions"].as_array().unwrap();
            assert_eq!((ex.len(), decisions.len()), (4, 4), "{v}");
            for (e, d) in ex.iter().zip(decisions) {
                assert_eq!(e["reasons"].as_array().unwrap().len(), 2, "{e}");
                let c = |k: usize| e["reasons"][k]["contribution"].as_f64().unwrap().abs();
                assert!(c(0) >= c(1), "{e}");
                let space = e["space"].as_str().unwrap();
                let want = if kind == "forest" {
                    "probability"
                } else {
                    "log_odds"
                };
                assert_eq!(space, want, "{kind}");
                assert!(d["action"] == "approve" || d["action"] == "review", "{d}");
                // the lab's rows carry an amount: the loss is priced
                assert!(d["expected_loss"].as_f64().unwrap() >= 0.0, "{d}");
            }
        }
        // CSV: score,decision,action,expected_loss,base,feature,contribution
        let (status, _, out) = s.request(
            "POST",
            "/invocations?explain=1",
            &[JSON, ("Accept", "text/csv")],
            list.as_bytes(),
        );
        assert_eq!(status, 200);
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 7, "{line}");
            assert!(f[2] == "approve" || f[2] == "review", "{line}");
            assert!(f[5].starts_with('V') || f[5] == "Amount", "{line}");
        }
        // decide alone: no reasons
        let (_, _, out) = s.request("POST", "/invocations?decide=true", &[JSON], list.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["result"]["explanations"].is_null() && v["result"]["decisions"].is_array());
    }
    let s = Server::start(trained_all(), &[]);
    for (path, headers, body, says) in [
        (
            "/invocations?explain=0",
            vec![JSON],
            list.clone(),
            "explain",
        ),
        (
            "/invocations?explian=3",
            vec![JSON],
            list.clone(),
            "explian",
        ),
        (
            "/invocations?explain=3",
            vec![JSON],
            format!("{{\"instances\": {list}, \"explain\": 2}}"),
            "different values",
        ),
    ] {
        let (status, _, out) = s.request("POST", path, &headers, body.as_bytes());
        let text = String::from_utf8_lossy(&out);
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains(says), "{path}: {text}");
    }
}

fn lab_fraud() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo_examples.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let example = v["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "lab-fraud")
        .unwrap_or_else(|| panic!("no \"lab-fraud\" example in {path}"));
    let features = example["features"].as_array().unwrap();
    assert_eq!(features.len(), 29);
    serde_json::to_string(features).unwrap()
}

#[test]
fn the_lab_lambdas_request_gets_the_tf_classification_answer() {
    let s = Server::start(trained_all(), &[]);
    // the Lambda posts the bare list with no Content-Type and reads
    // result.classifications[0].classes[1].score
    let (status, head, body) = s.request("POST", "/invocations", &[], lab_fraud().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.contains("content-type: application/json"), "{head}");
    let score = fraud_score(&body);
    assert!((0.0..=1.0).contains(&score), "{score}");
    assert_eq!(scores_of(&body), [score]);
}

#[test]
fn accept_quality_values_choose_the_answer() {
    let s = Server::start(trained_all(), &[]);
    let good = json_list(&rows(1, 8)[0]);
    for (accept, want) in [
        ("text/csv;q=0, application/json", "application/json"),
        ("application/json;q=0.5, text/csv", "text/csv"),
        (
            "text/csv;q=0.1, application/jsonlines;q=0.9",
            "application/jsonlines",
        ),
        ("*/*", "application/json"),
        ("", "application/json"),
    ] {
        let (status, head, body) = s.request(
            "POST",
            "/invocations",
            &[JSON, ("Accept", accept)],
            good.as_bytes(),
        );
        assert_eq!(status, 200, "{accept}: {}", String::from_utf8_lossy(&body));
        assert!(
            head.contains(&format!("content-type: {want}")),
            "{accept}: {head}"
        );
    }
    let (status, head, body) = s.request(
        "POST",
        "/invocations",
        &[JSON, ("Accept", "text/csv;q=0")],
        good.as_bytes(),
    );
    assert_eq!(status, 406);
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error_type"], "not_acceptable");
}

#[test]
fn startup_fails_clearly_without_a_usable_model() {
    let run = |root: &std::path::Path, extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--ml-root"])
            .arg(root)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = run(empty.path(), &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no ccfraud-model.json here: run `ccfraud train` first"),
        "{err}"
    );

    let corrupt = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(corrupt.path().join("model")).unwrap();
    let mut bytes = std::fs::read(trained_all().join("model/ccfraud-model.json")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(corrupt.path().join("model/ccfraud-model.json"), bytes).unwrap();
    // SDK local mode leaves tarballs beside the model: tolerated
    std::fs::write(corrupt.path().join("model/model.tar.gz"), b"x").unwrap();
    let (code, err) = run(corrupt.path(), &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("truncated or modified"), "{err}");

    let (code, err) = run(trained_all(), &["--model", "xgboost"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown model 'xgboost' (expected dnn, logistic, forest, gbdt or blend)"),
        "{err}"
    );

    // bad settings: exit 2, naming the flag
    for (flags, text) in [
        (
            &["--cors-origin", "not an origin"][..],
            "--cors-origin 'not an origin'",
        ),
        (
            &["--cors-origin", "http://demo/"],
            "--cors-origin 'http://demo/'",
        ),
        (&["--max-body-bytes", "0"], "--max-body-bytes"),
    ] {
        let (code, err) = run(trained_all(), flags);
        assert_eq!(code, Some(2), "{flags:?}: {err}");
        assert!(err.contains(text), "{flags:?}: {err}");
    }
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut s = Server::start(trained_all(), &[]);
    let (status, _, _) = s.request("GET", "/ping", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(sigterm_and_wait(&mut s.child), Some(0));
    assert!(
        std::net::TcpStream::connect(&s.addr).is_err(),
        "stopped accepting"
    );
}

/// A one-request HTTP listener on 127.0.0.1:0 answering 204; returns its
/// address and a channel that hands over the body it received.
fn webhook_listener() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = std::io::BufReader::new(s);
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let mut s = r.into_inner();
        s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .unwrap();
        tx.send(String::from_utf8(body).unwrap()).unwrap();
    });
    (addr, rx)
}

#[test]
fn demo_serves_the_page_and_sends_alerts_to_the_log_and_the_webhook() {
    use std::io::BufRead;
    let work = tempfile::tempdir().unwrap();
    let alert_log = work.path().join("alerts.jsonl");
    let (hook, received) = webhook_listener();
    let mut child = Command::new(BIN)
        .args(["demo", "--host", "127.0.0.1", "--port", "0"])
        .args(["--api-url", "http://127.0.0.1:8080/invocations"])
        .arg("--alert-log")
        .arg(&alert_log)
        .args(["--alert-webhook", &format!("http://{hook}/hook")])
        .env("CCFRAUD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut child = Kill(child);
    let addr = loop {
        let line = lines
            .next()
            .expect("demo exited before its start-up line")
            .unwrap();
        if let Some(rest) = line.split("demo on http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let (status, _, body) = http(&addr, "GET", "/config.json", &[], b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["apiUrl"], "http://127.0.0.1:8080/invocations");
    assert_eq!(v["schemaUrl"], "http://127.0.0.1:8080/schema");
    assert_eq!(v["threshold"], 0.9);
    let (status, head, _) = http(&addr, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");

    let json = [("Content-Type", "application/json")];
    let (status, _, _) = http(&addr, "POST", "/alerts", &json, br#"{"score": 0.5}"#);
    assert_eq!(status, 400, "below the threshold is not an alert");
    let (status, _, body) = http(
        &addr,
        "POST",
        "/alerts",
        &json,
        br#"{"score": 0.95, "example": "lab-fraud"}"#,
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let posted = received
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the webhook never received the alert");
    let logged = std::fs::read_to_string(&alert_log).unwrap();
    assert_eq!(logged.lines().count(), 1, "{logged}");
    assert_eq!(logged.trim_end(), posted);
    let v: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(v["score"], 0.95);
    assert_eq!(v["threshold"], 0.9);
    assert_eq!(v["reference"], "lab-fraud");
    let time = v["time"].as_str().unwrap();
    assert!(time.len() == 20 && time.ends_with('Z'), "{time}");

    assert_eq!(sigterm_and_wait(&mut child.0), Some(0));
}

/// The value of the sample `series` (`name{labels}` exactly as exposed,
/// labels in name order) in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().unwrap())
    })
}

fn scrape(s: &Server) -> String {
    let (status, head, body) = s.request("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    String::from_utf8(body).unwrap()
}

/// Issue 14: `GET /metrics` counts exactly the requests sent, by route
/// pattern and status; rows and scores; says which model serves; and the
/// drift gauges stay low for rows like the training rows and rise on the
/// column a shifted batch moved (and only there).
#[test]
fn metrics_count_requests_and_drift_moves_with_a_shifted_batch() {
    let s = Server::start(trained_all(), &["--drift-window-rows", "2000"]);
    let text = scrape(&s);
    let info = text
        .lines()
        .find(|l| l.starts_with("ccfraud_model_info{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(info.ends_with("} 1"), "{info}");
    assert!(info.contains(r#"format_version="2""#), "{info}");
    assert!(info.contains(r#"name="ccfraud""#), "{info}");
    assert!(info.contains(r#"created_by="ccfraud "#), "{info}");
    // the model training marked best, trained just now by this build
    let kind = ["dnn", "logistic", "forest", "gbdt", "blend"]
        .into_iter()
        .find(|k| info.contains(&format!(r#"kind="{k}""#)));
    assert!(kind.is_some(), "{info}");
    let stamp = info.split(r#"trained_at=""#).nth(1).unwrap();
    assert!(
        stamp.starts_with("20") && stamp[..20].ends_with('Z'),
        "{info}"
    );
    assert_eq!(sample(&text, "ccfraud_drift_window_rows"), Some(0.0));
    assert!(sample(&text, r#"ccfraud_feature_drift_psi{column="V1"}"#)
        .unwrap()
        .is_nan());

    let train = rows(2000, 99);
    for r in &train[..5] {
        let (status, _, _) = s.request("POST", "/invocations", &[JSON], json_list(r).as_bytes());
        assert_eq!(status, 200);
    }
    for r in &train[5..7] {
        let path = "/endpoints/some-endpoint/invocations";
        let (status, _, _) = s.request("POST", path, &[JSON], json_list(r).as_bytes());
        assert_eq!(status, 200);
    }
    let (status, _, _) = s.request("POST", "/invocations", &[JSON], b"[1,2]");
    assert_eq!(status, 400);
    for _ in 0..3 {
        assert_eq!(s.request("GET", "/ping", &[], b"").0, 200);
    }
    assert_eq!(s.request("GET", "/no/such/path/42", &[], b"").0, 404);
    let batch = serde_json::to_string(&train).unwrap();
    let (status, _, _) = s.request("POST", "/invocations", &[JSON], batch.as_bytes());
    assert_eq!(status, 200);

    let text = scrape(&s);
    let count = |route: &str, status: u16| {
        sample(
            &text,
            &format!(r#"ccfraud_http_requests_total{{route="{route}",status="{status}"}}"#),
        )
    };
    assert_eq!(count("/invocations", 200), Some(6.0), "{text}");
    assert_eq!(count("/invocations", 400), Some(1.0));
    assert_eq!(count("/endpoints/{name}/invocations", 200), Some(2.0));
    assert_eq!(count("/ping", 200), Some(3.0));
    assert_eq!(count("/metrics", 200), Some(1.0));
    assert_eq!(count("(unmatched)", 404), Some(1.0));
    assert!(!text.contains("some-endpoint") && !text.contains("/no/such"));
    let latency = |route: &str| {
        sample(
            &text,
            &format!(r#"ccfraud_http_request_duration_seconds_count{{route="{route}"}}"#),
        )
    };
    assert_eq!(latency("/invocations"), Some(7.0));
    assert_eq!(latency("/ping"), Some(3.0));
    assert_eq!(sample(&text, "ccfraud_rows_scored_total"), Some(2007.0));
    assert_eq!(sample(&text, "ccfraud_fraud_score_count"), Some(2007.0));
    assert_eq!(
        sample(&text, r#"ccfraud_fraud_score_bucket{le="+Inf"}"#),
        Some(2007.0)
    );
    let sum = sample(&text, "ccfraud_fraud_score_sum").unwrap();
    assert!(sum > 0.0 && sum < 2007.0, "{sum}");
    // this scrape is the one request in flight
    assert_eq!(sample(&text, "ccfraud_http_requests_in_flight"), Some(1.0));
    // a window of 2,000 rows in 10 sub-windows of 200: the last 1,807 to 2,000
    let held = sample(&text, "ccfraud_drift_window_rows").unwrap();
    assert!((1807.0..=2000.0).contains(&held), "{held}");
    let psi = |text: &str, column: &str| {
        sample(
            text,
            &format!(r#"ccfraud_feature_drift_psi{{column="{column}"}}"#),
        )
        .unwrap()
    };
    let names: Vec<String> = (1..=28)
        .map(|i| format!("V{i}"))
        .chain(["Amount".into()])
        .collect();
    for n in &names {
        let p = psi(&text, n);
        assert!(
            (0.0..0.1).contains(&p),
            "{n}: PSI {p} for rows like the training rows"
        );
    }

    // the same rows with V3 moved by 2 standard deviations
    let shifted: Vec<Vec<f64>> = rows(2000, 100)
        .into_iter()
        .map(|mut r| {
            r[2] += 2.0;
            r
        })
        .collect();
    let batch = serde_json::to_string(&shifted).unwrap();
    let (status, _, _) = s.request("POST", "/invocations", &[JSON], batch.as_bytes());
    assert_eq!(status, 200);
    let text = scrape(&s);
    assert!(psi(&text, "V3") > 0.25, "{text}");
    for n in names.iter().filter(|n| *n != "V3") {
        let p = psi(&text, n);
        assert!(p < 0.1, "{n}: PSI {p}, though only V3 moved");
    }
    assert_eq!(sample(&text, "ccfraud_rows_scored_total"), Some(4007.0));
}

/// Issue 14: an artifact written before drift monitoring (no `drift`, no
/// `trained_at`) loads and serves; `/metrics` has no drift gauges, and
/// `model_info` an empty `trained_at`.
#[test]
fn an_artifact_without_a_training_distribution_serves_without_drift() {
    let old = tempfile::tempdir().unwrap();
    let model = old.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    let bytes = std::fs::read(trained_all().join("model/ccfraud-model.json")).unwrap();
    let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
    let mut payload: serde_json::Value = serde_json::from_slice(&bytes[nl + 1..]).unwrap();
    let fields = payload.as_object_mut().unwrap();
    assert!(fields.remove("drift").is_some() && fields.remove("trained_at").is_some());
    let payload = serde_json::to_vec(&payload).unwrap();
    let header = serde_json::json!({
        "format": "ccfraud-model",
        "format_version": 2,
        "payload_bytes": payload.len(),
        "payload_crc32": format!("{:08x}", crc32fast::hash(&payload)),
    });
    let mut file = serde_json::to_vec(&header).unwrap();
    file.push(b'\n');
    file.extend_from_slice(&payload);
    std::fs::write(model.join("ccfraud-model.json"), file).unwrap();
    let s = Server::start(old.path(), &[]);
    let row = json_list(&rows(1, 5)[0]);
    let (status, _, _) = s.request("POST", "/invocations", &[JSON], row.as_bytes());
    assert_eq!(status, 200);
    let text = scrape(&s);
    assert!(!text.contains("drift"), "{text}");
    assert!(text.contains(r#"trained_at="""#), "{text}");
    assert_eq!(sample(&text, "ccfraud_rows_scored_total"), Some(1.0));
}

/// Issue 14: the request log, as JSON lines: one line for the 400 (with
/// SageMaker's request id, route, status, rows, latency and the custom
/// attributes), one for a request slower than `--slow-request-ms` (here
/// 0: every answer), and never one for `/ping` or `/metrics`. An artifact
/// without a training distribution serves without drift gauges.
#[test]
fn failed_and_slow_requests_are_logged_once_and_health_checks_never() {
    use std::io::BufRead;
    let mut cmd = ccfraud();
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--ml-root"])
        .arg(trained_all())
        .args(["--log-format", "json", "--slow-request-ms", "0"])
        .env("CCFRAUD_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<serde_json::Value> = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a start-up line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        let message = v["message"].as_str().unwrap_or_default().to_string();
        lines.push(v);
        if let Some(i) = message.find(" on 127.0.0.1:") {
            break message[i + 4..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    let s = Server { child, addr };
    for _ in 0..3 {
        assert_eq!(s.request("GET", "/ping", &[], b"").0, 200);
        assert_eq!(s.request("GET", "/metrics", &[], b"").0, 200);
    }
    let id = ("X-Amzn-SageMaker-Inference-Id", "inference-7f3a");
    let attributes = ("X-Amzn-SageMaker-Custom-Attributes", "trace=abc");
    let (status, _, _) = s.request("POST", "/invocations", &[JSON, id, attributes], b"[1,2]");
    assert_eq!(status, 400);
    let row = json_list(&rows(1, 5)[0]);
    let (status, _, _) = s.request("POST", "/invocations", &[JSON], row.as_bytes());
    assert_eq!(status, 200);
    let mut s = s;
    assert_eq!(sigterm_and_wait(&mut s.child), Some(0));
    lines.extend(rx.iter().map(|l| serde_json::from_str(&l).unwrap()));

    let requests: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["target"] == "ccfraud::request")
        .collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let failed = requests[0];
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["message"], "request failed");
    assert_eq!(failed["request_id"], "inference-7f3a");
    assert_eq!(failed["route"], "/invocations");
    assert_eq!(failed["method"], "POST");
    assert_eq!(failed["status"], 400);
    assert_eq!(failed["rows"], 0);
    assert_eq!(failed["custom_attributes"], "trace=abc");
    assert!(failed["latency_ms"].as_f64().unwrap() >= 0.0);
    let slow = requests[1];
    assert_eq!(slow["level"], "INFO");
    assert_eq!(slow["message"], "slow request");
    assert_eq!(slow["status"], 200);
    assert_eq!(slow["rows"], 1);
    // generated: a 16-hex-digit process prefix and a sequence number
    let generated = slow["request_id"].as_str().unwrap();
    assert!(
        generated.len() > 17 && generated.as_bytes()[16] == b'-',
        "{generated}"
    );
    let all = serde_json::to_string(&lines).unwrap();
    assert!(
        !all.contains("\"/ping\"") && !all.contains("\"/metrics\""),
        "{all}"
    );
}

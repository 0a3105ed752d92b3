//! Quality on the real Kaggle data, standard split, default hyperparameters:
//! the thresholds of the training issue. Needs the data set:
//! `CCFRAUD_CREDITCARD=$(scripts/fetch-data.sh) cargo test --release --test real_data -- --include-ignored`
//! (`scripts/test.sh` does this).

mod common;
use common::*;
use std::process::Command;

fn creditcard() -> std::path::PathBuf {
    std::env::var_os("CCFRAUD_CREDITCARD")
        .map(Into::into)
        .expect("set CCFRAUD_CREDITCARD to creditcard.csv (scripts/fetch-data.sh prints its path)")
}

#[test]
#[ignore = "needs the real data set: run scripts/test.sh"]
fn default_training_on_the_standard_split_meets_the_quality_bar() {
    let csv = creditcard();
    let prep = tempfile::tempdir().unwrap();
    let prepare = |out: &std::path::Path| {
        let o = ccfraud()
            .args(["prepare", "--input"])
            .arg(&csv)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let said = prepare(prep.path());
    assert!(said.contains("(227845 rows, 417 frauds)"), "{said}");
    assert!(said.contains("(56962 rows, 75 frauds)"), "{said}");
    // deterministic: byte-identical on a second run
    let again = tempfile::tempdir().unwrap();
    prepare(again.path());
    for f in ["train_data.csv", "test_data.csv"] {
        assert!(
            std::fs::read(prep.path().join(f)).unwrap()
                == std::fs::read(again.path().join(f)).unwrap(),
            "{f} differs between runs"
        );
    }
    let train_text = std::fs::read_to_string(prep.path().join("train_data.csv")).unwrap();
    // the lab's example fraud (data/demo_examples.json) is row 11880, Amount
    // standardized the lab's way, labelled fraud
    let lab_row: Vec<f64> = train_text
        .lines()
        .nth(11880)
        .unwrap()
        .split(',')
        .map(|c| c.parse().unwrap())
        .collect();
    let lab = example_features("lab-fraud");
    assert_eq!(lab_row.len(), 30);
    assert_eq!(lab_row[29], 1.0, "row 11880 is not a fraud");
    for (j, (got, want)) in lab_row.iter().zip(&lab).enumerate() {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "row 11880, feature {}: {got} in train_data.csv, {want} in data/demo_examples.json",
            j + 1
        );
    }

    let root = MlRoot::new("{}");
    root.channel("train", "train_data.csv", &train_text);
    root.channel(
        "test",
        "test_data.csv",
        &std::fs::read_to_string(prep.path().join("test_data.csv")).unwrap(),
    );
    let out = root.train();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.model_dir().join("metrics.json")).unwrap())
            .unwrap();
    let get = |model: &str, k: &str| m["models"][model]["evaluation"][k].as_f64().unwrap();
    for model in ["dnn", "logistic", "forest"] {
        eprintln!(
            "{model}: AUC-ROC {:.4} AUPRC {:.4} log loss {:.5} recall {:.3} fit {:.2} s",
            get(model, "auc_roc"),
            get(model, "auprc"),
            get(model, "log_loss"),
            get(model, "recall"),
            m["models"][model]["fit_seconds"]
        );
        assert_eq!(m["models"][model]["evaluated_on"], "test");
        assert_eq!(m["models"][model]["evaluation"]["rows"], 56962);
    }
    // Bars sit below the spread over seeds, not at one seed's draw: default
    // DNN over seeds 1..=8 and 42 (rand + rand_xoshiro streams) scored test
    // AUC-ROC 0.949-0.980 (median 0.960) and AUPRC 0.742-0.817 (median
    // 0.793). With 75 test frauds one figure moves by a few hundredths with
    // the seed alone.
    assert!(
        get("dnn", "auc_roc") >= 0.94,
        "DNN AUC-ROC {}",
        get("dnn", "auc_roc")
    );
    assert!(
        get("dnn", "auprc") >= 0.72,
        "DNN AUPRC {}",
        get("dnn", "auprc")
    );
    let best = m["default_model"].as_str().unwrap();
    assert!(
        get(best, "auprc") >= 0.78,
        "best ({best}) AUPRC {}",
        get(best, "auprc")
    );

    // the default model scores the lab's example fraud at 0.9 or more
    let server = Server::start(root.path(), &[]);
    let (status, _, body) = server.request("POST", "/invocations", &[], lab_fraud().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let score = fraud_score(&body);
    eprintln!("lab example fraud score ({best}): {score:.4}");
    assert!(score >= 0.9, "lab example scored {score}");

    // the lab's own Lambda code, unmodified, through boto3's sagemaker-runtime client
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab_lambda.py");
    let mut python = Command::new("python3");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            python.env_remove(key); // the script sets what it needs
        }
    }
    let out = python
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "lab lambda failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lab lambda fraud score: 0.9"), "{stdout}");
}

//! The real `ccfraud train` binary on temp ml-roots: success, and every
//! failure path (failure file text, exit code, nothing in model/).

mod common;
use common::*;
use std::time::Duration;

#[test]
fn trains_all_models_and_writes_the_contract_outputs() {
    let root = MlRoot::new(QUICK);
    root.channel("train", "part-1.csv", &lab_csv(3000, 1));
    root.channel("train", "nested/part-2.csv", &lab_csv(1000, 2));
    root.channel("test", "test.csv", &lab_csv(1500, 3));
    let out = root.train();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.failure().is_none());
    let mut files = root.model_files();
    files.sort();
    assert_eq!(files, vec!["ccfraud-model.json", "metrics.json"]);
    assert!(root.path().join("output/data/metrics.json").is_file());
    // metric lines in the documented `name=value;` form, one per line
    for name in [
        "dnn_test_auprc",
        "logistic_test_auc",
        "forest_test_f1",
        "best_auprc",
        "dnn_epoch",
    ] {
        let re = format!("{name}=");
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&re))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"));
        let v: f64 = line[re.len()..].trim_end_matches(';').parse().unwrap();
        assert!(v.is_finite());
        assert!(line.ends_with(';'));
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.model_dir().join("metrics.json")).unwrap())
            .unwrap();
    let best = metrics["default_model"].as_str().unwrap();
    for m in ["dnn", "logistic", "forest"] {
        let e = &metrics["models"][m]["evaluation"];
        assert_eq!(metrics["models"][m]["evaluated_on"], "test");
        assert_eq!(e["rows"], 1500);
        assert!(e["auc_roc"].as_f64().unwrap() > 0.9, "{m}: {e}");
        for k in [
            "accuracy",
            "auprc",
            "log_loss",
            "precision",
            "recall",
            "f1",
            "confusion",
        ] {
            assert!(!e[k].is_null(), "{m} lacks {k}");
        }
        assert!(metrics["models"][m]["fit_seconds"].as_f64().unwrap() > 0.0);
        assert!(
            metrics["models"][m]["validation"]["auprc"]
                .as_f64()
                .unwrap()
                <= metrics["models"][best]["validation"]["auprc"]
                    .as_f64()
                    .unwrap()
        );
    }
}

#[test]
fn without_test_channel_reports_on_the_holdout_and_gz_and_kaggle_inputs_work() {
    let root = MlRoot::new(r#"{"model": "logistic", "threshold": "auto"}"#);
    // Kaggle layout, gzip-compressed, under the `training` alias
    let mut kaggle = String::from("\"Time\"");
    for i in 1..=28 {
        kaggle.push_str(&format!(",\"V{i}\""));
    }
    kaggle.push_str(",\"Amount\",\"Class\"\n");
    for (i, line) in lab_csv(3000, 5).lines().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        kaggle.push_str(&format!(
            "{i},{},{},\"{}\"\n",
            f[..28].join(","),
            50.0 + i as f64 % 10.0,
            f[29]
        ));
    }
    let dir = root.path().join("input/data/training");
    std::fs::create_dir_all(&dir).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, kaggle.as_bytes()).unwrap();
    std::fs::write(dir.join("creditcard.csv.gz"), gz.finish().unwrap()).unwrap();
    let out = root.train();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("logistic_validation_auprc="), "{stdout}");
    assert!(stdout.contains("logistic_validation_f1="), "{stdout}");
}

/// Runs a failing training and checks the contract: exit code, failure file
/// containing `expect`, and an empty model folder.
fn assert_fails(root: &MlRoot, code: i32, expect: &str) {
    let out = root.train();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let failure = root.failure().expect("failure file written");
    assert!(failure.contains(expect), "failure file: {failure}");
    assert!(stderr.contains(expect), "stderr: {stderr}");
    assert!(
        root.model_files().is_empty(),
        "model/ must stay empty: {:?}",
        root.model_files()
    );
}

#[test]
fn unknown_and_invalid_hyperparameters() {
    let root = MlRoot::new(r#"{"epochz": "3"}"#);
    root.channel("train", "t.csv", &lab_csv(500, 1));
    assert_fails(&root, 1, "unknown hyperparameter 'epochz'");

    let root = MlRoot::new(r#"{"optimizer": "\"rmsprop\""}"#);
    root.channel("train", "t.csv", &lab_csv(500, 1));
    assert_fails(
        &root,
        1,
        "hyperparameter 'optimizer' = 'rmsprop' is invalid: expected adam | adagrad | sgd",
    );

    let root = MlRoot::new("{not json");
    root.channel("train", "t.csv", &lab_csv(500, 1));
    assert_fails(&root, 1, "hyperparameters.json: not valid JSON");
}

#[test]
fn bad_data_names_file_line_and_column() {
    let root = MlRoot::new(QUICK);
    let mut text = lab_csv(200, 1);
    text.push_str(&"1.0,".repeat(28));
    text.push_str("abc,0\n");
    let p = root.channel("train", "bad.csv", &text);
    assert_fails(
        &root,
        1,
        &format!("{}:201:29: not a number: 'abc'", p.display()),
    );

    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(300, 1));
    let p = root.channel("test", "t.csv", &format!("{}1,2,3\n", lab_csv(10, 2)));
    assert_fails(
        &root,
        1,
        &format!("{}:11:4: expected 30 columns, found 3", p.display()),
    );

    let root = MlRoot::new(QUICK);
    let p = root.channel(
        "train",
        "t.csv",
        &lab_csv(100, 1).replacen(",0\n", ",2\n", 1),
    );
    assert_fails(&root, 1, &format!("{}:", p.display()));
    assert!(root
        .failure()
        .unwrap()
        .contains("label must be 0 or 1, found '2'"));
}

#[test]
fn missing_empty_and_fraudless_channels() {
    let root = MlRoot::new(QUICK);
    assert_fails(&root, 1, "channel 'train' (or 'training') not found");

    let root = MlRoot::new(QUICK);
    std::fs::create_dir_all(root.path().join("input/data/train")).unwrap();
    assert_fails(&root, 1, "channel 'train'");
    assert!(root.failure().unwrap().contains("no data files"));

    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(300, 1).replace(",1\n", ",0\n"));
    assert_fails(&root, 1, "no fraud (Class=1)");

    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(300, 1));
    std::fs::write(
        root.path().join("input/config/inputdataconfig.json"),
        r#"{"train": {"TrainingInputMode": "Pipe"}}"#,
    )
    .unwrap();
    assert_fails(&root, 1, "Pipe input mode");
}

/// Trains with `hyperparameters` on 20,000 rows, sends SIGTERM once a line
/// of stderr (the log, `on_stderr`) or stdout (metric lines) contains
/// `begun`, checks exit 143 and an empty model/, and returns the failure
/// file.
fn sigterm_once(hyperparameters: &str, on_stderr: bool, begun: &'static str) -> String {
    use std::process::Stdio;
    let root = MlRoot::new(hyperparameters);
    root.channel("train", "t.csv", &lab_csv(20_000, 9));
    let mut cmd = ccfraud();
    cmd.args(["train", "--ml-root"])
        .arg(root.path())
        .env("CCFRAUD_LOG", "info");
    if on_stderr {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = cmd.spawn().unwrap();
    let stream: Box<dyn std::io::Read + Send> = match (child.stdout.take(), child.stderr.take()) {
        (Some(out), _) => Box::new(out),
        (_, Some(err)) => Box::new(err),
        (None, None) => unreachable!("one stream is piped"),
    };
    let seen = wait_for_line(stream, Duration::from_secs(120), begun, move |line| {
        line.contains(begun).then_some(())
    });
    if let Err(e) = seen {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{e}");
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "training ended by itself"
    );
    assert_eq!(sigterm_and_wait(&mut child), Some(143));
    assert!(root.model_files().is_empty());
    root.failure().unwrap()
}

#[test]
fn sigterm_stops_training_promptly_without_a_model() {
    // fitting has begun once the first epoch's metric line is out
    let failure = sigterm_once(
        r#"{"model": "dnn", "epochs": "10000", "early_stopping_patience": "10000"}"#,
        false,
        "dnn_epoch=",
    );
    assert!(failure.contains("stopped by a signal"), "{failure}");
    assert!(failure.contains("of 10000 epochs done"), "{failure}");
}

/// The forest's stop names the signal and the trees grown (issue 10,
/// item 12: it said only "interrupted").
#[test]
fn sigterm_stops_the_forest_saying_how_far_it_got() {
    let failure = sigterm_once(
        r#"{"model": "forest", "n_trees": "5000"}"#,
        true,
        "forest: fitting",
    );
    assert!(
        failure.contains("stopped by a signal (SIGTERM/SIGINT) while fitting forest"),
        "{failure}"
    );
    assert!(failure.contains("of 5000 trees grown"), "{failure}");
}

#[test]
fn prepare_refuses_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.csv");
    std::fs::write(&input, "a,b\n1,2\n").unwrap();
    let out = ccfraud()
        .args(["prepare", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.csv:1:1: unknown column 'a'"), "{err}");
    assert!(!dir.path().join("out/train_data.csv").exists());
}

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
    assert_eq!(
        files,
        vec!["ccfraud-model.json", "metrics.json", "report.html"]
    );
    for f in ["metrics.json", "thresholds.csv", "report.html"] {
        assert!(root.path().join("output/data").join(f).is_file(), "{f}");
    }
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
    for m in ["dnn", "logistic", "forest", "gbdt"] {
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

/// Runs `ccfraud prepare` with `args`.
fn prepare(args: &[&std::ffi::OsStr]) -> std::process::Output {
    ccfraud().arg("prepare").args(args).output().unwrap()
}

/// `--input IN --out OUT` and then `rest`, as arguments.
fn prepare_args<'a>(
    input: &'a std::path::Path,
    out: &'a std::path::Path,
    rest: &'a [&'a str],
) -> Vec<&'a std::ffi::OsStr> {
    let mut v = vec![
        "--input".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    v.extend(rest.iter().map(|s| std::ffi::OsStr::new(*s)));
    v
}

#[test]
fn prepare_refuses_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.csv");
    let out = dir.path().join("out");
    let refused = |text: &str, rest: &[&str], code: i32| {
        std::fs::write(&input, text).unwrap();
        let o = prepare(&prepare_args(&input, &out, rest));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(!out.exists(), "{err}: nothing written, not even the folder");
        err
    };
    // neither Kaggle's header nor a label column
    let err = refused("a,b\n1,2\n", &[], 1);
    assert!(
        err.contains("x.csv:1: the header has no label column 'Class' (its columns: 'a', 'b')"),
        "{err}"
    );
    // Kaggle's names, one missing
    let err = refused("V1,Class\n1,0\n", &[], 1);
    assert!(err.contains("header has no 'V2' column"), "{err}");
    // a label that is not 0/1, an empty one, a short row
    let own = "id,country,is_fraud\n1,US,0\n2,,1\n3,GB,maybe\n";
    let err = refused(own, &["--label", "is_fraud"], 1);
    assert!(
        err.contains("x.csv:4:3: label must be 0 or 1, found 'maybe'"),
        "{err}"
    );
    let err = refused(&own.replace("maybe", ""), &["--label", "is_fraud"], 1);
    assert!(
        err.contains("x.csv:4:3: label must be 0 or 1, found ''"),
        "{err}"
    );
    let err = refused(&own.replace("3,GB,maybe", "3"), &["--label", "is_fraud"], 1);
    assert!(
        err.contains("x.csv:4:2: expected 3 columns, found 1"),
        "{err}"
    );
    let err = refused(own, &["--label", "fraud"], 1);
    assert!(
        err.contains("no label column 'fraud' (its columns: 'id', 'country', 'is_fraud')"),
        "{err}"
    );
    // flags that make no sense: usage errors
    let good = own.replace("maybe", "1");
    let err = refused(&good, &["--label", "is_fraud", "--seed", "3"], 2);
    assert!(
        err.contains("--seed only chooses the rows of --split random"),
        "{err}"
    );
    let err = refused(&good, &["--label", "is_fraud", "--test-fraction", "0"], 2);
    assert!(
        err.contains("--test-fraction must be above 0 and below 1, found 0"),
        "{err}"
    );
}

/// A CSV of the user's own (issue 11): amounts, a country column with
/// empty fields, a free-text column with quoted commas, a 0/1 label
/// (about 5 % frauds) and an hour that is sometimes missing.
fn own_csv(rows: usize, seed: u64) -> (String, Vec<u8>) {
    use rand::Rng as _;
    let mut g = rng(seed);
    let mut text = String::from("amount,country,note,is_fraud,hour\n");
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let y = u8::from(g.random::<f64>() < 0.05);
        let country = ["US", "GB", "DE", ""][g.random_range(0..4)];
        let note = match g.random_range(0..3) {
            0 => "\"late, online\"",
            1 => "",
            _ => "in store",
        };
        let hour = match g.random_range(0..30) {
            h @ 0..24 => h.to_string(),
            _ => String::new(),
        };
        let amount = g.random::<f64>() * 500.0;
        text.push_str(&format!("{amount:.2},{country},{note},{y},{hour}\n"));
        labels.push(y);
    }
    (text, labels)
}

/// The data lines of a prepared file, after its header.
fn data_lines(file: &str) -> Vec<&str> {
    file.split_inclusive('\n').skip(1).collect()
}

#[test]
fn prepare_copies_any_csv_with_a_header_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("own.csv");
    let (text, labels) = own_csv(1000, 11);
    std::fs::write(&input, &text).unwrap();
    let header = "amount,country,note,is_fraud,hour\n";
    let rows: Vec<&str> = data_lines(&text);
    let frauds = |idx: &[usize]| idx.iter().filter(|&&i| labels[i] == 1).count();
    let total = frauds(&(0..1000).collect::<Vec<_>>());
    assert!(total >= 20, "{total} frauds");

    // the time split: file order, the last fifth is test
    let out = dir.path().join("time");
    let o = prepare(&prepare_args(&input, &out, &["--label", "is_fraud"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let train = std::fs::read_to_string(out.join("train_data.csv")).unwrap();
    let test = std::fs::read_to_string(out.join("test_data.csv")).unwrap();
    assert!(train.starts_with(header) && test.starts_with(header));
    assert_eq!(data_lines(&train), rows[..800]);
    assert_eq!(data_lines(&test), rows[800..]);
    let said = String::from_utf8_lossy(&o.stdout);
    let (f_train, f_test) = (
        frauds(&(0..800).collect::<Vec<_>>()),
        frauds(&(800..1000).collect::<Vec<_>>()),
    );
    assert!(
        said.contains(&format!("(800 rows, {f_train} frauds)")),
        "{said}"
    );
    assert!(
        said.contains(&format!("(200 rows, {f_test} frauds)")),
        "{said}"
    );

    // the random split: seeded, stratified, each file in file order
    let random = |seed: &str, name: &str| {
        let out = dir.path().join(name);
        let rest = [
            "--label",
            "is_fraud",
            "--split",
            "random",
            "--seed",
            seed,
            "--test-fraction",
            "0.25",
        ];
        let o = prepare(&prepare_args(&input, &out, &rest));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
        (read("train_data.csv"), read("test_data.csv"))
    };
    let (train, test) = random("5", "a");
    assert!(train.starts_with(header) && test.starts_with(header));
    let at = |file: &str| -> Vec<usize> {
        let mut from = 0;
        data_lines(file)
            .iter()
            .map(|l| {
                // rows may repeat; each line is the next equal row in order
                let i = from + rows[from..].iter().position(|r| r == l).unwrap();
                from = i + 1;
                i
            })
            .collect()
    };
    let (a, b) = (at(&train), at(&test));
    assert_eq!(b.len(), 250);
    let mut all = [a.clone(), b.clone()].concat();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 1000, "every row in exactly one file");
    // each class split 3:1 (rounded)
    let want = (total as f64 * 0.25).round() as usize;
    assert_eq!(frauds(&b), want);
    assert_eq!(frauds(&a), total - want);
    assert_ne!(b, (750..1000).collect::<Vec<_>>(), "not the time split");
    assert_eq!(random("5", "again"), (train.clone(), test));
    assert_ne!(random("6", "other").0, train);

    // a .csv.gz gives the same files
    let packed = dir.path().join("own.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    std::fs::write(&packed, gz.finish().unwrap()).unwrap();
    let out = dir.path().join("gz");
    let o = prepare(&prepare_args(&packed, &out, &["--label", "is_fraud"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["train_data.csv", "test_data.csv"] {
        assert!(
            std::fs::read(out.join(f)).unwrap()
                == std::fs::read(dir.path().join("time").join(f)).unwrap(),
            "{f}"
        );
    }
}

/// `prepare --label` then `train` on the result: a user's CSV (a header,
/// two categorical string columns, empty fields) trains every model kind
/// under its own schema, which the artifact carries.
#[test]
fn own_csv_prepared_then_trained_under_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("own.csv");
    // frauds: large amounts at night, so there is something to learn
    use rand::Rng as _;
    let mut g = rng(5);
    let mut text = String::from("amount,country,note,is_fraud,hour\n");
    for _ in 0..3000 {
        let y = g.random::<f64>() < 0.05;
        let country = ["US", "GB", "DE", ""][g.random_range(0..4)];
        let note = ["\"late, online\"", "", "in store"][g.random_range(0..3)];
        let hour = if g.random_range(0..20) == 0 {
            String::new()
        } else if y {
            g.random_range(0..5).to_string()
        } else {
            g.random_range(0..24).to_string()
        };
        let amount = g.random::<f64>() * 500.0 + if y { 400.0 } else { 0.0 };
        text.push_str(&format!(
            "{amount:.2},{country},{note},{},{hour}\n",
            u8::from(y)
        ));
    }
    std::fs::write(&input, &text).unwrap();
    let prep = dir.path().join("prep");
    let out = prepare(&[
        "--input".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        prep.as_os_str(),
        "--label".as_ref(),
        "is_fraud".as_ref(),
        "--split".as_ref(),
        "random".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = MlRoot::new(
        r#"{"label": "is_fraud", "categorical": "country,note", "amount": "amount",
            "n_trees": "20", "epochs": "5", "batch_size": "64", "learning_rate": "0.01"}"#,
    );
    for (channel, file) in [("train", "train_data.csv"), ("test", "test_data.csv")] {
        root.channel(
            channel,
            file,
            &std::fs::read_to_string(prep.join(file)).unwrap(),
        );
    }
    let out = root.train();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("schema: Header layout, 4 columns (2 categorical: country (3 categories), note (2 categories)), label 'is_fraud', amount 'amount'"), "{stderr}");
    let artifact = std::fs::read_to_string(root.model_dir().join("ccfraud-model.json")).unwrap();
    assert!(artifact.starts_with(r#"{"format":"ccfraud-model","format_version":2,"#));
    let payload: serde_json::Value =
        serde_json::from_str(artifact.split_once('\n').unwrap().1).unwrap();
    let schema = &payload["schema"];
    assert_eq!(schema["form"], "header");
    assert_eq!(schema["label"], "is_fraud");
    let names: Vec<&str> = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["amount", "country", "note", "hour"]);
    assert_eq!(schema["columns"][2]["kind"], "categorical");
    assert_eq!(
        schema["columns"][2]["categories"].as_array().unwrap().len(),
        2
    );
    assert!(payload.get("amount_scaling").is_none());
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.model_dir().join("metrics.json")).unwrap())
            .unwrap();
    for model in ["dnn", "logistic", "forest", "gbdt"] {
        let auc = m["models"][model]["evaluation"]["auc_roc"]
            .as_f64()
            .unwrap();
        assert!(auc > 0.9, "{model}: test AUC-ROC {auc}");
    }
}

#[test]
fn schema_mistakes_fail_the_run_naming_the_column() {
    let header = "id,amount,country,is_fraud\n";
    let rows: String = (0..200)
        .map(|i| {
            format!(
                "{i},{}.5,{},{}\n",
                i % 50,
                ["US", "GB"][i % 2],
                u8::from(i % 10 == 0)
            )
        })
        .collect();
    let text = format!("{header}{rows}");
    let case = |hyper: &str, files: &[(&str, &str)], expect: &str| {
        let root = MlRoot::new(hyper);
        for (name, text) in files {
            root.channel("train", name, text);
        }
        assert_fails(&root, 1, expect);
    };
    case(
        "{}",
        &[("a.csv", &text)],
        "no label column 'Class'; the header has 'id', 'amount', 'country', 'is_fraud'",
    );
    case(
        r#"{"label": "is_fraud"}"#,
        &[("a.csv", &text)],
        ":2:3: not a number: 'US' (a category? list the column in the hyperparameter categorical)",
    );
    case(
        r#"{"label": "is_fraud", "categorical": "country", "ignore": "idx"}"#,
        &[("a.csv", &text)],
        "hyperparameter ignore names column 'idx', which the header does not have",
    );
    case(
        r#"{"label": "is_fraud", "categorical": "id,country", "max_categories": "100"}"#,
        &[("a.csv", &text)],
        "categorical column 'id' has 200 distinct values, more than max_categories=100",
    );
    case(
        r#"{"label": "is_fraud", "categorical": "country"}"#,
        &[
            ("a.csv", &text),
            ("b.csv", &text.replacen("amount", "amt", 1)),
        ],
        "b.csv: its header differs from",
    );
    case(
        "{}",
        &[("a.csv", "1,2,3\n0,2,3\n")],
        "no header and 3 columns",
    );
    // label_size=1 in inputdataconfig.json: the built-in algorithms' layout
    let root = MlRoot::new(QUICK);
    let lab = lab_csv(1500, 3);
    let first: String = lab
        .lines()
        .map(|l| {
            let (x, y) = l.rsplit_once(',').unwrap();
            format!("{y},{x}\n")
        })
        .collect();
    root.channel("train", "t.csv", &first);
    std::fs::write(
        root.path().join("input/config/inputdataconfig.json"),
        r#"{"train": {"ContentType": "text/csv;label_size=1", "TrainingInputMode": "File"}}"#,
    )
    .unwrap();
    let out = root.train();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("LabelFirst layout, 29 columns"), "{stderr}");
}

// ---- jobs of several hosts (resourceconfig.json) ---------------------------

/// Writes `input/config/resourceconfig.json` of `root`.
fn resource_config(root: &MlRoot, json: &str) {
    std::fs::write(root.path().join("input/config/resourceconfig.json"), json).unwrap();
}

/// Every file under `dir`, as paths relative to it (empty when absent).
fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A `ccfraud train` on `root` with `extra` flags, stderr piped.
fn train_cmd(root: &MlRoot, extra: &[&str]) -> std::process::Command {
    let mut cmd = ccfraud();
    cmd.args(["train", "--ml-root"])
        .arg(root.path())
        .args(extra)
        .env("CCFRAUD_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Two real hosts on this machine, each with its own ml-root as on
/// SageMaker: the leader (first of `hosts`) trains and writes as a one-host
/// job does; the follower connects to the leader's port, waits for it to
/// finish, exits 0 and writes no file anywhere (its ml-root holds only its
/// input afterwards), so no file can be written by two hosts.
#[test]
fn the_first_host_trains_and_the_other_waits_for_it_writing_nothing() {
    let hosts = r#""hosts": ["localhost", "algo-2"], "network_interface_name": "eth0""#;
    let leader = MlRoot::new(r#"{"model": "forest", "n_trees": "40"}"#);
    leader.channel("train", "t.csv", &lab_csv(6000, 31));
    resource_config(
        &leader,
        &format!(r#"{{"current_host": "localhost", {hosts}}}"#),
    );
    let follower = MlRoot::new(r#"{"model": "forest", "n_trees": "40"}"#);
    follower.channel("train", "t.csv", &lab_csv(6000, 31));
    resource_config(
        &follower,
        &format!(r#"{{"current_host": "algo-2", {hosts}}}"#),
    );
    let inputs = files_under(follower.path());

    // port 0: the leader says which port it listens on before it trains
    let mut lead = train_cmd(&leader, &["--leader-port", "0"]).spawn().unwrap();
    let port = wait_for_line(
        lead.stderr.take().unwrap(),
        Duration::from_secs(60),
        "leader line (… wait on port N …)",
        |line| {
            let i = line.find("wait on port ")?;
            line[i + 13..].split_whitespace().next().map(str::to_string)
        },
    );
    let port = match port {
        Ok(p) => p,
        Err(e) => {
            let _ = lead.kill();
            panic!("{e}");
        }
    };
    let out = train_cmd(&follower, &["--leader-port", &port])
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "follower: {stderr}");
    assert!(
        stderr.contains("host algo-2 is not the first of hosts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("localhost trains and writes the model"),
        "{stderr}"
    );
    assert!(stderr.contains("connected to the leader"), "{stderr}");
    assert!(stderr.contains("localhost has finished"), "{stderr}");
    assert_eq!(files_under(follower.path()), inputs, "the follower wrote");
    // the leader ended before the follower did
    let status = lead.try_wait().unwrap().expect("the leader has exited");
    assert!(status.success());
    assert!(leader.failure().is_none());
    let mut model = leader.model_files();
    model.sort();
    assert_eq!(model, ["ccfraud-model.json", "metrics.json", "report.html"]);
    assert!(leader.path().join("output/data/metrics.json").is_file());
}

/// A follower whose leader never answers gives up after --leader-wait and
/// still exits 0 without writing anything (the leader's exit decides the
/// job); a leader that listens and closes without training ends the wait.
#[test]
fn a_follower_exits_0_writing_nothing_whatever_the_leader_does() {
    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(500, 32));
    resource_config(
        &root,
        r#"{"current_host": "algo-2", "hosts": ["127.0.0.1", "algo-2"]}"#,
    );
    let inputs = files_under(root.path());
    // a port nobody listens on
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let out = train_cmd(&root, &["--leader-port", &port, "--leader-wait", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("could not reach 127.0.0.1:"), "{stderr}");
    assert_eq!(files_under(root.path()), inputs);

    // a stand-in leader: accepts, then the test closes the connection
    let leader = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = leader.local_addr().unwrap().port().to_string();
    let mut child = train_cmd(&root, &["--leader-port", &port]).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(leader.accept());
    });
    let Ok(Ok((conn, _))) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "the follower never connected: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited while the leader runs"
    );
    drop(conn);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("127.0.0.1 has finished"), "{stderr}");
    assert_eq!(files_under(root.path()), inputs);
}

/// A resourceconfig.json that cannot be trusted fails the run on every host
/// with the file and the reason, exit 1 and the failure file; nothing is
/// trained or written to model/.
#[test]
fn a_bad_resource_config_fails_naming_the_file_and_why() {
    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(500, 33));
    let cases = [
        (
            r#"{"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}"#,
            r#"resourceconfig.json: current_host 'algo-3' is not among hosts ["algo-1", "algo-2"]"#,
        ),
        (
            r#"{"current_host": "algo-1", "hosts": []}"#,
            "resourceconfig.json: 'hosts' is empty",
        ),
        (
            r#"{"current_host": "algo-1", "hosts": ["algo-1", "algo-1"]}"#,
            "'hosts' lists 'algo-1' twice",
        ),
        (
            r#"{"current_host": "algo-1", "hosts": ["algo-1"]"#,
            "resourceconfig.json: EOF while parsing an object at line 1",
        ),
        (r#"{"hosts": ["algo-1"]}"#, "missing field `current_host`"),
    ];
    for (json, expect) in cases {
        resource_config(&root, json);
        assert_fails(&root, 1, expect);
    }
    let path = root.path().join("input/config/resourceconfig.json");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert_fails(
        &root,
        1,
        "resourceconfig.json: is a directory, not a regular file",
    );
}

/// ShardedByS3Key gives each host a share of the files: the leader refuses
/// rather than train on part of the data; with one host it is no share.
#[test]
fn a_sharded_channel_is_refused_when_several_hosts_share_it() {
    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(1500, 34));
    std::fs::write(
        root.path().join("input/config/inputdataconfig.json"),
        r#"{"train": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"}}"#,
    )
    .unwrap();
    resource_config(
        &root,
        r#"{"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}"#,
    );
    assert_fails(
        &root,
        1,
        "channel(s) train use S3DistributionType ShardedByS3Key in a job of 2 hosts",
    );
    resource_config(&root, r#"{"current_host": "algo-1", "hosts": ["algo-1"]}"#);
    let out = root.train();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!root.model_files().is_empty());
}

//! Shared helpers of the integration tests: synthetic lab-format data and a
//! user's own CSV (a header, a categorical column, missing values), temp
//! ml-roots, and running the real `ccfraud` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_ccfraud");

/// The crate's seeded generator, as training uses it.
pub fn rng(seed: u64) -> ccfraud::Rng {
    rand::SeedableRng::seed_from_u64(seed)
}

/// A `ccfraud` command whose environment holds none of the variables the
/// binary reads (`CCFRAUD_*`, `SAGEMAKER_*`, `SM_*`, `AWS_*`) from the
/// calling shell, so a developer's or CI's settings cannot change what a
/// test checks; tests set what they need on the returned command.
pub fn ccfraud() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if ["CCFRAUD_", "SAGEMAKER_", "SM_", "AWS_"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Lab-format CSV text (29 features + label) with ~3 % frauds shifted on
/// some features.
pub fn lab_csv(rows: usize, seed: u64) -> String {
    use rand::Rng as _;
    let mut g = rng(seed);
    let mut s = String::with_capacity(rows * 300);
    for _ in 0..rows {
        let fraud = g.random::<f64>() < 0.03;
        for j in 0..29 {
            let shift = if fraud && j % 5 == 0 { 2.5 } else { 0.0 };
            let z: f64 = g.sample(rand_distr::StandardNormal);
            s.push_str(&format!("{:.5},", z + shift));
        }
        s.push_str(if fraud { "1\n" } else { "0\n" });
    }
    s
}

/// A temp ml-root with `train` (and optionally `test`) channels and
/// hyperparameters.
pub struct MlRoot {
    pub dir: tempfile::TempDir,
}

impl MlRoot {
    pub fn new(hyperparameters: &str) -> MlRoot {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("input/config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("hyperparameters.json"), hyperparameters).unwrap();
        MlRoot { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn channel(&self, name: &str, file: &str, text: &str) -> PathBuf {
        let d = self.path().join("input/data").join(name);
        let p = d.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    pub fn model_dir(&self) -> PathBuf {
        self.path().join("model")
    }
    pub fn failure(&self) -> Option<String> {
        std::fs::read_to_string(self.path().join("output/failure")).ok()
    }
    /// Files in model/ (empty when absent).
    pub fn model_files(&self) -> Vec<String> {
        match std::fs::read_dir(self.model_dir()) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        }
    }
    pub fn train(&self) -> Output {
        ccfraud()
            .args(["train", "--ml-root"])
            .arg(self.path())
            .env("CCFRAUD_LOG", "info")
            .output()
            .unwrap()
    }
}

/// Fast settings for synthetic data.
pub const QUICK: &str =
    r#"{"n_trees": "10", "epochs": "5", "batch_size": "64", "learning_rate": "0.01"}"#;

/// One ml-root with a model of each kind trained by the real `ccfraud
/// train` (4,000 synthetic rows, a 1,000-row test channel), shared by the
/// tests of one test binary and kept for its lifetime.
pub fn trained_all() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = MlRoot::new(QUICK);
        root.channel("train", "t.csv", &lab_csv(4000, 11));
        root.channel("test", "t.csv", &lab_csv(1000, 12));
        let out = root.train();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        root.dir.keep()
    })
}

/// A user's own CSV (issue 11): a header, the label `is_fraud` between the
/// features, a categorical `country` of strings, and empty fields (missing
/// values, ~4 % of `amount`, `country` and `hour` each). About 5 % frauds,
/// with larger amounts, at night, from `NG` more often.
pub fn header_csv(rows: usize, seed: u64) -> String {
    use rand::Rng as _;
    let mut g = rng(seed);
    let mut s = String::from("amount,country,is_fraud,hour\n");
    for _ in 0..rows {
        let fraud = g.random::<f64>() < 0.05;
        let amount = g.random::<f64>() * if fraud { 900.0 } else { 150.0 };
        let countries: &[&str] = if fraud {
            &["NG", "NG", "US", "GB"]
        } else {
            &["US", "US", "GB", "FR", "NG"]
        };
        let country = countries[g.random_range(0..countries.len())];
        let hour = if fraud {
            g.random_range(0..5)
        } else {
            g.random_range(0..24)
        };
        let mut blank = |v: String| {
            if g.random::<f64>() < 0.04 {
                String::new()
            } else {
                v
            }
        };
        let (a, c, h) = (
            blank(format!("{amount:.2}")),
            blank(country.to_string()),
            blank(hour.to_string()),
        );
        s.push_str(&format!("{a},{c},{},{h}\n", u8::from(fraud)));
    }
    s
}

/// The hyperparameters of a model on [`header_csv`]: its label, its
/// categorical column and its amount, and [`QUICK`]'s settings.
pub const HEADER_PARAMS: &str = r#"{"label": "is_fraud", "categorical": "country", "amount": "amount", "n_trees": "10", "epochs": "5", "batch_size": "64", "learning_rate": "0.01"}"#;

/// One ml-root with a model of each kind trained by the real `ccfraud
/// train` on 3,000 rows of [`header_csv`], shared by the tests of one test
/// binary and kept for its lifetime.
pub fn trained_header() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = MlRoot::new(HEADER_PARAMS);
        root.channel("train", "t.csv", &header_csv(3000, 21));
        let out = root.train();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        root.dir.keep()
    })
}

/// A running `ccfraud serve` on an ephemeral port, killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Server {
    /// Starts the server on `ml_root` (`extra` flags appended) and waits for
    /// its start-up line to learn the port.
    pub fn start(ml_root: &Path, extra: &[&str]) -> Server {
        let mut cmd = ccfraud();
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--ml-root"])
            .arg(ml_root)
            .args(extra)
            .env("CCFRAUD_LOG", "info");
        Server::spawn(cmd)
    }

    /// Spawns a prepared `ccfraud serve … --host 127.0.0.1 --port 0` command
    /// and waits for its start-up line to learn the port.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let found = wait_for_line(
            stderr,
            std::time::Duration::from_secs(60),
            "`ccfraud serve` start-up line (… on 127.0.0.1:PORT)",
            |line| {
                let i = line.find(" on 127.0.0.1:")?;
                Some(line[i + 4..].split_whitespace().next()?.to_string())
            },
        );
        let addr = match found {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{e}");
            }
        };
        Server { child, addr }
    }

    /// One HTTP/1.1 request; returns (status, headers lowercased, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        http(&self.addr, method, path, headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `stream` (a child's stdout or stderr) line by line until `pick`
/// returns a value, and returns it; the rest of the stream is drained in the
/// background so the child never blocks on a full pipe. Fails with every
/// line seen when the stream ends first or `deadline` passes.
pub fn wait_for_line<T: Send + 'static>(
    stream: impl std::io::Read + Send + 'static,
    deadline: std::time::Duration,
    what: &str,
    mut pick: impl FnMut(&str) -> Option<T> + Send + 'static,
) -> Result<T, String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = false;
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if !found {
                if let Some(v) = pick(&line) {
                    found = true;
                    let _ = tx.send(Ok(v));
                } else {
                    let _ = tx.send(Err(line));
                }
            }
        }
    });
    let end = std::time::Instant::now() + deadline;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(line)) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no {what} within {deadline:?}; output so far:\n{}",
                    seen.join("\n")
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "the stream ended before any {what}; output:\n{}",
                    seen.join("\n")
                ))
            }
        }
    }
}

/// Sends SIGTERM and waits (at most 10 s) for the exit code.
pub fn sigterm_and_wait(child: &mut std::process::Child) -> Option<i32> {
    use std::time::{Duration, Instant};
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Minimal HTTP/1.1 client (Connection: close) for tests.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head.to_ascii_lowercase(), body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// `data/demo_examples.json`: the lab's example fraud and more labelled
/// rows, the one copy that the demo, the tests and the scripts share.
pub fn demo_examples() -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo_examples.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    doc["examples"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no \"examples\" list", path.display()))
        .clone()
}

/// The 29 features (V1..V28, standardized Amount) of the example `id` of
/// `data/demo_examples.json`.
pub fn example_features(id: &str) -> Vec<f64> {
    let all = demo_examples();
    let e = all
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no example {id:?} in data/demo_examples.json"));
    let features: Vec<f64> = e["features"]
        .as_array()
        .unwrap_or_else(|| panic!("example {id:?} has no features"))
        .iter()
        .map(|v| v.as_f64().expect("features are numbers"))
        .collect();
    assert_eq!(features.len(), 29, "example {id:?}");
    features
}

/// The lab's example fraud transaction (../shared/DATA.md: train split row
/// 11880) as the JSON body the lab's Lambda sends: `[29 numbers]`.
pub fn lab_fraud() -> String {
    serde_json::to_string(&example_features("lab-fraud")).unwrap()
}

/// Fraud score from a TF-classification JSON body, the lab's way.
pub fn fraud_score(body: &[u8]) -> f64 {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["result"]["classifications"][0]["classes"][1]["score"]
        .as_f64()
        .unwrap()
}

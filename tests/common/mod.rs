//! Shared helpers of the integration tests: synthetic lab-format data, temp
//! ml-roots, and running the real `ccfraud` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_ccfraud");

/// xorshift for test data (the crate's own generator is tested elsewhere).
pub struct Gen(u64);
impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn f(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        (-2.0 * (1.0 - self.f()).ln()).sqrt() * (std::f64::consts::TAU * self.f()).cos()
    }
}

/// Lab-format CSV text (29 features + label) with ~3 % frauds shifted on
/// some features.
pub fn lab_csv(rows: usize, seed: u64) -> String {
    let mut g = Gen::new(seed);
    let mut s = String::with_capacity(rows * 300);
    for _ in 0..rows {
        let fraud = g.f() < 0.03;
        for j in 0..29 {
            let shift = if fraud && j % 5 == 0 { 2.5 } else { 0.0 };
            s.push_str(&format!("{:.5},", g.normal() + shift));
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
        Command::new(BIN)
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

/// A running `ccfraud serve` on an ephemeral port, killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Server {
    /// Starts the server on `ml_root` (`extra` flags appended) and waits for
    /// its start-up line to learn the port.
    pub fn start(ml_root: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--ml-root"])
            .arg(ml_root)
            .args(extra)
            .env("CCFRAUD_LOG", "info")
            .env_remove("SAGEMAKER_BIND_TO_PORT");
        Server::spawn(cmd)
    }

    /// Spawns a prepared `ccfraud serve … --host 127.0.0.1 --port 0` command
    /// and waits for its start-up line to learn the port.
    pub fn spawn(mut cmd: Command) -> Server {
        use std::io::BufRead;
        let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before start-up")
                .unwrap();
            if let Some(i) = line.find(" on 127.0.0.1:") {
                let rest = &line[i + 4..];
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // keep draining stderr so the server never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
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

/// The lab's example fraud transaction (../shared/DATA.md: data row 11880).
pub const LAB_FRAUD: &str = "[-15.819178720771802,8.7759971528627,-22.8046864614815,11.864868080360699,-9.09236053189517,-2.38689320657655,-16.5603681078199,0.9483485947860579,-6.31065843275059,-13.0888909176936,9.81570317447819,-14.0560611837648,0.777191846436601,-13.7610179615936,-0.353635939812489,-7.9574472262599505,-11.9629542349435,-4.7805077876172,0.652498045264831,0.992278949261366,-2.35063374523783,1.03636187430048,1.13605073696052,-1.0434137405139001,-0.10892334328197999,0.657436778462222,2.1364244708551396,-1.41194537483904,-0.3492313067728856]";

/// Fraud score from a TF-classification JSON body, the lab's way.
pub fn fraud_score(body: &[u8]) -> f64 {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["result"]["classifications"][0]["classes"][1]["score"]
        .as_f64()
        .unwrap()
}

//! Hostile artifacts and model archives against the real `ccfraud serve`:
//! a trained artifact tampered and re-signed (its checksum recomputed as
//! training computes it), FIFOs where the artifact or `--model-uri` should
//! be, files and archives past the size caps, decompression bombs. Each must
//! end within seconds in exit 1 with a message naming the file and what is
//! wrong, leaving no unpacked files behind.

use super::common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `ccfraud serve` on `root` with `extra` flags (and `TMPDIR=tmp`),
/// expecting it to refuse to start: its exit code and stderr. Fails when it
/// is still running after 20 s.
fn serve_refuses(root: &Path, extra: &[&str], tmp: &Path) -> (Option<i32>, String) {
    let log = tmp.join("serve.stderr");
    let mut child = ccfraud()
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--ml-root"])
        .arg(root)
        .args(extra)
        .env("TMPDIR", tmp)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve {extra:?} still running after 20 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    (status.code(), err)
}

/// A copy of the trained ml-root whose artifact payload is changed by
/// `tamper` and re-signed: header size and CRC-32 recomputed as training
/// computes them, so only the content checks can catch it.
fn resigned(tamper: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let bytes = std::fs::read(trained_all().join("model/ccfraud-model.json")).unwrap();
    let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
    let mut payload: serde_json::Value = serde_json::from_slice(&bytes[nl + 1..]).unwrap();
    tamper(&mut payload);
    let payload = serde_json::to_vec(&payload).unwrap();
    let header = serde_json::json!({
        "format": "ccfraud-model",
        "format_version": 2,
        "payload_bytes": payload.len(),
        "payload_crc32": format!("{:08x}", crc32fast::hash(&payload)),
    });
    let mut out = serde_json::to_vec(&header).unwrap();
    out.push(b'\n');
    out.extend_from_slice(&payload);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    std::fs::write(dir.path().join("model/ccfraud-model.json"), out).unwrap();
    dir
}

/// The index of model `kind` in the payload's `models`.
fn model(v: &serde_json::Value, kind: &str) -> usize {
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["name"] == kind)
        .unwrap()
}

#[test]
fn resigned_artifacts_that_do_not_fit_the_schema_are_refused() {
    type Tamper = fn(&mut serde_json::Value);
    let cases: [(Tamper, &[&str]); 8] = [
        // issue 10's reproduction: served before, scoring the lab fraud 1.8e-12
        (
            |v| {
                let i = model(v, "dnn");
                v["models"][i]["scaler"]["std"] = serde_json::json!([1.0]);
            },
            &["model 'dnn'", "scaler std has 1 values, expected 29"],
        ),
        (
            |v| {
                let i = model(v, "dnn");
                v["models"][i]["scaler"]["std"][4] = serde_json::json!(0.0);
            },
            &[
                "model 'dnn'",
                "scaler std[4] is 0: must be finite and above 0",
            ],
        ),
        (
            |v| {
                let i = model(v, "dnn");
                v["models"][i]["estimator"]["layers"][0]["bias"]
                    .as_array_mut()
                    .unwrap()
                    .pop();
            },
            &["model 'dnn'", "layer 0 bias has"],
        ),
        (
            |v| {
                let i = model(v, "logistic");
                v["models"][i]["estimator"]["weights"]
                    .as_array_mut()
                    .unwrap()
                    .pop();
            },
            &["model 'logistic'", "takes 28 inputs, the schema gives 29"],
        ),
        (
            |v| {
                let i = model(v, "forest");
                v["models"][i]["estimator"]["trees"][0]["nodes"][0]["f"] = 40.into();
            },
            &["model 'forest'", "tree 0 node 0 splits on feature 40"],
        ),
        (
            |v| {
                let i = model(v, "forest");
                // a split whose left child is itself: a cycle
                let nodes = &mut v["models"][i]["estimator"]["trees"][1]["nodes"];
                let k = (1..nodes.as_array().unwrap().len())
                    .find(|&k| nodes[k]["l"] != 0)
                    .unwrap();
                nodes[k]["l"] = k.into();
                nodes[k]["r"] = (k + 1).into();
            },
            &["model 'forest'", "tree 1 node", "must come after it"],
        ),
        (
            |v| {
                let i = model(v, "logistic");
                v["models"][i]["threshold"] = 2.into();
            },
            &["model 'logistic'", "threshold is 2"],
        ),
        (
            |v| {
                let m = v["models"][0].clone();
                v["models"].as_array_mut().unwrap().push(m);
            },
            &["appears more than once"],
        ),
    ];
    for (i, (tamper, texts)) in cases.into_iter().enumerate() {
        let root = resigned(tamper);
        let (code, err) = serve_refuses(root.path(), &[], root.path());
        assert_eq!(code, Some(1), "case {i}: {err}");
        let path = root.path().join("model/ccfraud-model.json");
        assert!(err.contains(&path.display().to_string()), "case {i}: {err}");
        for t in texts {
            assert!(err.contains(t), "case {i}: no {t:?} in {err}");
        }
    }
    // untampered, the same re-signing serves
    let root = resigned(|_| {});
    let server = Server::start(root.path(), &[]);
    let (status, _, _) = server.request("GET", "/ping", &[], b"");
    assert_eq!(status, 200);
}

/// Makes a FIFO at `path` (nothing ever writes to it).
fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// Serves an ml-root whose artifact file `make` creates, expecting exit 1
/// and `<artifact path>: <text>` on stderr.
fn artifact_refused(make: impl FnOnce(&Path), text: &str) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("model")).unwrap();
    let artifact = root.path().join("model/ccfraud-model.json");
    make(&artifact);
    let (code, err) = serve_refuses(root.path(), &[], root.path());
    assert_eq!(code, Some(1), "{err}");
    let expected = format!("{}: {text}", artifact.display());
    assert!(err.contains(&expected), "no {expected:?} in {err}");
}

/// A sparse file of `len` bytes at `path`.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn fifos_as_the_artifact_or_the_archive_are_refused_not_waited_on() {
    artifact_refused(mkfifo, "a FIFO, not a regular file");
    let root = tempfile::tempdir().unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let archive = root.path().join("model.tar.gz");
    mkfifo(&archive);
    let uri = archive.to_str().unwrap();
    let (code, err) = serve_refuses(root.path(), &["--model-uri", uri], tmp.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{uri}: a FIFO")), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A `.tar.gz` of one regular entry `name` whose header claims `size`
/// bytes, followed by `data` (which may be shorter: the header is what a
/// bomb's first refusal reads).
fn tar_gz(name: &str, size: u64, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(h.as_bytes()).unwrap();
    gz.write_all(data).unwrap();
    gz.write_all(&[0; 1024]).unwrap();
    gz.finish().unwrap()
}

#[test]
fn decompression_bombs_and_oversized_files_are_refused_at_the_cap() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let refuse = |name: &str, bytes: &[u8], extra: &[&str], texts: &[&str]| {
        let archive = root.path().join(name);
        std::fs::write(&archive, bytes).unwrap();
        let mut args = vec!["--model-uri", archive.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, err) = serve_refuses(root.path(), &args, tmp.path());
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(
            err.contains(&format!("model archive {}", archive.display())),
            "{err}"
        );
        for t in texts {
            assert!(err.contains(t), "{name}: no {t:?} in {err}");
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{name}: left behind {left:?}");
    };
    // 3 MiB of zeros in a few KiB, past a 1 MiB cap
    let zeros = vec![0u8; 3 << 20];
    let bomb = tar_gz("ccfraud-model.json", zeros.len() as u64, &zeros);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    refuse(
        "bomb.tar.gz",
        &bomb,
        &["--max-unpacked-mb", "1"],
        &[
            "entry 'ccfraud-model.json' (3145728 bytes)",
            "limit of 1048576 bytes",
        ],
    );
    // the default cap (1 GiB), against a header claiming 2 GiB
    refuse(
        "claims.tar.gz",
        &tar_gz("ccfraud-model.json", 2 << 30, b""),
        &[],
        &["(2147483648 bytes)", "limit of 1073741824 bytes"],
    );
    // the compressed archive itself, sized before it is read (sparse file)
    let big = root.path().join("big.tar.gz");
    sparse(&big, (1 << 20) + 1);
    let (code, err) = serve_refuses(
        root.path(),
        &[
            "--model-uri",
            big.to_str().unwrap(),
            "--max-unpacked-mb",
            "1",
        ],
        tmp.path(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("1048577 bytes, more than the limit of 1048576"),
        "{err}"
    );

    // an artifact file past 1 GiB, sized before it is read
    artifact_refused(|p| sparse(p, (1 << 30) + 1), "1073741825 bytes, more than");
}

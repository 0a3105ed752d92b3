//! Hostile training channels and hyperparameters against the real
//! `ccfraud train`: each run must end within seconds (or it is killed and
//! the test fails), exit with the documented code, say why in
//! `output/failure`, and leave `model/` empty.

use super::common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Every hostile run must end within this.
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `cmd` to its end, or kills it at [`DEADLINE`] and fails loudly.
fn run_within(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("`ccfraud train` still running after {DEADLINE:?}: killed (a hang)");
        }
    }
}

/// `ccfraud train` on `root`.
fn train_cmd(root: &MlRoot) -> Command {
    let mut cmd = ccfraud();
    cmd.args(["train", "--ml-root"])
        .arg(root.path())
        .env("CCFRAUD_LOG", "info");
    cmd
}

/// A run that ended with `code`, `expect` in the failure file, and nothing
/// in `model/`.
fn assert_refused(root: &MlRoot, out: &Output, code: i32, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let failure = root.failure().expect("failure file written");
    assert!(failure.contains(expect), "failure file: {failure}");
    assert!(
        root.model_files().is_empty(),
        "model/ must stay empty: {:?}",
        root.model_files()
    );
}

fn train_dir(root: &MlRoot) -> std::path::PathBuf {
    root.path().join("input/data/train")
}

#[test]
fn a_diverging_dnn_fit_fails_naming_the_learning_rate() {
    let root = MlRoot::new(
        r#"{"model": "dnn", "optimizer": "sgd", "learning_rate": "1000", "batch_size": "64"}"#,
    );
    root.channel("train", "t.csv", &lab_csv(2000, 1));
    let out = run_within(train_cmd(&root));
    assert_refused(&root, &out, 1, "diverged");
    assert!(root.failure().unwrap().contains("learning_rate"));
}

#[test]
fn symlink_loops_in_a_channel_are_refused() {
    // a link to an ancestor, and two folders linking to each other
    for links in [
        &[("up", "..")][..],
        &[("x/to_z", "../z"), ("z/to_x", "../x")][..],
    ] {
        let root = MlRoot::new(QUICK);
        root.channel("train", "t.csv", &lab_csv(500, 1));
        for (link, target) in links {
            let link = train_dir(&root).join(link);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &link).unwrap();
        }
        let out = run_within(train_cmd(&root));
        assert_refused(&root, &out, 1, "(a symlink loop or alias)");
    }
}

#[test]
fn a_fifo_in_a_channel_is_refused_unopened() {
    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(500, 1));
    let fifo = train_dir(&root).join("u.csv");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    let out = run_within(train_cmd(&root));
    assert_refused(
        &root,
        &out,
        1,
        &format!("{}: a FIFO, not a regular file", fifo.display()),
    );
}

/// gzip members of `MIB` MiB of NUL bytes each, `members` of them in a row
/// (gzip readers read every member): 1 KiB a MiB on disk.
fn zero_bomb(path: &Path, members: usize) {
    const MIB: usize = 1 << 20;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; MIB]).unwrap();
    let member = gz.finish().unwrap();
    std::fs::write(path, member.repeat(members)).unwrap();
}

#[test]
fn a_gzip_bomb_is_refused_at_its_first_line_in_bounded_memory() {
    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(500, 1));
    let bomb = train_dir(&root).join("u.csv.gz");
    zero_bomb(&bomb, 1024);
    // 1 GiB of text; the process may hold at most 512 MiB of data.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"ulimit -d 524288 && exec "$@""#, "sh", BIN])
        .args(["train", "--ml-root"])
        .arg(root.path())
        .env("CCFRAUD_LOG", "info");
    let out = run_within(cmd);
    assert_refused(
        &root,
        &out,
        1,
        &format!("{}:1: line longer than", bomb.display()),
    );
}

#[test]
fn a_value_beyond_f32_fails_training() {
    let root = MlRoot::new(r#"{"model": "dnn", "epochs": "2", "batch_size": "64"}"#);
    let text = lab_csv(1000, 1);
    let at = text.find('\n').unwrap() + 1;
    let field = text[at..].find(',').unwrap();
    let text = format!("{}1e39{}", &text[..at], &text[at + field..]);
    let p = root.channel("train", "t.csv", &text);
    let out = run_within(train_cmd(&root));
    // the parser or the channel check: either names the file
    assert_refused(&root, &out, 1, &p.display().to_string());
}

#[test]
fn a_one_class_validation_channel_fails_training() {
    let root = MlRoot::new(QUICK);
    root.channel("train", "t.csv", &lab_csv(1000, 1));
    let frauds = lab_csv(200, 2).replace(",0\n", ",1\n");
    root.channel("validation", "v.csv", &frauds);
    let out = run_within(train_cmd(&root));
    assert_refused(&root, &out, 1, "channel 'validation'");
    assert!(root
        .failure()
        .unwrap()
        .contains("200 transactions, all fraud"));
}

/// A full disk while the artifact is written (its temporary file is
/// `/dev/full`): the run fails and leaves no temporary behind.
#[test]
fn a_full_disk_leaves_no_partial_file() {
    let root = MlRoot::new(r#"{"model": "logistic"}"#);
    root.channel("train", "t.csv", &lab_csv(1000, 1));
    std::fs::create_dir_all(root.model_dir()).unwrap();
    let partial = root.model_dir().join(".ccfraud-model.json.partial");
    std::os::unix::fs::symlink("/dev/full", &partial).unwrap();
    let out = run_within(train_cmd(&root));
    assert_refused(&root, &out, 3, "No space left on device");
    assert!(!std::fs::exists(&partial).unwrap());
    assert!(!root.path().join("output/data/metrics.json").exists());
}

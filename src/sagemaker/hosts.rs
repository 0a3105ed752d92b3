//! Multi-instance training jobs: which host this is, and who writes.
//!
//! SageMaker uploads every host's `/opt/ml/model` into the one
//! `model.tar.gz` (and every host's `/opt/ml/output/data` into
//! `output.tar.gz`): two hosts writing the same name would clash, the last
//! upload silently winning. ccfraud's models fit on one machine, so the
//! first host of `resourceconfig.json`'s `hosts` — the *leader* — trains and
//! writes exactly as a one-host job does, and every other host — a
//! *follower* — writes nothing at all (no model, no output data, no failure
//! file) and exits 0 once the leader is done. A missing `resourceconfig.json`
//! means one host (runs outside SageMaker).
//!
//! Why a follower waits instead of exiting at once: SDK local mode runs the
//! hosts with `docker compose up --abort-on-container-exit`, so the first
//! container to exit stops the others, and compose reports *its* exit code:
//! a follower that exited first would stop the leader mid-fit and the job
//! would "succeed" with an empty model. So the leader holds a TCP port open
//! for as long as it runs ([`Beacon`], port [`DEFAULT_LEADER_PORT`] unless
//! `--leader-port`); a follower connects to it and returns when the
//! connection closes ([`wait_for_leader`]), then lingers [`LINGER`] so the
//! leader's exit is the one compose sees first. This is the pattern of the
//! SageMaker TensorFlow container's parameter servers, which poll the master
//! on port 2222 until it is down. On SageMaker the wait costs no time: the
//! job lasts as long as the leader's fit either way. A follower
//! that cannot reach the leader for `--leader-wait` seconds (the leader may
//! have failed before it connected) logs why and exits 0 too: the leader's
//! own exit decides the job.

use super::{ConfigError, MlRoot};
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Port of the leader's [`Beacon`] when `--leader-port` is not given.
pub const DEFAULT_LEADER_PORT: u16 = 27100;

/// How long a follower tries to reach the leader, by default.
pub const DEFAULT_LEADER_WAIT: Duration = Duration::from_secs(600);

/// How long a follower stays up after the leader's connection closed, so
/// that in local mode the leader's exit (and its exit code) is the one
/// `docker compose --abort-on-container-exit` reports.
pub const LINGER: Duration = Duration::from_secs(2);

/// How hosts find each other: the leader's port, and how long a follower
/// tries to reach it (`--leader-port`, `--leader-wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub port: u16,
    pub wait: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            port: DEFAULT_LEADER_PORT,
            wait: DEFAULT_LEADER_WAIT,
        }
    }
}

/// How often a waiting follower retries a connection or checks for SIGTERM.
const TICK: Duration = Duration::from_millis(200);

/// Why `resourceconfig.json` is not a usable list of hosts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostsError {
    #[error("is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error("'hosts' is empty (SageMaker lists every host of the job, this one included)")]
    NoHosts,
    #[error("'hosts' has an empty name at index {0}")]
    EmptyName(usize),
    #[error("'hosts' lists '{0}' twice")]
    Duplicate(String),
    #[error("current_host '{current}' is not among hosts {hosts:?}")]
    NotAmongHosts { current: String, hosts: Vec<String> },
}

/// The part of `resourceconfig.json` ccfraud reads; every other key
/// (`network_interface_name`, `current_instance_type`, `instance_groups`…)
/// is tolerated and ignored.
#[derive(serde::Deserialize)]
struct RawResourceConfig {
    current_host: String,
    hosts: Vec<String>,
}

/// `resourceconfig.json`, validated: `hosts` is non-empty, has no empty or
/// repeated name, and holds `current_host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceConfig {
    current_host: String,
    hosts: Vec<String>,
}

/// What this host does in a training job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'a> {
    /// The only host: train and write.
    Single,
    /// The first of several hosts: train and write; `followers` others
    /// write nothing.
    Leader { followers: usize },
    /// Not the first host: write nothing, wait for `leader`.
    Follower { leader: &'a str },
}

impl ResourceConfig {
    /// Reads `input/config/resourceconfig.json` of `root`: `None` when it is
    /// absent (one host). Anything but a regular file is refused before it
    /// is opened (a FIFO would block the read).
    pub fn read(root: &MlRoot) -> Result<Option<ResourceConfig>, ConfigError> {
        let path = root.resource_config();
        let meta = match fs_err::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() {
            let kind = if meta.is_dir() {
                "a directory"
            } else {
                "a special file (FIFO, socket or device)"
            };
            return Err(ConfigError::Hosts {
                path,
                why: HostsError::NotAFile(kind),
            });
        }
        let text = fs_err::read_to_string(&path)?;
        ResourceConfig::parse(&path, &text).map(Some)
    }

    /// Parses and validates the text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ResourceConfig, ConfigError> {
        let raw: RawResourceConfig =
            serde_json::from_str(text).map_err(|source| ConfigError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let invalid = |why| ConfigError::Hosts {
            path: path.to_path_buf(),
            why,
        };
        if raw.hosts.is_empty() {
            return Err(invalid(HostsError::NoHosts));
        }
        for (i, h) in raw.hosts.iter().enumerate() {
            if h.trim().is_empty() {
                return Err(invalid(HostsError::EmptyName(i)));
            }
            if raw.hosts[..i].contains(h) {
                return Err(invalid(HostsError::Duplicate(h.clone())));
            }
        }
        if !raw.hosts.contains(&raw.current_host) {
            return Err(invalid(HostsError::NotAmongHosts {
                current: raw.current_host,
                hosts: raw.hosts,
            }));
        }
        Ok(ResourceConfig {
            current_host: raw.current_host,
            hosts: raw.hosts,
        })
    }

    pub fn current_host(&self) -> &str {
        &self.current_host
    }

    /// Every host of the job, in SageMaker's order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The host that trains and writes: the first of `hosts`.
    pub fn leader(&self) -> &str {
        // non-empty: checked by `parse`
        self.hosts.first().map_or("", String::as_str)
    }

    pub fn role(&self) -> Role<'_> {
        match self.hosts.len() {
            0 | 1 => Role::Single,
            n if self.current_host == self.leader() => Role::Leader { followers: n - 1 },
            _ => Role::Follower {
                leader: self.leader(),
            },
        }
    }
}

/// The leader's side: a listener on the leader port that accepts followers'
/// connections and holds them open; dropping it (when training ends, however
/// it ends) closes them, which tells the followers the leader is done.
#[derive(Debug)]
pub struct Beacon {
    port: u16,
    held: Arc<Mutex<Option<Vec<TcpStream>>>>,
}

impl Beacon {
    /// Listens on every interface at `port` (0: any free port) and accepts
    /// in a background thread.
    pub fn bind(port: u16) -> std::io::Result<Beacon> {
        let listener = TcpListener::bind(("0.0.0.0", port))?;
        let port = listener.local_addr()?.port();
        let held = Arc::new(Mutex::new(Some(Vec::new())));
        let accepted = Arc::clone(&held);
        std::thread::Builder::new()
            .name("leader-beacon".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let Ok(mut guard) = accepted.lock() else {
                        return;
                    };
                    match guard.as_mut() {
                        Some(streams) => streams.push(stream),
                        // closed: refuse latecomers at once
                        None => {
                            let _ = stream.shutdown(Shutdown::Both);
                        }
                    }
                }
            })?;
        Ok(Beacon { port, held })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Beacon {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.held.lock() {
            for s in guard.take().unwrap_or_default() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// How a follower's wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// Connected to the leader, and the leader's connection has closed.
    LeaderDone,
    /// Never connected within the allowed time; the last error.
    Unreachable { last_error: String },
    /// SIGTERM/SIGINT while waiting.
    Stopped,
}

/// The follower's side: connects to `leader:port` (retrying every 200 ms for
/// up to `connect_for`) and blocks until that connection closes, then
/// lingers `linger`. Returns early, with [`Waited::Stopped`], when `cancel`
/// is cancelled.
pub fn wait_for_leader(
    leader: &str,
    port: u16,
    connect_for: Duration,
    linger: Duration,
    cancel: &CancellationToken,
) -> Waited {
    let start = Instant::now();
    let mut stream = loop {
        match connect(leader, port) {
            Ok(s) => break s,
            Err(e) if start.elapsed() >= connect_for => {
                return Waited::Unreachable {
                    last_error: e.to_string(),
                }
            }
            Err(_) => {
                if pause(TICK, cancel) {
                    return Waited::Stopped;
                }
            }
        }
    };
    tracing::info!("connected to the leader {leader}:{port}; waiting for it to finish");
    if stream.set_read_timeout(Some(TICK)).is_err() {
        // Without a timeout a read could not see SIGTERM; 0 never happens.
        tracing::warn!("cannot set a read timeout; SIGTERM is seen when the leader closes");
    }
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            // closed (or reset): the leader is done
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
        if cancel.is_cancelled() {
            return Waited::Stopped;
        }
    }
    if pause(linger, cancel) {
        return Waited::Stopped;
    }
    Waited::LeaderDone
}

/// One connection attempt to any address of `host:port`, with TCP
/// keepalive so a leader whose machine vanishes is noticed.
fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{host} resolves to no address"),
    );
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(30))
                    .with_interval(Duration::from_secs(10));
                let _ = socket2::SockRef::from(&s).set_tcp_keepalive(&keepalive);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Sleeps `d` in short steps; true when `cancel` fired meanwhile.
fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    let end = Instant::now() + d;
    loop {
        if cancel.is_cancelled() {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(TICK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ResourceConfig, ConfigError> {
        ResourceConfig::parse(Path::new("/opt/ml/input/config/resourceconfig.json"), text)
    }

    fn why(text: &str) -> HostsError {
        match parse(text) {
            Err(ConfigError::Hosts { why, .. }) => why,
            other => panic!("expected a hosts error, got {other:?}"),
        }
    }

    #[test]
    fn sagemakers_file_with_unknown_keys_parses() {
        // as SDK local mode writes it, plus the keys SageMaker adds
        let c = parse(
            r#"{"current_host": "algo-2", "hosts": ["algo-1", "algo-2"],
                "network_interface_name": "eth0", "current_instance_type": "ml.m5.large",
                "current_group_name": "homogeneousCluster",
                "instance_groups": [{"instance_group_name": "homogeneousCluster",
                  "instance_type": "ml.m5.large", "hosts": ["algo-1", "algo-2"]}]}"#,
        )
        .unwrap();
        assert_eq!(c.current_host(), "algo-2");
        assert_eq!(c.hosts(), ["algo-1", "algo-2"]);
        assert_eq!(c.leader(), "algo-1");
        assert_eq!(c.role(), Role::Follower { leader: "algo-1" });
    }

    #[test]
    fn the_first_host_leads() {
        let c = parse(r#"{"current_host": "b", "hosts": ["b", "a", "c"]}"#).unwrap();
        assert_eq!(c.role(), Role::Leader { followers: 2 });
        let one = parse(r#"{"current_host": "algo-1", "hosts": ["algo-1"]}"#).unwrap();
        assert_eq!(one.role(), Role::Single);
    }

    #[test]
    fn invalid_configs_say_why() {
        assert_eq!(
            why(r#"{"current_host": "algo-1", "hosts": []}"#),
            HostsError::NoHosts
        );
        assert_eq!(
            why(r#"{"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}"#),
            HostsError::NotAmongHosts {
                current: "algo-3".into(),
                hosts: vec!["algo-1".into(), "algo-2".into()]
            }
        );
        assert_eq!(
            why(r#"{"current_host": "a", "hosts": ["a", " "]}"#),
            HostsError::EmptyName(1)
        );
        assert_eq!(
            why(r#"{"current_host": "a", "hosts": ["a", "b", "a"]}"#),
            HostsError::Duplicate("a".into())
        );
        let e = parse(r#"{"current_host": "a", "hosts": ["a", "b"]"#).unwrap_err();
        assert!(matches!(e, ConfigError::Json { .. }), "{e}");
        let text = e.to_string();
        assert!(text.starts_with("/opt/ml/input/config/resourceconfig.json: "));
        assert!(text.contains("line 1"), "{text}");
        for (text, field) in [
            (r#"{"hosts": ["a"]}"#, "current_host"),
            (r#"{"current_host": "a"}"#, "hosts"),
            (r#"{"current_host": "a", "hosts": "a"}"#, "sequence"),
            (r#"{"current_host": 1, "hosts": ["a"]}"#, "string"),
            ("[]", "struct"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(field), "{text}: {msg}");
        }
        let msg = parse(r#"{"current_host": "x", "hosts": ["a"]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            r#"/opt/ml/input/config/resourceconfig.json: current_host 'x' is not among hosts ["a"]"#
        );
    }

    #[test]
    fn reads_the_file_once_present_and_refuses_non_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = MlRoot::new(dir.path());
        assert_eq!(ResourceConfig::read(&r).unwrap(), None);
        std::fs::create_dir_all(r.resource_config()).unwrap();
        let e = ResourceConfig::read(&r).unwrap_err();
        assert!(
            matches!(
                &e,
                ConfigError::Hosts {
                    why: HostsError::NotAFile("a directory"),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("resourceconfig.json"), "{e}");
        std::fs::remove_dir(r.resource_config()).unwrap();
        std::fs::write(
            r.resource_config(),
            r#"{"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}"#,
        )
        .unwrap();
        let c = ResourceConfig::read(&r).unwrap().unwrap();
        assert_eq!(c.role(), Role::Leader { followers: 1 });
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let r = MlRoot::new(dir.path());
        std::fs::create_dir_all(r.resource_config().parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(r.resource_config().to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = ResourceConfig::read(&r).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_follower_waits_until_the_beacon_is_dropped() {
        let beacon = Beacon::bind(0).unwrap();
        let port = beacon.port();
        let cancel = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let w = wait_for_leader(
                "localhost",
                port,
                Duration::from_secs(30),
                Duration::ZERO,
                &cancel,
            );
            tx.send(()).unwrap();
            w
        });
        // still waiting while the leader runs (bounded check, not a sleep)
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());
        drop(beacon);
        assert_eq!(waiter.join().unwrap(), Waited::LeaderDone);
    }

    #[test]
    fn an_unreachable_leader_or_a_signal_ends_the_wait() {
        // a port nobody listens on: bind, learn it, close
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cancel = CancellationToken::new();
        let w = wait_for_leader("127.0.0.1", port, Duration::ZERO, Duration::ZERO, &cancel);
        assert!(matches!(w, Waited::Unreachable { .. }), "{w:?}");
        let w = wait_for_leader(
            "no-such-host.invalid",
            port,
            Duration::ZERO,
            Duration::ZERO,
            &cancel,
        );
        assert!(matches!(w, Waited::Unreachable { .. }), "{w:?}");
        cancel.cancel();
        let w = wait_for_leader(
            "127.0.0.1",
            port,
            Duration::from_secs(60),
            Duration::ZERO,
            &cancel,
        );
        assert_eq!(w, Waited::Stopped);
        let beacon = Beacon::bind(0).unwrap();
        let w = wait_for_leader(
            "127.0.0.1",
            beacon.port(),
            Duration::from_secs(60),
            Duration::ZERO,
            &cancel,
        );
        assert_eq!(w, Waited::Stopped);
    }
}

//! What a slow, flooding or hostile client can hold of the server, bounded:
//! open files (the soft `RLIMIT_NOFILE` raised to the hard limit), open
//! connections (counted, capped below the open-file limit, `/invocations`
//! shed above a soft cap so accepting never pauses first), request-body bytes
//! in flight (a semaphore), the listen backlog, and SIGTERM: actix's
//! graceful stop closes the listener and every connection that has not sent
//! a request yet, resetting clients the kernel had already accepted, so the
//! stop waits (a short deadline) until the listen queue is empty and every
//! open connection has had its first request read.
//!
//! Linux only, like the image: the listen queue and the backlog in force come
//! from `TCP_INFO` of the listening socket (`tcpi_unacked`, `tcpi_sacked`).

use super::error::{ApiError, Busy};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The listen backlog asked for; the kernel caps it at
/// `net.core.somaxconn` (4096 on recent kernels, 128 on older ones), and
/// [`listen_queue`] reports the value in force.
pub const BACKLOG: i32 = 4096;
/// Open files kept out of the connection cap: the listener, epoll, logs, a
/// fetched model, the blocking pool's work.
const FD_RESERVE: usize = 256;
/// How long SIGTERM waits for the listen queue to empty.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
/// How often the listen queue is looked at while draining.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// How long the queue must stay drained before the server stops.
const DRAIN_QUIET: Duration = Duration::from_millis(50);

/// Binds `addr` with [`BACKLOG`] (`SO_REUSEADDR` as std does).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// Raises the soft open-file limit to the hard one; returns the soft limit
/// in force (logged by the caller), unchanged when it cannot be raised.
pub fn raise_fd_limit() -> std::io::Result<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        } else {
            tracing::warn!(
                "cannot raise the open-file limit from {} to {}: {}",
                lim.rlim_cur,
                lim.rlim_max,
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
}

/// The listen queue of a listening socket: (connections waiting to be
/// accepted, the backlog in force).
pub fn listen_queue(l: &TcpListener) -> std::io::Result<(u32, u32)> {
    // SAFETY: tcp_info is plain integers; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((info.tcpi_unacked, info.tcpi_sacked))
}

/// The connection caps: `hard` connections at most (actix stops accepting
/// there), `/invocations` shed above `soft` (three quarters of it), so slow
/// bodies cannot fill the server and `/ping` still gets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCap {
    pub hard: usize,
    pub soft: usize,
}

impl ConnectionCap {
    /// `asked` (or everything the open-file limit allows), at most the
    /// open-file limit less a reserve, at least one per worker.
    pub fn new(open_files: usize, asked: Option<usize>, workers: usize) -> ConnectionCap {
        let fit = open_files.saturating_sub(FD_RESERVE).max(workers);
        let hard = asked.map_or(fit, |n| n.min(fit)).max(workers);
        ConnectionCap {
            hard,
            soft: (hard / 4 * 3).max(1),
        }
    }

    /// actix's cap is per worker.
    pub fn per_worker(&self, workers: usize) -> usize {
        (self.hard / workers.max(1)).max(1)
    }
}

/// Open connections, and those of them that have not sent a request yet,
/// counted by a guard that lives as long as each connection.
#[derive(Debug, Default, Clone)]
pub struct Connections(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    open: AtomicUsize,
    fresh: AtomicUsize,
}

/// Held in a connection's data; the counts drop with it.
pub struct Open {
    counts: Arc<Counts>,
    fresh: std::cell::Cell<bool>,
}

impl Open {
    /// The connection has sent a request (called for every request).
    pub fn served(&self) {
        if self.fresh.replace(false) {
            self.counts.fresh.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Connections {
    pub fn open(&self) -> Open {
        self.0.open.fetch_add(1, Ordering::Relaxed);
        self.0.fresh.fetch_add(1, Ordering::Relaxed);
        Open {
            counts: self.0.clone(),
            fresh: std::cell::Cell::new(true),
        }
    }

    /// Connections accepted that have not sent a request yet.
    fn fresh(&self) -> usize {
        self.0.fresh.load(Ordering::Relaxed)
    }

    /// Refuses a new request above `cap.soft` open connections.
    pub fn admit(&self, cap: ConnectionCap) -> Result<(), ApiError> {
        let open = self.0.open.load(Ordering::Relaxed);
        if open > cap.soft {
            return Err(ApiError::Busy(Busy::Connections {
                open,
                limit: cap.soft,
            }));
        }
        Ok(())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.served();
        self.counts.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Request-body bytes being received and parsed at once, counted in KiB
/// permits of one semaphore; a body larger than the whole budget takes all
/// of it (then it is alone).
#[derive(Debug)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    kib: u32,
    bytes: usize,
}

impl InFlight {
    pub fn new(bytes: usize) -> InFlight {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        InFlight {
            permits: Arc::new(Semaphore::new(kib as usize)),
            kib,
            bytes,
        }
    }

    /// Grows `held` to cover `bytes` (never waits): 503 when the budget is
    /// spent.
    pub fn cover(
        &self,
        held: &mut Option<OwnedSemaphorePermit>,
        bytes: usize,
    ) -> Result<(), ApiError> {
        let want = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.kib);
        let have = held.as_ref().map_or(0, |p| p.num_permits() as u32);
        if want <= have {
            return Ok(());
        }
        let more = self
            .permits
            .clone()
            .try_acquire_many_owned(want - have)
            .map_err(|_| ApiError::Busy(Busy::InFlight { limit: self.bytes }))?;
        match held {
            Some(p) => p.merge(more),
            None => *held = Some(more),
        }
        Ok(())
    }
}

/// Installs the SIGTERM/SIGINT handler (within the server's runtime) and
/// returns a future that completes on SIGTERM or SIGINT once the listen queue of `probe` (a
/// duplicate of the server's listener) is empty and every open connection
/// has sent a request, or [`DRAIN_DEADLINE`] has passed: actix keeps
/// accepting and reading meanwhile, so every client the kernel has already
/// accepted is served. The server then stops gracefully.
pub fn drain_on_signal(
    probe: TcpListener,
    connections: Connections,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate())?;
    let int = signal(SignalKind::interrupt())?;
    Ok(drain(probe, connections, term, int))
}

async fn drain(
    probe: TcpListener,
    connections: Connections,
    mut term: actix_web::rt::signal::unix::Signal,
    mut int: actix_web::rt::signal::unix::Signal,
) {
    let name = std::future::poll_fn(|cx| {
        if term.poll_recv(cx).is_ready() {
            return std::task::Poll::Ready("SIGTERM");
        }
        int.poll_recv(cx).map(|_| "SIGINT")
    })
    .await;
    let start = Instant::now();
    let mut quiet_since = None;
    loop {
        let queued = listen_queue(&probe).map_or(0, |(q, _)| q as usize) + connections.fresh();
        // Drained for a while: a connection on its way from the accept
        // thread to a worker is in neither count for a moment.
        let quiet = *quiet_since.get_or_insert_with(Instant::now);
        if queued > 0 {
            quiet_since = None;
        } else if quiet.elapsed() >= DRAIN_QUIET {
            break;
        }
        if start.elapsed() >= DRAIN_DEADLINE {
            tracing::warn!(
                "{name}: {queued} connections still queued or silent after {DRAIN_DEADLINE:?}"
            );
            break;
        }
        actix_web::rt::time::sleep(DRAIN_POLL).await;
    }
    // The listener must close with actix's copy, or late clients would queue
    // on a socket nobody accepts from.
    drop(probe);
    tracing::info!(
        "{name}: listen queue drained in {} ms; finishing in-flight requests",
        start.elapsed().as_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_stay_below_the_open_file_limit() {
        let c = ConnectionCap::new(20_000, None, 2);
        assert_eq!(c.hard, 20_000 - FD_RESERVE);
        assert_eq!(c.per_worker(2) * 2, c.hard);
        assert!(c.soft < c.hard);
        assert_eq!(
            ConnectionCap::new(20_000, Some(64), 2),
            ConnectionCap { hard: 64, soft: 48 }
        );
        assert_eq!(
            ConnectionCap::new(1024, Some(1 << 20), 2).hard,
            1024 - FD_RESERVE
        );
        assert_eq!(ConnectionCap::new(10, None, 4).hard, 4);
    }

    #[test]
    fn connections_are_counted_while_open() {
        let cap = ConnectionCap { hard: 2, soft: 1 };
        let c = Connections::default();
        let a = c.open();
        assert!(c.admit(cap).is_ok());
        let b = c.open();
        assert_eq!(c.fresh(), 2);
        b.served();
        b.served();
        assert_eq!(c.fresh(), 1);
        assert!(matches!(
            c.admit(cap),
            Err(ApiError::Busy(Busy::Connections { open: 2, limit: 1 }))
        ));
        drop((a, b));
        assert!(c.admit(cap).is_ok());
        assert_eq!(c.fresh(), 0);
    }

    #[test]
    fn in_flight_bytes_are_bounded_and_returned() {
        let f = InFlight::new(10 * 1024);
        let mut a = None;
        f.cover(&mut a, 4000).unwrap();
        f.cover(&mut a, 6 * 1024).unwrap(); // grows as a chunked body arrives
        assert_eq!(a.as_ref().unwrap().num_permits(), 6);
        let mut b = None;
        assert!(matches!(
            f.cover(&mut b, 5 * 1024),
            Err(ApiError::Busy(Busy::InFlight { .. }))
        ));
        drop(a);
        f.cover(&mut b, 5 * 1024).unwrap();
        // larger than the whole budget: all of it, once the rest is back
        let mut c = None;
        assert!(f.cover(&mut c, 1 << 30).is_err());
        drop(b);
        f.cover(&mut c, 1 << 30).unwrap();
        assert_eq!(c.unwrap().num_permits(), 10);
    }

    #[test]
    fn the_backlog_is_asked_for_and_the_queue_is_read() {
        let l = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let (queued, backlog) = listen_queue(&l).unwrap();
        assert_eq!(queued, 0);
        assert!(backlog > 0 && backlog <= BACKLOG as u32, "{backlog}");
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert_eq!(listen_queue(&l).unwrap().0, 1);
    }
}

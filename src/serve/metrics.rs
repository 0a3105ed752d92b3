//! Watching a live endpoint: `GET /metrics` in the Prometheus text format
//! (version 0.0.4, by the `prometheus` crate), the request log, and the
//! actix glue that feeds both. The drift arithmetic lives in
//! [`crate::model::drift`]; this module only bins each scored batch and
//! turns the window into gauges when scraped. (Not [`crate::metrics`],
//! which scores models at train time.)
//!
//! The metrics (every one prefixed `ccfraud_`):
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `http_requests_total` | counter | `route`, `status` | answers by matched route pattern (`/endpoints/{name}/invocations`, never the raw path; `(unmatched)` for 404s) and status code |
//! | `http_request_duration_seconds` | histogram | `route` | time from the request head to the response head |
//! | `http_requests_in_flight` | gauge | | requests being handled now |
//! | `rows_scored_total` | counter | | rows scored by the model |
//! | `fraud_score` | histogram | | fraud probabilities answered, buckets over [0, 1] |
//! | `model_info` | gauge (1) | `name`, `kind`, `format_version`, `trained_at`, `created_by` | the served model |
//! | `drift_window_rows` | gauge | | rows in the drift window |
//! | `feature_drift_psi` | gauge | `column` | PSI of the window against the training distribution, per schema column |
//!
//! Cost per request: a few atomic increments, one read-locked label lookup
//! per labelled family, and, for drift, the batch's bin counts added to the
//! scoring thread's own pending block (see [`Drift`]'s doc; a large batch
//! is binned before one short section under the window's lock). The PSI
//! is computed when `/metrics` is scraped, not per request.
//!
//! The log: one line (target `ccfraud::request`) per answer that is not
//! 2xx (`warn`) or that took at least the slow-request threshold (`info`),
//! with the request id (SageMaker's `X-Amzn-SageMaker-Inference-Id` or
//! `X-Amzn-RequestId` when present, else one generated), method, route,
//! status, rows, latency and the custom attributes. `/ping` and `/metrics`
//! are never logged.

use crate::model::drift::{Reference, Window};
use crate::model::TrainedModel;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Latency buckets, seconds: a single row answers in well under a
/// millisecond, a 6 MiB batch in about a second.
const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Fraud probability buckets: fine at both ends, where decisions are made.
const SCORE_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
];
/// The `route` of a request no route matched (any path: one label value).
pub const UNMATCHED: &str = "(unmatched)";
/// Routes that are never logged (health checks and scrapes).
const QUIET: [&str; 2] = ["/ping", "/metrics"];
/// Headers that carry SageMaker's request id, first found wins.
const REQUEST_ID_HEADERS: [&str; 2] = ["x-amzn-sagemaker-inference-id", "x-amzn-requestid"];
const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Longest header value copied into a log line.
const MAX_LOGGED_HEADER: usize = 256;

/// Batches of at most this many rows observe scores one by one; larger
/// ones count buckets locally first.
const LOCAL_HISTOGRAM_ROWS: usize = 16;
/// A thread's bin buffer is kept for the next batch up to this many values.
const MAX_KEPT_BINS: usize = 1 << 16;

/// Pending drift blocks (more than the threads that score, usually).
const PENDING_SLOTS: usize = 16;
/// Rows a pending block holds at most before it moves into the window.
const BLOCK_ROWS: usize = 32;

thread_local! {
    /// Each thread's buffer of binned values (no allocation per request).
    static BINS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each thread's pending drift block, numbered on its first batch by
    /// the [`Drift`] it feeds (no process-wide counter).
    static SLOT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Settings of the watch (from `ccfraud serve`'s flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// Rows in the drift window (0: no drift gauges).
    pub drift_window_rows: usize,
    /// Requests at least this slow are logged.
    pub slow_request: Duration,
}

/// What `model_info` says about the served model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFacts {
    pub kind: String,
    pub format_version: u32,
    pub trained_at: Option<String>,
    pub created_by: String,
}

/// The registry, the metrics every request feeds, and the drift window.
#[derive(Debug)]
pub struct Watch {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGauge,
    rows: IntCounter,
    scores: Histogram,
    drift: Option<Drift>,
    slow: Duration,
    ids: RequestIds,
}

/// The training distribution, the window of recent rows and the gauges
/// they set at scrape time.
///
/// Small batches are counted into one of [`PENDING_SLOTS`] pending blocks
/// (a thread keeps to one slot, so its counts stay in its core's cache and
/// its lock is uncontended), moved into the window as a block when they
/// reach [`BLOCK_ROWS`] rows and at every scrape, so a scrape sees every
/// row scored before it. Batches of at least [`BLOCK_ROWS`] rows go into
/// the window row by row under its lock.
#[derive(Debug)]
struct Drift {
    reference: Reference,
    window: Mutex<Window>,
    pending: Vec<Slot>,
    /// The next thread's slot number.
    next_slot: AtomicUsize,
    psi: Vec<Gauge>,
    rows: IntGauge,
}

/// One pending block, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Slot(Mutex<Pending>);

/// Bin counts of rows not yet in the window.
#[derive(Debug)]
struct Pending {
    counts: Vec<u32>,
    rows: usize,
}

impl Drift {
    /// A window of `capacity` rows against `reference`, setting the gauges
    /// `psi` (one a column) and `rows` when scraped.
    fn new(reference: Reference, capacity: usize, psi: Vec<Gauge>, rows: IntGauge) -> Drift {
        let pending = (0..PENDING_SLOTS)
            .map(|_| {
                Slot(Mutex::new(Pending {
                    counts: vec![0; reference.total_bins()],
                    rows: 0,
                }))
            })
            .collect();
        Drift {
            window: Mutex::new(Window::new(&reference, capacity)),
            pending,
            next_slot: AtomicUsize::new(0),
            reference,
            psi,
            rows,
        }
    }

    /// Counts `n` scored rows (`rows`, encoded).
    fn add(&self, rows: &[f32], n: usize) {
        if n >= BLOCK_ROWS {
            BINS.with(|cell| {
                let mut bins = cell.borrow_mut();
                self.reference.bin_rows(rows, &mut bins);
                self.window().add(&bins);
                if bins.capacity() > MAX_KEPT_BINS {
                    *bins = Vec::new();
                }
            });
            return;
        }
        let slot = SLOT.with(|s| {
            s.get().unwrap_or_else(|| {
                let n = self.next_slot.fetch_add(1, Ordering::Relaxed);
                s.set(Some(n));
                n
            })
        }) % self.pending.len();
        let mut p = self.pending[slot]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.rows += self.reference.count_rows(rows, &mut p.counts);
        if p.rows >= BLOCK_ROWS {
            self.flush(&mut p);
        }
    }

    /// Moves a pending block into the window.
    fn flush(&self, p: &mut Pending) {
        self.window().add_block(&p.counts, p.rows);
        p.counts.fill(0);
        p.rows = 0;
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every pending block into the window, then each column's PSI and the
    /// rows held.
    fn psi(&self) -> (Vec<Option<f64>>, usize) {
        for slot in &self.pending {
            let mut p = slot.0.lock().unwrap_or_else(|e| e.into_inner());
            self.flush(&mut p);
        }
        let w = self.window();
        (w.psi(&self.reference), w.rows())
    }
}

/// A metric that could not be registered (a bug: names are constants).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the /metrics registry: {0}")]
pub struct WatchError(#[from] prometheus::Error);

impl Watch {
    /// The metrics of a server scoring `model`; `drift` is the artifact's
    /// training distribution (`None` for an artifact written before drift
    /// monitoring: no drift gauges, logged once here).
    pub fn new(
        config: WatchConfig,
        model: &TrainedModel,
        facts: &ModelFacts,
        drift: Option<Reference>,
    ) -> Result<Watch, WatchError> {
        let registry = Registry::new_custom(Some("ccfraud".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP answers by matched route pattern and status code.",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from the request head to the response head, by route.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let in_flight = IntGauge::new(
            "http_requests_in_flight",
            "Requests being handled now (this scrape included).",
        )?;
        let rows = IntCounter::new("rows_scored_total", "Rows scored by the model.")?;
        let scores = Histogram::with_opts(
            HistogramOpts::new("fraud_score", "Fraud probabilities answered, one per row.")
                .buckets(SCORE_BUCKETS.to_vec()),
        )?;
        let info = IntGauge::with_opts(
            Opts::new("model_info", "The served model (always 1).")
                .const_label("name", "ccfraud")
                .const_label("kind", &facts.kind)
                .const_label("format_version", facts.format_version.to_string())
                .const_label("trained_at", facts.trained_at.as_deref().unwrap_or(""))
                .const_label("created_by", &facts.created_by),
        )?;
        info.set(1);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(rows.clone()))?;
        registry.register(Box::new(scores.clone()))?;
        registry.register(Box::new(info))?;
        let drift = match (drift, config.drift_window_rows) {
            (None, _) => {
                tracing::warn!(
                    "the model artifact has no training distribution (trained before drift \
                     monitoring): /metrics has no drift gauges; retrain to get them"
                );
                None
            }
            (Some(_), 0) => None,
            (Some(reference), capacity) => {
                let psi_vec = GaugeVec::new(
                    Opts::new(
                        "feature_drift_psi",
                        "Population stability index of the last scored rows against the \
                         training rows, per column (<0.1 stable, 0.1-0.25 moderate, >0.25 shift).",
                    ),
                    &["column"],
                )?;
                let psi = model
                    .schema()
                    .names()
                    .map(|name| psi_vec.with_label_values(&[name]))
                    .collect();
                let window_rows = IntGauge::new(
                    "drift_window_rows",
                    "Rows in the drift window (the last scored rows).",
                )?;
                registry.register(Box::new(psi_vec))?;
                registry.register(Box::new(window_rows.clone()))?;
                Some(Drift::new(reference, capacity, psi, window_rows))
            }
        };
        Ok(Watch {
            registry,
            requests,
            latency,
            in_flight,
            rows,
            scores,
            drift,
            slow: config.slow_request,
            ids: RequestIds::new(),
        })
    }

    /// Counts a scored batch: its rows (encoded, row-major), the drift
    /// window, and the fraud probabilities answered.
    pub fn scored(&self, rows: &[f32], scores: &[f32]) {
        self.rows.inc_by(scores.len() as u64);
        if scores.len() <= LOCAL_HISTOGRAM_ROWS {
            for &s in scores {
                self.scores.observe(f64::from(s));
            }
        } else {
            // a big batch: buckets counted locally, added once
            let local = self.scores.local();
            for &s in scores {
                local.observe(f64::from(s));
            }
            local.flush();
        }
        if let Some(d) = &self.drift {
            d.add(rows, scores.len());
        }
    }

    /// The text exposition of every metric, drift gauges brought up to date.
    pub fn render(&self) -> Result<String, WatchError> {
        if let Some(d) = &self.drift {
            let (psi, rows) = d.psi();
            for (g, p) in d.psi.iter().zip(psi) {
                // an empty window has no PSI yet
                g.set(p.unwrap_or(f64::NAN));
            }
            d.rows.set(rows as i64);
        }
        let mut out = String::new();
        TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    /// Records one answer: counters, latency and, when due, its log line.
    fn answered(&self, done: Answered<'_>) {
        let status = done.status.as_str();
        self.requests.with_label_values(&[done.route, status]).inc();
        let latency = done.started.elapsed();
        self.latency
            .with_label_values(&[done.route])
            .observe(latency.as_secs_f64());
        if QUIET.contains(&done.route) {
            return;
        }
        let failed = !done.status.is_success();
        if !failed && latency < self.slow {
            return;
        }
        let id = request_id(done.headers).unwrap_or_else(|| self.ids.next());
        let attributes = header_text(done.headers, CUSTOM_ATTRIBUTES).unwrap_or_default();
        let rows = done.rows.load(Ordering::Relaxed);
        let latency_ms = latency.as_secs_f64() * 1e3;
        // one line, its level and message by why it is logged (tracing
        // needs the level at compile time)
        macro_rules! line {
            ($level:expr, $message:literal) => {
                tracing::event!(
                    target: "ccfraud::request",
                    $level,
                    request_id = %id,
                    method = %done.method,
                    route = done.route,
                    status = done.status.as_u16(),
                    rows,
                    latency_ms,
                    custom_attributes = %attributes,
                    $message
                )
            };
        }
        if failed {
            line!(tracing::Level::WARN, "request failed");
        } else {
            line!(tracing::Level::INFO, "slow request");
        }
    }
}

/// One finished request, as the middleware saw it.
struct Answered<'a> {
    route: &'a str,
    method: &'a actix_web::http::Method,
    status: actix_web::http::StatusCode,
    headers: &'a HeaderMap,
    started: Instant,
    rows: &'a AtomicUsize,
}

/// SageMaker's id of the request, if it sent one (printable, bounded).
fn request_id(headers: &HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS
        .iter()
        .find_map(|h| header_text(headers, h))
        .filter(|v| !v.is_empty())
}

/// A header's value as loggable text: non-printable bytes escaped, cut at
/// [`MAX_LOGGED_HEADER`] characters.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?;
    let text = String::from_utf8_lossy(v.as_bytes());
    Some(text.escape_debug().take(MAX_LOGGED_HEADER).collect())
}

/// Ids for requests that came without one: a per-process random prefix and
/// a sequence number (`3f9c0a1be2d4c5f6-17`).
#[derive(Debug)]
struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS: distinct per process
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        RequestIds {
            prefix: h.finish(),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}-{n}", self.prefix)
    }
}

/// The per-request handle a scoring call reports to: the watch (absent
/// outside a server) and the rows this request scored (for its log line).
#[derive(Debug, Clone, Default)]
pub struct Observer {
    watch: Option<Arc<Watch>>,
    rows: Arc<AtomicUsize>,
}

impl Observer {
    /// The request's observer, put there by [`Observe`] (a detached one
    /// when the middleware is not mounted).
    pub fn of(req: &HttpRequest) -> Observer {
        req.extensions()
            .get::<Observer>()
            .cloned()
            .unwrap_or_default()
    }

    /// One that counts nothing anywhere (for scoring outside a server).
    pub fn detached() -> Observer {
        Observer::default()
    }

    /// A batch was scored: `rows` encoded, `scores` the answered
    /// probabilities (one per row).
    pub fn scored(&self, rows: &[f32], scores: &[f32]) {
        self.rows.fetch_add(scores.len(), Ordering::Relaxed);
        if let Some(w) = &self.watch {
            w.scored(rows, scores);
        }
    }
}

/// `GET /metrics`: the text exposition.
pub async fn scrape(watch: web::Data<Watch>) -> HttpResponse {
    match watch.render() {
        Ok(text) => HttpResponse::Ok().content_type(TEXT_FORMAT).body(text),
        Err(e) => {
            tracing::error!("{e}");
            HttpResponse::InternalServerError()
                .content_type(TEXT_FORMAT)
                .body(format!("# {e}\n"))
        }
    }
}

/// The middleware feeding the watch: in-flight gauge, an [`Observer`] in
/// the request's extensions, and on the way out counters, latency and the
/// log line.
#[derive(Debug, Clone)]
pub struct Observe(pub Arc<Watch>);

impl<S, B> Transform<S, ServiceRequest> for Observe
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = ObserveService<S>;
    type InitError = ();
    type Future = Ready<Result<ObserveService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ObserveService {
            service: Rc::new(service),
            watch: self.0.clone(),
        }))
    }
}

/// [`Observe`] around one worker's service.
pub struct ObserveService<S> {
    service: Rc<S>,
    watch: Arc<Watch>,
}

/// Decrements the in-flight gauge however the request ends.
struct InFlightGuard(IntGauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

type Answer<B> = Result<ServiceResponse<B>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for ObserveService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Answer<B>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let watch = self.watch.clone();
        watch.in_flight.inc();
        let guard = InFlightGuard(watch.in_flight.clone());
        let observer = Observer {
            watch: Some(watch.clone()),
            rows: Arc::default(),
        };
        let rows = observer.rows.clone();
        req.extensions_mut().insert(observer);
        let service = self.service.clone();
        Box::pin(async move {
            let res = service.call(req).await;
            let _guard = guard;
            match &res {
                Ok(r) => {
                    let pattern = r.request().match_pattern();
                    watch.answered(Answered {
                        route: pattern.as_deref().unwrap_or(UNMATCHED),
                        method: r.request().method(),
                        status: r.status(),
                        headers: r.request().headers(),
                        started,
                        rows: &rows,
                    });
                }
                // an error not yet turned into a response (handlers here
                // answer their errors themselves; kept for completeness)
                Err(e) => {
                    let status = e.as_response_error().status_code();
                    watch.answered(Answered {
                        route: UNMATCHED,
                        method: &actix_web::http::Method::GET,
                        status,
                        headers: &HeaderMap::new(),
                        started,
                        rows: &rows,
                    });
                }
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn request_ids_come_from_sagemaker_else_are_generated_and_distinct() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h), None);
        h.insert(
            HeaderName::from_static("x-amzn-requestid"),
            HeaderValue::from_static("req-1"),
        );
        assert_eq!(request_id(&h).as_deref(), Some("req-1"));
        h.insert(
            HeaderName::from_static("x-amzn-sagemaker-inference-id"),
            HeaderValue::from_static("inf\t2"),
        );
        assert_eq!(request_id(&h).as_deref(), Some("inf\\t2"));
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(a.ends_with("-1") && b.ends_with("-2"), "{a} {b}");
        assert_eq!(a.len(), 16 + 2);
    }

    /// Small batches wait in their thread's pending block until it holds
    /// [`BLOCK_ROWS`] rows, large ones go straight in; a scrape sees every
    /// row either way.
    #[test]
    fn drift_counts_every_row_small_batches_in_blocks() {
        let training: Vec<f32> = (0..200).map(|i| (i % 50) as f32).collect();
        let reference = Reference::fit(&training, 1, &[None]);
        let gauge = Gauge::new("psi", "psi").unwrap();
        let rows = IntGauge::new("rows", "rows").unwrap();
        let d = Drift::new(reference, 1_000, vec![gauge], rows);
        for i in 0..BLOCK_ROWS + 8 {
            d.add(&[(i % 50) as f32], 1);
        }
        // one block moved, eight rows pending
        assert_eq!(d.window().rows(), BLOCK_ROWS);
        let big: Vec<f32> = (0..100).map(|i| (i % 50) as f32).collect();
        d.add(&big, big.len());
        assert_eq!(d.window().rows(), BLOCK_ROWS + 100);
        let (psi, held) = d.psi();
        assert_eq!(held, BLOCK_ROWS + 108);
        // the same distribution as training: no drift to speak of
        let psi = psi[0].unwrap();
        assert!((0.0..0.1).contains(&psi), "{psi}");
    }

    #[test]
    fn header_values_are_cut_for_the_log() {
        let mut h = HeaderMap::new();
        let long = "a".repeat(1000);
        h.insert(
            HeaderName::from_static(CUSTOM_ATTRIBUTES),
            HeaderValue::from_str(&long).unwrap(),
        );
        assert_eq!(
            header_text(&h, CUSTOM_ATTRIBUTES).unwrap().len(),
            MAX_LOGGED_HEADER
        );
    }
}

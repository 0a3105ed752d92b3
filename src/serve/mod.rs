//! `ccfraud serve`: the SageMaker hosting contract over actix-web.
//!
//! [`run`] takes a checked [`Config`] (built once from the command line in
//! `cli`) and a bound listener, loads and warms the model, logs one start-up
//! line and serves until SIGTERM/SIGINT (the clients already in the listen
//! queue are accepted first, then actix stops accepting, finishes in-flight
//! requests, and `run` returns `Ok`, so the process exits 0; see
//! [`transport`]). Connections that arrive while the model loads wait in the
//! backlog: the server never answers before it is ready.
//!
//! * `GET /ping` — 200, never logged, never behind inference.
//! * `POST /invocations` and `POST /endpoints/{name}/invocations` (the
//!   `sagemaker-runtime` API path, so boto3 with `endpoint_url` works) —
//!   body formats in [`request`] (large CSV bodies parse on rayon's pool),
//!   answers in [`response`] (chosen by `Accept`, written by serde from
//!   finite [`response::Score`]s), errors in [`error`] (one JSON shape).
//! * `GET /schema` — the model's [`crate::schema::Schema`] as JSON: the
//!   columns a request holds, in order, with their kinds and vocabularies.
//! * `GET /execution-parameters` — batch transform's hints.
//! * `GET /report` — the training report (`report.html` beside the
//!   model: curves, calibration, costs, top features), 404 without one.
//! * `GET /metrics` — Prometheus metrics and input drift ([`metrics`]);
//!   answers that are not 2xx, and slow ones, are logged there too.
//! * CORS by `actix-cors` for browser callers (the demo page): any origin by
//!   default (`Access-Control-Allow-Origin: *`), or exactly one.
//!
//! Large bodies are parsed and scored on the blocking pool so workers keep
//! answering `/ping`. What a client can hold is bounded ([`transport`]): the
//! time to send a head and a body (408, connection closed), open connections
//! (`/invocations` shed with 503 + `Retry-After` above a soft cap, so `/ping`
//! still gets in), and body bytes in flight (503 beyond the budget). A
//! `Content-Encoding` is refused (415): bodies are never decompressed.

pub mod asks;
pub mod error;
pub mod metrics;
pub mod protocols;
pub mod request;
pub mod response;
pub mod transport;

use crate::decide::Decision;
use crate::model::{
    Artifact, Model, ModelError, ModelKind, TrainedModel, ARTIFACT_FILE, FORMAT_VERSION,
};
use crate::sagemaker::archive::ArchiveError;
use crate::sagemaker::Exit;
use actix_cors::Cors;
use actix_web::dev::Service as _;
use actix_web::http::header::{HeaderName, ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError as _};
use asks::Asks;
use error::ApiError;
use protocols::ModelName;
use request::Format;
use response::{Extras, OutputKey, Reasons, ResponseFormat, Score};
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::{ConnectionCap, Connections, InFlight};

/// Header SageMaker passes through to the caller only when echoed.
const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
/// Bodies larger than this are handled on the blocking thread pool.
const INLINE_BODY_BYTES: usize = 64 * 1024;
/// How long browsers may cache a CORS preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 86_400;
/// Seconds in-flight requests get to finish after SIGTERM.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
const MIB: usize = 1024 * 1024;

/// Checked settings of `ccfraud serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen (the caller binds it, see [`Config::listen`]).
    pub bind: SocketAddr,
    /// HTTP worker threads.
    pub workers: NonZeroUsize,
    /// Where the trained model comes from.
    pub model: ModelSource,
    /// Which model of the artifact to serve (`None`: the one training chose).
    pub model_kind: Option<ModelKind>,
    /// Which browser origins may call the API.
    pub cors_origin: CorsOrigin,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: NonZeroUsize,
    /// Time a client has to send a request body.
    pub body_timeout: Duration,
    /// Time a new connection has to send its first request head.
    pub head_timeout: Duration,
    /// Open connections at most (`None`: what the open-file limit allows).
    pub max_connections: Option<NonZeroUsize>,
    /// Request-body bytes received and parsed at once, across requests.
    pub max_in_flight_bytes: NonZeroUsize,
    /// The drift window and the slow-request threshold of the log.
    pub watch: metrics::WatchConfig,
    /// The name the TF Serving and Open Inference Protocol paths serve the
    /// model under.
    pub model_name: ModelName,
    /// The answer format when a request has no `Accept` (or `*/*`):
    /// `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`, JSON by default.
    pub default_accept: ResponseFormat,
    /// What CSV and JSON Lines answer lines hold
    /// (`SAGEMAKER_INFERENCE_OUTPUT`; empty: `score,decision`).
    pub outputs: Vec<OutputKey>,
}

/// Where the trained model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder holding `ccfraud-model.json` (`<ml-root>/model`).
    Dir(PathBuf),
    /// A `model.tar.gz`, `s3://…` or a local path, unpacked within the
    /// limits into a temporary folder removed at exit.
    Uri(String, crate::sagemaker::archive::Limits),
}

/// The origins allowed to call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigin {
    /// `*`: any origin.
    Any,
    /// Exactly this origin (`scheme://host[:port]`, as browsers send it).
    Exact(String),
}

impl CorsOrigin {
    /// `*`, or a serialized origin such as `https://example.org:8443` (no
    /// path, no trailing slash: browsers compare it byte for byte).
    pub fn parse(value: &str) -> Result<CorsOrigin, ServeError> {
        if value == "*" {
            return Ok(CorsOrigin::Any);
        }
        let refused = || ServeError::CorsOrigin {
            value: value.to_string(),
        };
        let url = url::Url::parse(value).map_err(|_| refused())?;
        let origin = url.origin();
        if !origin.is_tuple() || origin.ascii_serialization() != value {
            return Err(refused());
        }
        Ok(CorsOrigin::Exact(value.to_string()))
    }

    /// The actix-cors middleware for this setting: preflights for JSON POSTs
    /// (methods POST and OPTIONS; headers Content-Type, Accept and the
    /// SageMaker custom attributes) are answered and cached for a day.
    fn middleware(&self) -> Cors {
        let cors = match self {
            CorsOrigin::Any => Cors::default().allow_any_origin().send_wildcard(),
            CorsOrigin::Exact(origin) => Cors::default().allowed_origin(origin),
        };
        cors.allowed_methods([Method::POST, Method::OPTIONS])
            .allowed_headers([
                CONTENT_TYPE,
                ACCEPT,
                HeaderName::from_static(CUSTOM_ATTRIBUTES),
            ])
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

impl Config {
    /// Binds [`Config::bind`] with the backlog of [`transport::BACKLOG`].
    pub fn listen(&self) -> Result<TcpListener, ServeError> {
        transport::bind(self.bind).map_err(|source| ServeError::Bind {
            addr: self.bind,
            source,
        })
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot load the model from {dir}: {source}")]
    Model {
        dir: PathBuf,
        #[source]
        source: ModelError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve --host '{host}': {source}")]
    Host {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--cors-origin '{}' is not '*' or an origin such as https://example.org:8443 (scheme://host[:port], no path)", value.escape_debug())]
    CorsOrigin { value: String },
    #[error("--{flag} must be at least 1")]
    Zero { flag: &'static str },
    #[error(transparent)]
    ModelName(#[from] protocols::BadModelName),
    #[error("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT '{}' is not one of application/json, text/csv, application/jsonlines", .value.escape_debug())]
    DefaultAccept { value: String },
    #[error(transparent)]
    Outputs(#[from] response::BadOutputKeys),
    #[error("server failed: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Fetch(#[from] crate::sagemaker::archive::ArchiveError),
    #[error(transparent)]
    Watch(#[from] metrics::WatchError),
}

impl ServeError {
    /// The exit code under the one policy of [`Exit`].
    pub fn exit(&self) -> Exit {
        match self {
            ServeError::Model { .. } => Exit::BadInput,
            ServeError::Fetch(ArchiveError::Transfer(_)) => Exit::Transfer,
            ServeError::Fetch(_) => Exit::BadInput,
            ServeError::Bind { .. }
            | ServeError::Host { .. }
            | ServeError::CorsOrigin { .. }
            | ServeError::Zero { .. }
            | ServeError::ModelName(_)
            | ServeError::DefaultAccept { .. }
            | ServeError::Outputs(_) => Exit::Usage,
            ServeError::Runtime(_) | ServeError::Watch(_) => Exit::Failed,
        }
    }
}

/// A trained model, picked and warmed.
#[derive(Debug)]
pub struct Loaded {
    pub model: TrainedModel,
    /// Who wrote the artifact (`ccfraud x.y.z`).
    pub created_by: String,
    /// The training report beside the artifact (`report.html`), if any.
    pub report: Option<String>,
    /// The artifact's format version and training time, for `model_info`.
    pub format_version: u32,
    pub trained_at: Option<String>,
    /// The training distribution, for drift (absent in older artifacts).
    pub drift: Option<crate::model::drift::Reference>,
}

/// Largest `report.html` served (a run's is about 100 KB).
const MAX_REPORT_BYTES: u64 = 16 * MIB as u64;

/// `dir/report.html` when it is a regular UTF-8 file of at most
/// [`MAX_REPORT_BYTES`]; anything else is no report (logged), never an
/// error: the model serves without it.
fn read_report(dir: &Path) -> Option<String> {
    let path = dir.join("report.html");
    let meta = fs_err::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_REPORT_BYTES {
        tracing::warn!(
            "{} is not a regular file of at most 16 MiB: GET /report answers 404",
            path.display()
        );
        return None;
    }
    match fs_err::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::warn!("{e}: GET /report answers 404");
            None
        }
    }
}

/// Everything a request handler shares (read-only but for the counts).
#[derive(Debug)]
pub struct State {
    pub model: TrainedModel,
    /// The training report, served at `GET /report`.
    pub report: Option<String>,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub head_timeout: Duration,
    pub connections: Connections,
    pub cap: ConnectionCap,
    pub in_flight: InFlight,
    /// `/metrics`, drift and the request log.
    pub watch: Arc<metrics::Watch>,
    /// The model's name on the TF Serving and OIP paths.
    pub name: ModelName,
    /// The answer format without an `Accept`.
    pub default_accept: ResponseFormat,
    /// `SAGEMAKER_INFERENCE_OUTPUT`'s keys.
    pub outputs: Vec<OutputKey>,
}

/// Loads `dir/ccfraud-model.json`, picks the model (`name` or the default)
/// and warms it up with one prediction.
pub fn load(dir: &Path, kind: Option<ModelKind>) -> Result<Loaded, ServeError> {
    let err = |source| ServeError::Model {
        dir: dir.to_owned(),
        source,
    };
    let artifact = match Artifact::load(dir) {
        Err(ModelError::Io { source }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(ModelError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {ARTIFACT_FILE} here: run `ccfraud train` first, or mount a trained model folder"),
                ),
            }))
        }
        other => other.map_err(err)?,
    };
    let created_by = artifact.created_by().to_string();
    let format_version = artifact.format_version();
    let trained_at = artifact.trained_at().map(str::to_string);
    let drift = artifact.drift().cloned();
    let model = artifact.into_model(kind).map_err(err)?;
    let mut warm = [0f32; 1];
    model.predict_proba(&vec![0f32; model.schema().n_columns()], &mut warm);
    Ok(Loaded {
        model,
        created_by,
        report: read_report(dir),
        format_version,
        trained_at,
        drift,
    })
}

/// `ccfraud serve` on a bound listener: fetch (for a model URI), load, log
/// one start-up line, serve until SIGTERM/SIGINT, drain, return.
pub fn run(config: Config, listener: TcpListener) -> Result<(), ServeError> {
    let started = Instant::now();
    // A fetched model lives in a temporary folder; the guard removes it at exit.
    let (_fetched, dir) = match &config.model {
        ModelSource::Uri(uri, limits) => {
            let (guard, dir) = crate::sagemaker::archive::fetch_model(uri, *limits)?;
            tracing::info!("unpacked {uri} into {}", dir.display());
            (Some(guard), dir)
        }
        ModelSource::Dir(dir) => (None, dir.clone()),
    };
    let loaded = load(&dir, config.model_kind)?;
    let m = &loaded.model;
    // Logged once the server (and its SIGTERM handler) is in place.
    let serving = format!(
        "serving model '{}' ({}, artifact format v{FORMAT_VERSION}, threshold {}) on {} with {} workers; \
         {} AUC-ROC {:.4}, AUPRC {:.4}",
        m.kind(),
        loaded.created_by,
        m.threshold(),
        listener.local_addr().unwrap_or(config.bind),
        config.workers,
        m.provenance().evaluated_on,
        m.provenance().evaluation.auc_roc,
        m.provenance().evaluation.auprc,
    );
    let workers = config.workers.get();
    let open_files = transport::raise_fd_limit().map_err(ServeError::Runtime)?;
    let cap = ConnectionCap::new(
        open_files,
        config.max_connections.map(NonZeroUsize::get),
        workers,
    );
    let backlog = transport::listen_queue(&listener).map_or(0, |(_, b)| b);
    tracing::info!(
        "limits: bodies up to {} bytes within {} s, heads within {} s, {} body bytes in flight; \
         {} connections ({} per worker), /invocations shed above {}; {open_files} open files; \
         listen backlog {backlog}",
        config.max_body_bytes,
        config.body_timeout.as_secs(),
        config.head_timeout.as_secs(),
        config.max_in_flight_bytes,
        cap.hard,
        cap.per_worker(workers),
        cap.soft,
    );
    if config.max_body_bytes.get() < MIB {
        tracing::warn!(
            "the body limit is below 1 MiB: /execution-parameters says MaxPayloadInMB 1, \
             the least batch transform accepts, so larger mini-batches will get 413"
        );
    }
    let facts = metrics::ModelFacts {
        kind: loaded.model.kind().name().to_string(),
        format_version: loaded.format_version,
        trained_at: loaded.trained_at,
        created_by: loaded.created_by,
    };
    let watch = metrics::Watch::new(config.watch, &loaded.model, &facts, loaded.drift)?;
    let state = State {
        watch: Arc::new(watch),
        model: loaded.model,
        report: loaded.report,
        workers,
        max_body_bytes: config.max_body_bytes.get(),
        body_timeout: config.body_timeout,
        head_timeout: config.head_timeout,
        connections: Connections::default(),
        cap,
        in_flight: InFlight::new(config.max_in_flight_bytes.get()),
        name: config.model_name.clone(),
        default_accept: config.default_accept,
        outputs: config.outputs.clone(),
    };
    actix_web::rt::System::new().block_on(async move {
        let server =
            server(Arc::new(state), &config.cors_origin, listener).map_err(ServeError::Runtime)?;
        tracing::info!("{serving}; ready in {} ms", started.elapsed().as_millis());
        server.await.map_err(ServeError::Runtime)
    })
}

/// Builds the server on an already-bound listener (it runs when awaited;
/// it stops on SIGTERM/SIGINT, see [`transport::drain_on_signal`]).
pub fn server(
    state: Arc<State>,
    cors_origin: &CorsOrigin,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let workers = state.workers;
    let per_worker = state.cap.per_worker(workers);
    let head_timeout = state.head_timeout;
    let probe = listener.try_clone()?;
    let cors_origin = cors_origin.clone();
    let data = web::Data::from(state);
    let connections = data.connections.clone();
    let counted = connections.clone();
    let watch = data.watch.clone();
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(web::Data::from(watch.clone()))
            .wrap(cors_origin.middleware())
            .wrap_fn(|req, srv| {
                if let Some(open) = req.conn_data::<transport::Open>() {
                    open.served();
                }
                srv.call(req)
            })
            .app_data(data.clone())
            .configure(routes)
            .wrap(metrics::Observe(watch.clone()))
    })
    .on_connect(move |_, ext| {
        ext.insert(counted.open());
    })
    .workers(workers)
    .max_connections(per_worker)
    .client_request_timeout(head_timeout)
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .shutdown_signal(transport::drain_on_signal(probe, connections)?)
    .listen(listener)?
    .run())
}

/// Mounts every route of the hosting contract.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(
        "/ping",
        [web::get().to(ping), web::head().to(ping)],
    ))
    .service(resource("/invocations", [scoring_post(invoke)]))
    .service(resource(
        "/endpoints/{name}/invocations",
        [scoring_post(invoke)],
    ))
    .service(resource(
        "/schema",
        [web::get().to(schema), web::head().to(schema)],
    ))
    .service(resource("/report", [web::get().to(report)]))
    .service(resource("/metrics", [web::get().to(metrics::scrape)]))
    .service(resource(
        "/execution-parameters",
        [web::get().to(execution_parameters)],
    ))
    .configure(protocols::tfserving::routes)
    .configure(protocols::oip::routes)
    .default_service(web::to(not_found));
}

/// A path answered by `routes`; any other method gets 405 in the one JSON
/// error shape.
pub(crate) fn resource(
    path: &str,
    routes: impl IntoIterator<Item = actix_web::Route>,
) -> actix_web::Resource {
    routes
        .into_iter()
        .fold(web::resource(path), |r, route| r.route(route))
        .default_service(web::to(method_not_allowed))
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// The model's schema as training stored it: the columns a request holds,
/// in order, their kinds and vocabularies, the label and the amount.
async fn schema(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_vec(state.model.schema())
        .map_err(|e| ApiError::Internal(format!("cannot write the schema: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::mime::APPLICATION_JSON)
        .body(body))
}

/// The training report (`report.html` beside the model), or 404.
async fn report(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    match &state.report {
        Some(html) => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html.clone())),
        None => Err(ApiError::NotFound {
            method: req.method().clone(),
            path: req.path().to_string(),
        }),
    }
}

async fn execution_parameters(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "MaxConcurrentTransforms": state.workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": max_payload_in_mb(state.max_body_bytes),
    }))
}

/// The body limit in whole MiB, rounded down so batch transform never sends
/// more than is accepted; at least 1, the least it takes (a smaller limit is
/// warned about at start).
fn max_payload_in_mb(max_body_bytes: usize) -> usize {
    (max_body_bytes / MIB).max(1)
}

pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().clone()))
}

pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        method: req.method().clone(),
        path: req.path().to_string(),
    })
}

/// The POST route of a scoring path (`/invocations` and each protocol's):
/// `call` answers from the request, its payload and the state; a refusal
/// keeps the request's payload alive until it is sent (see [`KeepUnread`]).
pub(crate) fn scoring_post<C>(call: C) -> actix_web::Route
where
    C: AsyncFn(
            &HttpRequest,
            &mut web::Payload,
            &web::Data<State>,
        ) -> Result<HttpResponse, ApiError>
        + Clone
        + 'static,
{
    web::post().to(
        move |req: HttpRequest, mut payload: web::Payload, state: web::Data<State>| {
            let call = call.clone();
            async move {
                let result = call(&req, &mut payload, &state).await;
                answered(result, payload)
            }
        },
    )
}

/// The answer to a scoring POST: a refusal keeps the request's payload
/// alive until it is sent (see [`KeepUnread`]).
fn answered(result: Result<HttpResponse, ApiError>, payload: web::Payload) -> HttpResponse {
    match result {
        Ok(resp) => resp,
        Err(e) => e.error_response().map_body(|_, body| {
            actix_web::body::BoxBody::new(KeepUnread {
                body,
                _payload: payload,
            })
        }),
    }
}

/// A response body holding the request's payload until it has been sent.
/// actix closes a connection whose body was left unread (after a 1 s
/// linger), unless the unread body is chunked and dropped: then it reads it
/// to its end, which a client trickling chunks, or one shed with 503, never
/// reaches.
struct KeepUnread {
    body: actix_web::body::BoxBody,
    _payload: web::Payload,
}

impl actix_web::body::MessageBody for KeepUnread {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// What every scoring POST checks before reading its body: the connection
/// bound (503) and the body's encoding (415).
pub(crate) fn admit(req: &HttpRequest, state: &State) -> Result<(), ApiError> {
    state.connections.admit(state.cap)?;
    if let Some(enc) = req.headers().get(CONTENT_ENCODING) {
        let enc = String::from_utf8_lossy(enc.as_bytes());
        if !enc.trim().eq_ignore_ascii_case("identity") {
            return Err(ApiError::UnsupportedEncoding(enc.into_owned()));
        }
    }
    Ok(())
}

/// Reads the body within the body limit and timeout (from `received`, when
/// the head was read) and runs `work` on it: on the calling worker for a
/// small body, on the blocking pool for a large one or `heavy` work, so
/// workers keep answering `/ping`.
pub(crate) async fn scored<T: Send + 'static>(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &web::Data<State>,
    received: Instant,
    heavy: bool,
    work: impl FnOnce(&State, &[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let limit = state.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let (body, _permit) = read_body(state, payload, declared, received).await?;
    if body.len() > INLINE_BODY_BYTES || heavy {
        let st = state.clone();
        web::block(move || work(&st, &body))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        work(state, &body)
    }
}

/// A JSON answer.
pub(crate) fn json(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::mime::APPLICATION_JSON)
        .body(body)
}

async fn invoke(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    admit(req, state)?;
    let h = req.headers();
    let attributes = h.get(CUSTOM_ATTRIBUTES).and_then(|v| v.to_str().ok());
    // SageMaker's TensorFlow container protocol: a TF Serving request
    let tfs = attributes
        .map(|a| protocols::tfserving::Method::from_attributes(a, &state.name))
        .transpose()?
        .flatten();
    let mut resp = HttpResponse::Ok();
    if let Some(v) = h.get(CUSTOM_ATTRIBUTES) {
        resp.insert_header((CUSTOM_ATTRIBUTES, v.clone()));
    }
    if let Some(method) = tfs {
        let observer = metrics::Observer::of(req);
        let out = scored(req, payload, state, received, false, move |st, body| {
            protocols::tfserving::answer(method, body, st.model.schema_arc(), |rows| {
                predict(&st.model, &observer, rows)
            })
        })
        .await?;
        return Ok(resp
            .content_type(actix_web::mime::APPLICATION_JSON)
            .body(out));
    }
    let content_type = match h.get(CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::UnsupportedMediaType("(not ASCII)".into()))?,
        ),
    };
    let format = Format::from_content_type(content_type)?;
    let answer = ResponseFormat::from_request(req, state.default_accept)?;
    let mut asks = Asks::from_query(req.query_string())?;
    // not text: nothing this server could have been asked
    if let Some(v) = attributes {
        asks = asks.and(Asks::from_attributes(v)?)?;
    }
    // Explaining costs more than scoring: off the workers too.
    let heavy = asks.explain.is_some();
    let observer = metrics::Observer::of(req);
    let out = scored(req, payload, state, received, heavy, move |st, body| {
        score(
            &st.model,
            &observer,
            format,
            answer,
            body,
            asks,
            &st.outputs,
        )
    })
    .await?;
    Ok(resp.content_type(answer.content_type()).body(out))
}

/// Receives the body, at most the body limit, before the body timeout (from
/// `received`, when the head was read), holding in-flight permits for its
/// bytes (for a declared length up front, else as they arrive).
async fn read_body(
    state: &State,
    payload: &mut web::Payload,
    declared: Option<usize>,
    received: Instant,
) -> Result<(web::Bytes, Option<tokio::sync::OwnedSemaphorePermit>), ApiError> {
    use futures_core::Stream;
    let limit = state.max_body_bytes;
    let mut permit = None;
    state.in_flight.cover(&mut permit, declared.unwrap_or(0))?;
    let read = async {
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut *payload).poll_next(cx)).await
        {
            let chunk = chunk
                .map_err(|e| ApiError::bad(format!("could not read the body: {e}"), None, None))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::TooLarge { limit });
            }
            state
                .in_flight
                .cover(&mut permit, body.len() + chunk.len())?;
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let body = tokio::time::timeout_at((received + state.body_timeout).into(), read)
        .await
        .map_err(|_| ApiError::BodyTimeout {
            secs: state.body_timeout.as_secs(),
        })??;
    Ok((body, permit))
}

/// Scores a batch of encoded rows at once: one checked probability a row
/// (every protocol scores through here), counted by `observer` (rows,
/// scores, drift).
pub fn predict(
    model: &TrainedModel,
    observer: &metrics::Observer,
    rows: &[f32],
) -> Result<Vec<Score>, ApiError> {
    let mut raw = vec![0f32; rows.len() / model.schema().n_columns()];
    model.predict_proba(rows, &mut raw);
    let scores = response::scores(&raw)?;
    observer.scored(rows, &raw);
    Ok(scores)
}

/// Parse, predict the whole batch at once, check, then decide and explain
/// when asked (`asks` from the head, joined with the body's), render with
/// `outputs` (`SAGEMAKER_INFERENCE_OUTPUT`) (public so the hostile suite
/// can fuzz the whole pipeline in-process).
pub fn score(
    model: &TrainedModel,
    observer: &metrics::Observer,
    format: Format,
    answer: ResponseFormat,
    body: &[u8],
    asks: Asks,
    outputs: &[OutputKey],
) -> Result<Vec<u8>, ApiError> {
    let (rows, asked) = request::parse_asked(format, body, model.schema_arc())?;
    let asks = asks.and(asked)?;
    let schema = model.schema();
    let d = schema.n_columns();
    let scores = predict(model, observer, &rows)?;
    let mut extras = Extras {
        outputs,
        ..Extras::default()
    };
    if asks.decisions() {
        extras.model = Some(model.kind().name());
        let t = model.threshold();
        let amounts = schema.amounts(&rows);
        extras.decisions = Some(
            scores
                .iter()
                .enumerate()
                .map(|(i, s)| Decision::new(s.get(), t, amounts.as_ref().map(|a| a[i])))
                .collect(),
        );
    }
    if let Some(k) = asks.explain {
        let explained = model.explain(&rows);
        extras.explanations = Some(
            explained
                .iter()
                .zip(rows.chunks_exact(d))
                .enumerate()
                .map(|(i, (e, r))| Reasons::new(schema, r, e, k, i))
                .collect::<Result<_, _>>()?,
        );
    }
    response::render(answer, &scores, model.threshold(), &extras)
}

/// Handlers share the state across worker threads; the configuration
/// crosses into `run`'s runtime.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<State>();
    shared::<Config>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_star_or_exact_origins() {
        assert_eq!(CorsOrigin::parse("*").unwrap(), CorsOrigin::Any);
        for ok in [
            "http://demo",
            "https://example.org",
            "http://127.0.0.1:8000",
        ] {
            assert_eq!(CorsOrigin::parse(ok).unwrap(), CorsOrigin::Exact(ok.into()));
        }
        for bad in [
            "",
            "**",
            "example.org",
            "http://example.org/",
            "https://example.org/app",
            "http://exa mple.org",
            "http://a\nb",
            "null",
        ] {
            let e = CorsOrigin::parse(bad).unwrap_err();
            assert_eq!(e.exit(), Exit::Usage, "{bad}");
            assert!(e.to_string().starts_with("--cors-origin '"), "{e}");
        }
    }
}

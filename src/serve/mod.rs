//! `ccfraud serve`: the SageMaker hosting contract over actix-web.
//!
//! [`run`] takes a checked [`Config`] (built once from the command line in
//! `cli`) and a bound listener, loads and warms the model, logs one start-up
//! line and serves until SIGTERM/SIGINT (actix stops accepting, drains
//! in-flight requests, and `run` returns `Ok`, so the process exits 0).
//! Connections that arrive while the model loads wait in the backlog: the
//! server never answers before it is ready.
//!
//! * `GET /ping` — 200, never logged, never behind inference.
//! * `POST /invocations` and `POST /endpoints/{name}/invocations` (the
//!   `sagemaker-runtime` API path, so boto3 with `endpoint_url` works) —
//!   body formats in [`request`] (large CSV bodies parse on rayon's pool),
//!   answers in [`response`] (chosen by `Accept`, written by serde from
//!   finite [`response::Score`]s), errors in [`error`] (one JSON shape).
//! * `GET /execution-parameters` — batch transform's hints.
//! * CORS by `actix-cors` for browser callers (the demo page): any origin by
//!   default (`Access-Control-Allow-Origin: *`), or exactly one.
//!
//! Large bodies are parsed and scored on the blocking pool so workers keep
//! answering `/ping`.

pub mod error;
pub mod request;
pub mod response;

use crate::model::{
    Artifact, Model, ModelError, ModelKind, TrainedModel, ARTIFACT_FILE, FORMAT_VERSION,
};
use crate::sagemaker::archive::ArchiveError;
use crate::sagemaker::Exit;
use actix_cors::Cors;
use actix_web::http::header::{HeaderName, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use error::ApiError;
use request::Format;
use response::ResponseFormat;
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Header SageMaker passes through to the caller only when echoed.
const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
/// Bodies larger than this are handled on the blocking thread pool.
const INLINE_BODY_BYTES: usize = 64 * 1024;
/// How long browsers may cache a CORS preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 86_400;

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
    /// Binds [`Config::bind`].
    pub fn listen(&self) -> Result<TcpListener, ServeError> {
        TcpListener::bind(self.bind).map_err(|source| ServeError::Bind {
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
    #[error("server failed: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Fetch(#[from] crate::sagemaker::archive::ArchiveError),
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
            | ServeError::Zero { .. } => Exit::Usage,
            ServeError::Runtime(_) => Exit::Failed,
        }
    }
}

/// A trained model, picked and warmed.
#[derive(Debug)]
pub struct Loaded {
    pub model: TrainedModel,
    /// Who wrote the artifact (`ccfraud x.y.z`).
    pub created_by: String,
}

/// Everything a request handler shares, read-only.
#[derive(Debug)]
pub struct State {
    pub model: TrainedModel,
    pub workers: usize,
    pub max_body_bytes: usize,
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
    let model = artifact.into_model(kind).map_err(err)?;
    let mut warm = [0f32; 1];
    model.predict_proba(&[0f32; crate::data::N_FEATURES], &mut warm);
    Ok(Loaded { model, created_by })
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
    tracing::info!(
        "serving model '{}' ({}, artifact format v{FORMAT_VERSION}, threshold {}) on {} with {} workers; \
         {} AUC-ROC {:.4}, AUPRC {:.4}; ready in {} ms",
        m.kind(),
        loaded.created_by,
        m.threshold(),
        listener.local_addr().unwrap_or(config.bind),
        config.workers,
        m.provenance().evaluated_on,
        m.provenance().evaluation.auc_roc,
        m.provenance().evaluation.auprc,
        started.elapsed().as_millis()
    );
    let state = State {
        model: loaded.model,
        workers: config.workers.get(),
        max_body_bytes: config.max_body_bytes.get(),
    };
    actix_web::rt::System::new().block_on(async move {
        server(Arc::new(state), &config.cors_origin, listener)
            .map_err(ServeError::Runtime)?
            .await
            .map_err(ServeError::Runtime)
    })
}

/// Builds the server on an already-bound listener (it runs when awaited).
pub fn server(
    state: Arc<State>,
    cors_origin: &CorsOrigin,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let workers = state.workers;
    let cors_origin = cors_origin.clone();
    let data = web::Data::from(state);
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(cors_origin.middleware())
            .app_data(data.clone())
            .configure(routes)
    })
    .workers(workers)
    .backlog(2048)
    .shutdown_timeout(10)
    .listen(listener)?
    .run())
}

/// Mounts every route of the hosting contract.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/ping")
            .route(web::get().to(ping))
            .route(web::head().to(ping))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/invocations")
            .route(web::post().to(invocations))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/endpoints/{name}/invocations")
            .route(web::post().to(invocations))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/execution-parameters")
            .route(web::get().to(execution_parameters))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn execution_parameters(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "MaxConcurrentTransforms": state.workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": (state.max_body_bytes / (1024 * 1024)).max(1),
    }))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().clone()))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        method: req.method().clone(),
        path: req.path().to_string(),
    })
}

async fn invocations(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let h = req.headers();
    let content_type = match h.get(CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::UnsupportedMediaType("(not ASCII)".into()))?,
        ),
    };
    let format = Format::from_content_type(content_type)?;
    let answer = ResponseFormat::from_request(&req)?;
    let limit = state.max_body_bytes;
    let declared = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?
        .map_err(|e| ApiError::bad(format!("could not read the body: {e}"), None, None))?;
    let out = if body.len() > INLINE_BODY_BYTES {
        let st = state.clone();
        web::block(move || score(&st, format, answer, &body))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    } else {
        score(&state, format, answer, &body)?
    };
    let mut resp = HttpResponse::Ok();
    resp.content_type(answer.content_type());
    if let Some(v) = h.get(CUSTOM_ATTRIBUTES) {
        resp.insert_header((CUSTOM_ATTRIBUTES, v.clone()));
    }
    Ok(resp.body(out))
}

/// Parse, predict the whole batch at once, check, render (public so the
/// hostile suite can fuzz the whole pipeline in-process).
pub fn score(
    state: &State,
    format: Format,
    answer: ResponseFormat,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let rows = request::parse(format, body)?;
    let mut raw = vec![0f32; rows.len() / crate::data::N_FEATURES];
    state.model.predict_proba(&rows, &mut raw);
    let scores = response::scores(&raw)?;
    response::render(answer, &scores, state.model.threshold())
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

//! `ccfraud serve`: the SageMaker hosting contract over actix-web.
//!
//! * `GET /ping` — 200 once the model is loaded and warmed (it is loaded
//!   before the port is bound, so the server never answers before it is
//!   ready), never logged, never behind inference.
//! * `POST /invocations` and `POST /endpoints/{name}/invocations` (the
//!   `sagemaker-runtime` API path, so boto3 with `endpoint_url` works) —
//!   body formats in [`request`], answers in [`response`], errors in [`error`].
//! * `GET /execution-parameters` — batch transform's hints.
//!
//! Large bodies are parsed and scored on the blocking pool so workers keep
//! answering `/ping`. SIGTERM stops accepting, drains in-flight requests and
//! exits 0.

pub mod error;
pub mod request;
pub mod response;

use crate::cli::ServeArgs;
use crate::model::{Artifact, Model, ModelError, TrainedModel, ARTIFACT_FILE, FORMAT_VERSION};
use actix_web::http::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use error::ApiError;
use request::Format;
use response::Accept;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Header SageMaker passes through to the caller only when echoed.
const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
/// Bodies larger than this are handled on the blocking thread pool.
const INLINE_BODY_BYTES: usize = 64 * 1024;

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
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Fetch(#[from] crate::sagemaker::archive::ArchiveError),
    #[error("{0}")]
    Config(String),
}

impl ServeError {
    /// 1: no usable model; 2: bad settings or cannot bind; 3: the server failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Model { .. } => 1,
            ServeError::Fetch(_) => 4,
            ServeError::Bind { .. } | ServeError::Config(_) => 2,
            ServeError::Runtime(_) => 3,
        }
    }
}

/// Everything a request handler shares, read-only.
#[derive(Debug)]
pub struct Loaded {
    pub model: TrainedModel,
    pub created_by: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    /// Access-Control-Allow-Origin for browser callers.
    pub cors_origin: String,
}

/// Loads `dir/ccfraud-model.json`, picks the model (`name` or the default)
/// and warms it up with one prediction.
pub fn load(
    dir: &Path,
    name: Option<&str>,
    workers: usize,
    max_body_bytes: usize,
) -> Result<Loaded, ServeError> {
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
    let kind = match name.map(str::parse::<crate::model::ModelKind>).transpose() {
        Ok(kind) => kind,
        Err(crate::model::UnknownKind(wanted)) => {
            let available = artifact.models().iter().map(|m| m.kind().name());
            return Err(err(ModelError::UnknownModel {
                wanted,
                available: available.collect::<Vec<_>>().join(", "),
            }));
        }
    };
    let created_by = artifact.created_by().to_string();
    let model = artifact.into_model(kind).map_err(err)?;
    let mut warm = [0f32; 1];
    model.predict_proba(&[0f32; crate::data::N_FEATURES], &mut warm);
    Ok(Loaded {
        model,
        created_by,
        workers,
        max_body_bytes,
        cors_origin: "*".into(),
    })
}

/// `ccfraud serve`: load, bind, log one start-up line, serve until SIGTERM.
pub fn main(args: ServeArgs) -> Result<(), ServeError> {
    let started = Instant::now();
    if actix_web::http::header::HeaderValue::from_str(&args.cors_origin).is_err() {
        return Err(ServeError::Config(format!(
            "--cors-origin '{}' is not a valid header value",
            args.cors_origin.escape_debug()
        )));
    }
    let workers = args.workers.filter(|&w| w > 0).unwrap_or_else(crate::cores);
    // --model-uri: fetch and unpack model.tar.gz; the guard removes it at exit.
    let (_fetched, dir) = match &args.model_uri {
        Some(uri) => {
            let (guard, dir) = crate::sagemaker::archive::fetch_model(uri)?;
            tracing::info!("unpacked {uri} into {}", dir.display());
            (Some(guard), dir)
        }
        None => (None, args.root.ml_root.join("model")),
    };
    let mut loaded = load(&dir, args.model.as_deref(), workers, args.max_body_bytes)?;
    loaded.cors_origin = args.cors_origin.clone();
    let addr = format!("{}:{}", args.host, args.port);
    let listener = TcpListener::bind(&addr).map_err(|source| ServeError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let m = &loaded.model;
    tracing::info!(
        "serving model '{}' ({}, artifact format v{FORMAT_VERSION}, threshold {}) on {} with {} workers; \
         {} AUC-ROC {:.4}, AUPRC {:.4}; ready in {} ms",
        m.kind(),
        loaded.created_by,
        m.threshold(),
        listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
        workers,
        m.provenance().evaluated_on,
        m.provenance().evaluation.auc_roc,
        m.provenance().evaluation.auprc,
        started.elapsed().as_millis()
    );
    actix_web::rt::System::new().block_on(async move {
        run(Arc::new(loaded), listener)
            .map_err(ServeError::Runtime)?
            .await
            .map_err(ServeError::Runtime)
    })
}

/// Builds the server on an already-bound listener (tests bind port 0).
pub fn run(state: Arc<Loaded>, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let workers = state.workers;
    let origin = state.cors_origin.clone();
    let data = web::Data::from(state);
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("Access-Control-Allow-Origin", origin.clone())),
            )
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
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/endpoints/{name}/invocations")
            .route(web::post().to(invocations))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/execution-parameters")
            .route(web::get().to(execution_parameters))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

/// CORS preflight: browsers ask before a JSON POST from another origin.
async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Methods", "POST, OPTIONS"))
        .insert_header((
            "Access-Control-Allow-Headers",
            "Content-Type, Accept, X-Amzn-SageMaker-Custom-Attributes",
        ))
        .insert_header(("Access-Control-Max-Age", "86400"))
        .finish()
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn execution_parameters(state: web::Data<Loaded>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "MaxConcurrentTransforms": state.workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": (state.max_body_bytes / (1024 * 1024)).max(1),
    }))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(req.method().to_string()))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

fn header(
    h: &HeaderMap,
    name: impl actix_web::http::header::AsHeaderName,
) -> Result<Option<&str>, ()> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ()),
    }
}

async fn invocations(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<Loaded>,
) -> Result<HttpResponse, ApiError> {
    let h = req.headers();
    let format = Format::from_content_type(
        header(h, CONTENT_TYPE)
            .map_err(|_| ApiError::UnsupportedMediaType("(not ASCII)".into()))?,
    )?;
    let accept = Accept::from_header(
        header(h, ACCEPT).map_err(|_| ApiError::NotAcceptable("(not ASCII)".into()))?,
    )?;
    let limit = state.max_body_bytes;
    if let Ok(Some(len)) = header(h, CONTENT_LENGTH) {
        if len.trim().parse::<usize>().is_ok_and(|n| n > limit) {
            return Err(ApiError::TooLarge { limit });
        }
    }
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?
        .map_err(|e| ApiError::bad(format!("could not read the body: {e}"), None, None))?;
    let out = if body.len() > INLINE_BODY_BYTES {
        let st = state.clone();
        web::block(move || score(&st, format, accept, &body))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    } else {
        score(&state, format, accept, &body)?
    };
    let mut resp = HttpResponse::Ok();
    resp.content_type(accept.content_type());
    if let Some(v) = h.get(CUSTOM_ATTRIBUTES) {
        resp.insert_header((CUSTOM_ATTRIBUTES, v.clone()));
    }
    Ok(resp.body(out))
}

/// Parse, predict the whole batch at once, render.
fn score(state: &Loaded, format: Format, accept: Accept, body: &[u8]) -> Result<String, ApiError> {
    let rows = request::parse(format, body)?;
    let mut scores = vec![0f32; rows.len() / crate::data::N_FEATURES];
    state.model.predict_proba(&rows, &mut scores);
    Ok(response::render(accept, &scores, state.model.threshold()))
}

/// Handlers share the model across worker threads.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Loaded>();
};

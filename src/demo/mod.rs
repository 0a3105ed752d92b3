//! `ccfraud demo`: the lab's web app, rebuilt and embedded in the binary (no
//! CDN, no files to deploy). The page calls a configurable prediction API —
//! the local `ccfraud serve` by default, or a deployed API Gateway URL — shows
//! the normal and fraud probabilities as bars, and raises an alert banner at
//! or above the threshold (0.9, as the lab's SNS alert). It asks the API for
//! reasons (`?explain=5`) and, when the answer carries them, shows the
//! model's decision and the reasons as a bar chart (app.js draws it as SVG).
//!
//! The page builds its form from the model's columns: `/config.json` gives
//! it the serving container's `GET /schema` beside the API URL
//! ([`schema_url`]). A model of another schema gets one input per numeric
//! column and a `<select>` per categorical one, and is sent a JSON object
//! keyed by column name; the lab's model (`"form":"lab"`), and an API whose
//! schema cannot be read (an API Gateway stage), get the lab's paste-a-list
//! mode with its 16 labelled examples.
//!
//! Without SNS, alerts go to a local sink: one JSON line per alert appended to
//! a file, and optionally a POST of the same JSON to an `http://` webhook.
//! An alert carries time, score, threshold and a reference (the example's id),
//! never the transaction's values. URLs are checked with `url`, the webhook
//! is posted with `ureq` (plain HTTP, 2 s), alert times are written by `time`.
//!
//! Other sites cannot use it: every route answers only for a `Host` that is
//! `--host`, `localhost` or an IP address, any port (421 otherwise: a
//! DNS-rebinding page's Host is its own name), and `/alerts`
//! takes only `Content-Type: application/json` (415; a cross-site JSON POST
//! needs a CORS preflight, which the demo never grants) with no `Origin`
//! (non-browser clients) or the page's own (403 otherwise).

use actix_web::http::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};
use actix_web::{guard, web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
/// 16 labelled transactions of the real data (the lab's example fraud, 10
/// frauds and 5 normals of the test split).
const EXAMPLES_JSON: &str = include_str!("../../data/demo_examples.json");
/// How long an alert webhook may take, connection to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// Checked settings of `ccfraud demo`, built by [`Config::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where to listen (the caller binds it, see [`Config::listen`]).
    pub bind: SocketAddr,
    /// `--host` as given: a name the page may be reached by.
    pub host: String,
    /// The prediction API the page calls (`http://` or `https://`).
    pub api_url: Url,
    /// Fraud score at or above which the page alerts, in [0, 1].
    pub threshold: f64,
    /// File that receives one JSON line per alert.
    pub alert_log: PathBuf,
    /// Optional webhook that receives each alert as a JSON POST.
    pub alert_webhook: Option<Webhook>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--api-url '{value}' must be an http:// or https:// URL")]
    ApiUrl { value: String },
    #[error("--threshold {value} must be between 0 and 1")]
    Threshold { value: f64 },
    #[error("--alert-webhook '{value}': {reason}")]
    Webhook {
        value: String,
        reason: WebhookProblem,
    },
    #[error("cannot resolve --host '{host}': {source}")]
    Host {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("demo server failed: {0}")]
    Runtime(#[source] std::io::Error),
}

impl DemoError {
    /// The exit code under the one policy of [`crate::sagemaker::Exit`]:
    /// bad flags and an address that cannot be had are usage errors.
    pub fn exit(&self) -> crate::sagemaker::Exit {
        use crate::sagemaker::Exit;
        match self {
            DemoError::ApiUrl { .. }
            | DemoError::Threshold { .. }
            | DemoError::Webhook { .. }
            | DemoError::Host { .. }
            | DemoError::Bind { .. } => Exit::Usage,
            DemoError::Runtime(_) => Exit::Failed,
        }
    }
}

/// What is wrong with an `--alert-webhook` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookProblem {
    #[error("not a URL")]
    NotAUrl,
    #[error("only http:// webhooks are supported")]
    NotHttp,
    #[error("no host")]
    NoHost,
}

impl Config {
    pub fn new(
        bind: SocketAddr,
        host: &str,
        api_url: &str,
        threshold: f64,
        alert_log: PathBuf,
        alert_webhook: Option<&str>,
    ) -> Result<Config, DemoError> {
        let api_url = Url::parse(api_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| DemoError::ApiUrl {
                value: api_url.to_string(),
            })?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(DemoError::Threshold { value: threshold });
        }
        let alert_webhook = alert_webhook
            .map(|w| {
                Webhook::parse(w).map_err(|reason| DemoError::Webhook {
                    value: w.to_string(),
                    reason,
                })
            })
            .transpose()?;
        Ok(Config {
            bind,
            host: host.to_ascii_lowercase(),
            api_url,
            threshold,
            alert_log,
            alert_webhook,
        })
    }

    /// Binds [`Config::bind`].
    pub fn listen(&self) -> Result<TcpListener, DemoError> {
        TcpListener::bind(self.bind).map_err(|source| DemoError::Bind {
            addr: self.bind,
            source,
        })
    }
}

/// An `http://host[:port]/path` webhook (plain HTTP, posted by `ureq` with a
/// 2 s timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    url: Url,
}

impl Webhook {
    pub fn parse(url: &str) -> Result<Webhook, WebhookProblem> {
        let url = Url::parse(url).map_err(|e| match e {
            url::ParseError::EmptyHost => WebhookProblem::NoHost,
            _ => WebhookProblem::NotAUrl,
        })?;
        if url.scheme() != "http" {
            return Err(WebhookProblem::NotHttp);
        }
        if !url.has_host() {
            return Err(WebhookProblem::NoHost);
        }
        Ok(Webhook { url })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs `body` as JSON; returns the HTTP status.
    fn post(&self, agent: &ureq::Agent, body: &str) -> Result<u16, ureq::Error> {
        let resp = agent
            .post(self.url.as_str())
            .content_type("application/json")
            .send(body)?;
        Ok(resp.status().as_u16())
    }
}

/// The client behind alert webhooks: plain HTTP, 2 s for the whole
/// exchange, every status returned (not an error), no proxy from the
/// environment (webhooks are local sinks).
fn webhook_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(WEBHOOK_TIMEOUT))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent()
}

struct State {
    config: Config,
    agent: ureq::Agent,
    log: Mutex<()>,
}

impl State {
    /// A `Host` naming this demo: `--host`, `localhost` or an IP address,
    /// any port (a port mapping may change it), never another DNS name.
    fn serves(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let Ok(url) = Url::parse(&format!("http://{host}/")) else {
            return false;
        };
        let name_ok = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost" || d == self.config.host,
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
            None => false,
        };
        name_ok && url.path() == "/"
    }
}

/// Handlers share the state across worker threads.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<State>();
};

/// `ccfraud demo` on a bound listener: log one start-up line, serve until
/// SIGTERM/SIGINT.
pub fn run(config: Config, listener: TcpListener) -> Result<(), DemoError> {
    let local = listener.local_addr().unwrap_or(config.bind);
    tracing::info!(
        "demo on http://{local}/ calling {} (alert threshold {}, alerts to {}{})",
        config.api_url,
        config.threshold,
        config.alert_log.display(),
        config
            .alert_webhook
            .as_ref()
            .map(|w| format!(" and {}", w.url))
            .unwrap_or_default()
    );
    actix_web::rt::System::new().block_on(async move {
        server(config, listener)
            .map_err(DemoError::Runtime)?
            .await
            .map_err(DemoError::Runtime)
    })
}

/// Builds the demo server on a bound listener (it runs when awaited).
pub fn server(config: Config, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::from(Arc::new(State {
        config,
        agent: webhook_agent(),
        log: Mutex::new(()),
    }));
    Ok(HttpServer::new(move || {
        let st = state.clone();
        let pages = web::scope("")
            .guard(guard::fn_guard(move |ctx| st.serves(ctx.head().headers())))
            .route(
                "/",
                web::get().to(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
            )
            .route(
                "/app.js",
                web::get().to(|| async { asset("text/javascript", APP_JS) }),
            )
            .route(
                "/style.css",
                web::get().to(|| async { asset("text/css", STYLE_CSS) }),
            )
            .route(
                "/examples.json",
                web::get().to(|| async { asset("application/json", EXAMPLES_JSON) }),
            )
            .route("/config.json", web::get().to(config_json))
            .route("/alerts", web::post().to(alert));
        App::new()
            .app_data(state.clone())
            .service(pages)
            .default_service(web::to(refused))
    })
    .workers(2)
    .shutdown_timeout(5)
    .listen(listener)?
    .run())
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).body(body)
}

async fn config_json(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "apiUrl": state.config.api_url.as_str(),
        "schemaUrl": schema_url(&state.config.api_url).map(String::from),
        "reportUrl": beside(&state.config.api_url, "/report").map(String::from),
        "threshold": state.config.threshold,
    }))
}

/// Where the prediction API's server describes its model's columns: for a
/// `ccfraud serve` URL (a path ending in `/invocations`, as
/// `/endpoints/NAME/invocations` does too) its `GET /schema`, on the same
/// origin; None for any other API (an API Gateway stage in front of the
/// Lambda has no such route), for which the page keeps the lab's
/// paste-a-list mode and says why.
pub fn schema_url(api_url: &Url) -> Option<Url> {
    beside(api_url, "/schema")
}

/// `path` on the origin of a `ccfraud serve` URL (see [`schema_url`]):
/// `/schema`, or `/report` (the training report, which the page links when
/// the server has one).
pub fn beside(api_url: &Url, path: &str) -> Option<Url> {
    if api_url.path_segments()?.next_back()? != "invocations" {
        return None;
    }
    let mut url = api_url.clone();
    url.set_path(path);
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

#[derive(Deserialize)]
struct AlertIn {
    score: f64,
    example: Option<String>,
}

/// One alert as logged and posted: no transaction values.
#[derive(serde::Serialize)]
struct AlertRecord {
    time: String,
    score: f64,
    threshold: f64,
    reference: String,
}

/// 421 for a request to another `Host`, else 404.
async fn refused(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    if state.serves(req.headers()) {
        return HttpResponse::NotFound().json(serde_json::json!({"error": "no such page"}));
    }
    HttpResponse::MisdirectedRequest().json(serde_json::json!({
        "error": format!("this demo answers only for Host {}, localhost or an IP address", state.config.host)
    }))
}

/// The refusal of an alert POST that is not JSON (415) or comes from
/// another site's page (403); `None` for the demo page and non-browser
/// clients (no `Origin`).
fn foreign(req: &HttpRequest) -> Option<HttpResponse> {
    let h = req.headers();
    let json = h
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Some(HttpResponse::UnsupportedMediaType().json(
            serde_json::json!({"error": "alerts must be sent as Content-Type: application/json"}),
        ));
    }
    let origin = h.get(ORIGIN)?;
    let own = h
        .get(HOST)
        .map(|host| format!("http://{}", String::from_utf8_lossy(host.as_bytes())));
    if own.is_some_and(|own| own.as_bytes() == origin.as_bytes()) {
        return None;
    }
    Some(HttpResponse::Forbidden().json(serde_json::json!({
        "error": format!("alerts are taken only from the demo page itself, not from Origin {}", String::from_utf8_lossy(origin.as_bytes()))
    })))
}

async fn alert(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(refusal) = foreign(&req) {
        return refusal;
    }
    let a: AlertIn = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({"error": format!("bad alert: {e}")}))
        }
    };
    if !(0.0..=1.0).contains(&a.score) || a.score < state.config.threshold {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": format!("score {} is not an alert (threshold {})", a.score, state.config.threshold)
        }));
    }
    let reference: String = a
        .example
        .unwrap_or_else(|| "manual-input".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    let record = match rfc3339(OffsetDateTime::now_utc()) {
        Ok(time) => AlertRecord {
            time,
            score: a.score,
            threshold: state.config.threshold,
            reference,
        },
        Err(e) => {
            return HttpResponse::InternalServerError()
                .json(serde_json::json!({"error": format!("clock: {e}")}))
        }
    };
    let record = match serde_json::to_string(&record) {
        Ok(r) => r,
        Err(e) => {
            return HttpResponse::InternalServerError()
                .json(serde_json::json!({"error": e.to_string()}))
        }
    };
    let st = state.clone();
    let result = web::block(move || {
        {
            let _guard = st.log.lock().unwrap_or_else(|e| e.into_inner());
            let mut f = fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&st.config.alert_log)?;
            f.write_all(format!("{record}\n").as_bytes())?;
        }
        if let Some(w) = &st.config.alert_webhook {
            match w.post(&st.agent, &record) {
                Ok(code) if (200..300).contains(&code) => {}
                Ok(code) => tracing::warn!("alert webhook {} answered {code}", w.url),
                Err(e) => tracing::warn!("alert webhook {} failed: {e}", w.url),
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    match result {
        Ok(Ok(())) => HttpResponse::Accepted().json(serde_json::json!({"alerted": true})),
        Ok(Err(e)) => {
            tracing::error!(
                "cannot write alert to {}: {e}",
                state.config.alert_log.display()
            );
            HttpResponse::InternalServerError()
                .json(serde_json::json!({"error": format!("alert log: {e}")}))
        }
        Err(e) => {
            HttpResponse::InternalServerError().json(serde_json::json!({"error": e.to_string()}))
        }
    }
}

/// `t` in UTC as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds).
fn rfc3339(t: OffsetDateTime) -> Result<String, time::error::Format> {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};

    fn config(api_url: &str, threshold: f64, webhook: Option<&str>) -> Result<Config, DemoError> {
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        Config::new(bind, "127.0.0.1", api_url, threshold, "a".into(), webhook)
    }

    #[test]
    fn dates() {
        let at = |secs| rfc3339(OffsetDateTime::from_unix_timestamp(secs).unwrap()).unwrap();
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_000_000), "2026-11-30T00:53:20Z");
        let now = rfc3339(OffsetDateTime::now_utc()).unwrap();
        assert_eq!((now.len(), &now[19..]), (20, "Z"), "{now}");
    }

    #[test]
    fn settings_are_checked() {
        let w = Webhook::parse("http://127.0.0.1:9000/hook").unwrap();
        let u = w.url();
        assert_eq!(
            (u.host_str(), u.port_or_known_default(), u.path()),
            (Some("127.0.0.1"), Some(9000), "/hook")
        );
        let w = Webhook::parse("http://example.org").unwrap();
        assert_eq!(w.url().port_or_known_default(), Some(80));
        assert_eq!(Webhook::parse("https://x"), Err(WebhookProblem::NotHttp));
        assert_eq!(Webhook::parse("http://"), Err(WebhookProblem::NoHost));
        assert_eq!(Webhook::parse("x"), Err(WebhookProblem::NotAUrl));
        assert!(config("http://127.0.0.1:8080/invocations", 0.9, None).is_ok());
        assert!(config("https://abc.execute-api.aws/prod", 0.9, None).is_ok());
        for bad in ["ftp://x", "127.0.0.1:8080", "", "http://"] {
            match config(bad, 0.9, None) {
                Err(DemoError::ApiUrl { value }) => assert_eq!(value, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
        for bad in [1.5, -0.1, f64::NAN] {
            assert!(matches!(
                config("http://x", bad, None),
                Err(DemoError::Threshold { .. })
            ));
        }
        let e = config("http://x", 0.9, Some("https://hook")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--alert-webhook 'https://hook': only http:// webhooks are supported"
        );
    }

    #[test]
    fn the_schema_is_read_beside_invocations_only() {
        let schema = |api: &str| schema_url(&Url::parse(api).unwrap()).map(String::from);
        let local = Some("http://127.0.0.1:8080/schema".to_string());
        assert_eq!(schema("http://127.0.0.1:8080/invocations"), local);
        assert_eq!(schema("http://127.0.0.1:8080/invocations?x=1#y"), local);
        assert_eq!(
            schema("http://127.0.0.1:8080/endpoints/fraud/invocations"),
            local
        );
        assert_eq!(
            schema("https://[::1]:9/invocations"),
            Some("https://[::1]:9/schema".into())
        );
        for other in [
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/predict",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/invocations/",
            "http://127.0.0.1:8080/my-invocations",
        ] {
            assert_eq!(schema(other), None, "{other}");
            assert_eq!(beside(&Url::parse(other).unwrap(), "/report"), None);
        }
        let api = Url::parse("http://127.0.0.1:8080/endpoints/x/invocations?a=1").unwrap();
        assert_eq!(
            beside(&api, "/report").map(String::from),
            Some("http://127.0.0.1:8080/report".into())
        );
    }

    /// A one-request HTTP listener on 127.0.0.1:0 that answers `status` and
    /// hands over what it received (head, body).
    fn listener(status: u16) -> (Url, std::sync::mpsc::Receiver<(String, String)>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/hook", l.local_addr().unwrap())).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let mut s = r.into_inner();
            write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            tx.send((head, String::from_utf8(body).unwrap())).unwrap();
        });
        (url, rx)
    }

    #[test]
    fn webhooks_post_json_to_a_real_listener() {
        let agent = webhook_agent();
        for status in [204, 500] {
            let (url, received) = listener(status);
            let hook = Webhook::parse(url.as_str()).unwrap();
            assert_eq!(hook.post(&agent, "{\"score\":0.95}").unwrap(), status);
            let (head, body) = received
                .recv_timeout(Duration::from_secs(10))
                .expect("the webhook listener never received the POST");
            assert!(head.starts_with("post /hook http/1.1"), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            assert_eq!(body, "{\"score\":0.95}");
        }
        // nobody listening: an error, within the timeout
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        assert!(Webhook::parse(&url).unwrap().post(&agent, "{}").is_err());
    }

    #[test]
    fn examples_are_labelled_real_rows() {
        let v: serde_json::Value = serde_json::from_str(EXAMPLES_JSON).unwrap();
        let ex = v["examples"].as_array().unwrap();
        let count = |l: &str| ex.iter().filter(|e| e["label"] == l).count();
        assert!(count("fraud") >= 10 && count("normal") >= 5);
        assert!(ex
            .iter()
            .all(|e| e["features"].as_array().unwrap().len() == 29));
    }
}

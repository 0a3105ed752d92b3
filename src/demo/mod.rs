//! `ccfraud demo`: the lab's web app, rebuilt and embedded in the binary (no
//! CDN, no files to deploy). The page calls a configurable prediction API —
//! the local `ccfraud serve` by default, or a deployed API Gateway URL — shows
//! the normal and fraud probabilities as bars, and raises an alert banner at
//! or above the threshold (0.9, as the lab's SNS alert).
//!
//! Without SNS, alerts go to a local sink: one JSON line per alert appended to
//! a file, and optionally a POST of the same JSON to an `http://` webhook.
//! An alert carries time, score, threshold and a reference (the example's id),
//! never the transaction's values.

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
/// 16 labelled transactions of the real data (the lab's example fraud, 10
/// frauds and 5 normals of the test split).
const EXAMPLES_JSON: &str = include_str!("../../data/demo_examples.json");

/// Demo settings, checked by [`DemoConfig::new`].
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub api_url: String,
    pub threshold: f64,
    pub alert_log: PathBuf,
    pub alert_webhook: Option<Webhook>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("demo server failed: {0}")]
    Runtime(#[source] std::io::Error),
}

impl DemoConfig {
    pub fn new(
        api_url: String,
        threshold: f64,
        alert_log: PathBuf,
        alert_webhook: Option<&str>,
    ) -> Result<DemoConfig, DemoError> {
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(DemoError::Config(format!(
                "--api-url '{api_url}' must be an http:// or https:// URL"
            )));
        }
        if !(0.0..=1.0).contains(&threshold) {
            return Err(DemoError::Config(format!(
                "--threshold {threshold} must be between 0 and 1"
            )));
        }
        let alert_webhook = alert_webhook.map(Webhook::parse).transpose()?;
        Ok(DemoConfig {
            api_url,
            threshold,
            alert_log,
            alert_webhook,
        })
    }
}

/// An `http://host:port/path` webhook (plain HTTP, posted with a 2 s timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    host: String,
    port: u16,
    path: String,
}

impl Webhook {
    pub fn parse(url: &str) -> Result<Webhook, DemoError> {
        let bad = |why: &str| DemoError::Config(format!("--alert-webhook '{url}': {why}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// webhooks are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Webhook {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// POSTs `body` as JSON; returns the HTTP status.
    fn post(&self, body: &str) -> std::io::Result<u16> {
        use std::io::Read;
        use std::net::ToSocketAddrs;
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("webhook host does not resolve"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.path,
            self.host,
            body.len(),
            body
        )?;
        let mut head = [0u8; 64];
        let n = s.read(&mut head)?;
        let text = String::from_utf8_lossy(&head[..n]);
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("webhook answered something that is not HTTP"))
    }
}

struct State {
    config: DemoConfig,
    log: Mutex<()>,
}

/// `ccfraud demo`: bind and serve until SIGTERM/SIGINT.
pub fn main(config: DemoConfig, host: &str, port: u16) -> Result<(), DemoError> {
    let addr = format!("{host}:{port}");
    let listener = TcpListener::bind(&addr).map_err(|source| DemoError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    tracing::info!(
        "demo on http://{local}/ calling {} (alert threshold {}, alerts to {}{})",
        config.api_url,
        config.threshold,
        config.alert_log.display(),
        config
            .alert_webhook
            .as_ref()
            .map(|w| format!(" and http://{}:{}{}", w.host, w.port, w.path))
            .unwrap_or_default()
    );
    actix_web::rt::System::new().block_on(async move {
        run(config, listener)
            .map_err(DemoError::Runtime)?
            .await
            .map_err(DemoError::Runtime)
    })
}

/// Builds the demo server on a bound listener.
pub fn run(config: DemoConfig, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::from(Arc::new(State {
        config,
        log: Mutex::new(()),
    }));
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
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
            .route("/alerts", web::post().to(alert))
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
        "apiUrl": state.config.api_url,
        "threshold": state.config.threshold,
    }))
}

#[derive(Deserialize)]
struct AlertIn {
    score: f64,
    example: Option<String>,
}

async fn alert(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
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
    let record = serde_json::json!({
        "time": utc_now_rfc3339(),
        "score": a.score,
        "threshold": state.config.threshold,
        "reference": reference,
    })
    .to_string();
    let st = state.clone();
    let result = web::block(move || {
        {
            let _guard = st.log.lock().unwrap_or_else(|e| e.into_inner());
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&st.config.alert_log)?;
            f.write_all(format!("{record}\n").as_bytes())?;
        }
        if let Some(w) = &st.config.alert_webhook {
            match w.post(&record) {
                Ok(code) if (200..300).contains(&code) => {}
                Ok(code) => tracing::warn!("alert webhook answered {code}"),
                Err(e) => tracing::warn!("alert webhook failed: {e}"),
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

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no time crate).
fn utc_now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_webhooks() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
        let w = Webhook::parse("http://127.0.0.1:9000/hook").unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("127.0.0.1", 9000, "/hook")
        );
        assert_eq!(Webhook::parse("http://example.org").unwrap().port, 80);
        assert!(Webhook::parse("https://x").is_err());
        assert!(DemoConfig::new("ftp://x".into(), 0.9, "a".into(), None).is_err());
        assert!(DemoConfig::new("http://x".into(), 1.5, "a".into(), None).is_err());
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

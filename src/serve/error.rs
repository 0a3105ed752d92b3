//! One error type for every failed request, one JSON shape for all of them
//! (`{"error": …, "error_type": …, "row": …, "field": …}`; `error` is what TF
//! Serving clients read), and one exhaustive mapping to HTTP statuses. Shed
//! requests (503) carry `Retry-After`; a shed or timed-out request also
//! closes its connection, so an unread body is never waited for.

use actix_web::http::header::RETRY_AFTER;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The body is not a batch of valid transactions. `row` is 1-based.
    #[error("{message}")]
    BadInput {
        message: String,
        row: Option<usize>,
        field: Option<String>,
    },
    #[error(
        "unsupported Content-Type '{0}': send application/json, text/csv or application/jsonlines"
    )]
    UnsupportedMediaType(String),
    #[error("cannot answer with Accept '{0}': accepted are application/json, text/csv, application/jsonlines")]
    NotAcceptable(String),
    #[error("unsupported Content-Encoding '{0}': send the body uncompressed")]
    UnsupportedEncoding(String),
    #[error("request body is larger than the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error("server busy: {0}; retry after {RETRY_AFTER_SECS} s")]
    Busy(Busy),
    #[error("{0} is not supported on this path")]
    MethodNotAllowed(Method),
    #[error("no route {method} {path}")]
    NotFound { method: Method, path: String },
    /// A protocol path or attribute names a model (or version) that is not
    /// the one served.
    #[error("model '{asked}' is not served here: this server serves '{served}'")]
    UnknownModel { asked: String, served: String },
    /// The model gave a score that is not a probability (`NaN`, `inf`, or
    /// outside [0, 1]) for this 1-based row: a bug, never sent as a number.
    #[error("internal error: the model gave an invalid score for row {row}")]
    InvalidScore { row: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a shed client is asked to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 1;

/// Which bound shed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("{open} connections are open (requests are shed above {limit})")]
    Connections { open: usize, limit: usize },
    #[error("{limit} bytes of request bodies are already being received or parsed")]
    InFlight { limit: usize },
}

impl ApiError {
    /// A bad-input error about one row (1-based) and, if known, one field.
    pub fn bad(message: impl Into<String>, row: Option<usize>, field: Option<&str>) -> ApiError {
        ApiError::BadInput {
            message: message.into(),
            row,
            field: field.map(str::to_string),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadInput { .. } => "invalid_input",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::UnsupportedEncoding(_) => "unsupported_media_type",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::BodyTimeout { .. } => "request_timeout",
            ApiError::Busy(_) => "busy",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::NotFound { .. } | ApiError::UnknownModel { .. } => "not_found",
            ApiError::InvalidScore { .. } | ApiError::Internal(_) => "internal",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: String,
    error_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadInput { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound { .. } | ApiError::UnknownModel { .. } => StatusCode::NOT_FOUND,
            ApiError::InvalidScore { .. } | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (row, field) = match self {
            ApiError::BadInput { row, field, .. } => (*row, field.as_deref()),
            _ => (None, None),
        };
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            ApiError::Busy(_) => {
                resp.insert_header((RETRY_AFTER, RETRY_AFTER_SECS))
                    .force_close();
            }
            ApiError::BodyTimeout { .. } => {
                resp.force_close();
            }
            _ => {}
        }
        resp.json(Body {
            error: self.to_string(),
            error_type: self.kind(),
            row,
            field,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_names_row_and_field_in_the_body() {
        let resp = ApiError::bad("x", Some(2), Some("V3")).error_response();
        let body = actix_web::rt::System::new()
            .block_on(actix_web::body::to_bytes(resp.into_body()))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["row"], 2);
        assert_eq!(v["field"], "V3");
        assert_eq!(v["error_type"], "invalid_input");
    }

    #[test]
    fn every_error_has_its_status_and_the_same_shape() {
        let cases = [
            (ApiError::bad("x", Some(2), Some("V3")), 400),
            (ApiError::UnsupportedMediaType("a/b".into()), 415),
            (ApiError::NotAcceptable("a/b".into()), 406),
            (ApiError::TooLarge { limit: 5 }, 413),
            (ApiError::UnsupportedEncoding("gzip".into()), 415),
            (ApiError::BodyTimeout { secs: 60 }, 408),
            (ApiError::Busy(Busy::InFlight { limit: 5 }), 503),
            (ApiError::MethodNotAllowed(Method::GET), 405),
            (
                ApiError::NotFound {
                    method: Method::GET,
                    path: "/x".into(),
                },
                404,
            ),
            (
                ApiError::UnknownModel {
                    asked: "m".into(),
                    served: "ccfraud".into(),
                },
                404,
            ),
            (ApiError::InvalidScore { row: 3 }, 500),
            (ApiError::Internal("boom".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(e.status_code().as_u16(), status);
            let resp = e.error_response();
            let h = resp.headers();
            assert_eq!(h.contains_key(RETRY_AFTER), status == 503, "{e}");
            let closes = h.get("connection").is_some_and(|v| v == "close")
                || resp.head().connection_type() == actix_web::http::ConnectionType::Close;
            assert_eq!(closes, matches!(status, 408 | 503), "{e}");
        }
    }
}

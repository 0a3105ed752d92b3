//! Fraud probabilities → response bodies, in the format the caller's
//! `Accept` header prefers:
//! * JSON (default): TF Serving's classification shape, one entry per row, so
//!   `result.classifications[0].classes[1].score` is the fraud probability
//!   (the lab's Lambda reads exactly that path);
//! * CSV: `score,decision` per row (decision 1 = fraud at the model's
//!   threshold), no trailing newline (batch transform adds its own);
//! * JSON Lines: `{"score":…,"fraud":…}` per row.
//!
//! Every body is written by a serde serializer from [`Score`]s, and a
//! `Score` can only hold a finite probability, so no body can carry `NaN`,
//! `inf` or a number outside [0, 1] (CSV's decision and JSON Lines' `fraud`
//! are computed from the `Score` too). A raw score that is not a
//! probability is refused by [`scores`] with the row it belongs to.

use super::error::ApiError;
use actix_web::http::header::{self, Header, Quality};
use actix_web::HttpMessage;
use serde::Serialize;

/// A fraud probability: finite and within [0, 1] by construction.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Score(f32);

impl Score {
    /// `None` unless `p` is a finite number in [0, 1].
    pub fn new(p: f32) -> Option<Score> {
        (0.0..=1.0).contains(&p).then_some(Score(p))
    }

    pub fn get(self) -> f32 {
        self.0
    }

    /// The probability of the other class, `1 − p` (also within [0, 1]).
    pub fn complement(self) -> Score {
        Score((1.0 - self.0).clamp(0.0, 1.0))
    }
}

/// Checks a model's raw outputs; the first invalid one (1-based row) is
/// refused, never a body. The inputs are finite f32s (see
/// [`super::request`]), so a non-finite score means the model's own f32
/// arithmetic overflowed on that row's values (a scaled value near ±3.4e38
/// times a weight): bad input, a 400. A finite score outside [0, 1] is a
/// bug: an internal error.
pub fn scores(raw: &[f32]) -> Result<Vec<Score>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, &p)| {
            let row = i + 1;
            Score::new(p).ok_or_else(|| match p.is_finite() {
                true => ApiError::InvalidScore { row },
                false => ApiError::bad(
                    format!("row {row}: the model's f32 arithmetic overflows on these values (features are standardized values, rarely beyond ±100)"),
                    Some(row),
                    None,
                ),
            })
        })
        .collect()
}

/// Response body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Csv,
    JsonLines,
}

impl ResponseFormat {
    /// The format a media range asks for, if it is one we can produce.
    fn of(media: &actix_web::mime::Mime) -> Option<ResponseFormat> {
        let essence = media.essence_str().to_ascii_lowercase();
        match essence.as_str() {
            "*/*" | "application/*" | "application/json" | "text/json" => {
                Some(ResponseFormat::Json)
            }
            "text/csv" | "text/*" | "application/csv" => Some(ResponseFormat::Csv),
            "application/jsonlines"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json-lines" => Some(ResponseFormat::JsonLines),
            _ => None,
        }
    }

    /// Negotiates from a request's `Accept` header(s) (actix's typed
    /// [`header::Accept`]): among the media ranges we can produce with
    /// `q > 0`, the highest `q` wins, ties going to the one listed first.
    /// No header, a blank one or `*/*` means JSON; nothing acceptable is 406.
    pub fn from_request(req: &impl HttpMessage) -> Result<ResponseFormat, ApiError> {
        let raw: Vec<&str> = req
            .headers()
            .get_all(header::ACCEPT)
            .map(|v| v.to_str())
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::NotAcceptable("(not ASCII)".into()))?;
        if raw.iter().all(|v| v.trim().is_empty()) {
            return Ok(ResponseFormat::Json);
        }
        let refused = || ApiError::NotAcceptable(raw.join(", "));
        let accept = header::Accept::parse(req).map_err(|_| refused())?;
        if accept.is_empty() {
            // nothing in the header parsed as a media range
            return Err(refused());
        }
        ResponseFormat::negotiate(&accept).ok_or_else(refused)
    }

    /// The best format in a parsed `Accept` list (see [`Self::from_request`]);
    /// an empty list means JSON.
    pub fn negotiate(accept: &header::Accept) -> Option<ResponseFormat> {
        if accept.is_empty() {
            return Some(ResponseFormat::Json);
        }
        accept
            .iter()
            .filter(|item| item.quality > Quality::ZERO)
            .filter_map(|item| Some((item.quality, ResponseFormat::of(&item.item)?)))
            // `min_by` keeps the first of equals: the highest q listed first
            .min_by(|a, b| b.0.cmp(&a.0))
            .map(|(_, format)| format)
    }

    /// The Content-Type of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::Json => "application/json",
            ResponseFormat::Csv => "text/csv",
            ResponseFormat::JsonLines => "application/jsonlines",
        }
    }
}

/// Renders scores in the chosen format; `threshold` decides the CSV
/// `decision` and the JSON Lines `fraud` fields.
pub fn render(
    format: ResponseFormat,
    scores: &[Score],
    threshold: f64,
) -> Result<Vec<u8>, ApiError> {
    let fraud = |s: Score| f64::from(s.get()) >= threshold;
    let mut out = Vec::with_capacity(scores.len() * 96);
    let written = match format {
        ResponseFormat::Json => {
            let classifications = scores
                .iter()
                .map(|&score| Classes {
                    classes: [
                        Class {
                            label: "0",
                            score: score.complement(),
                        },
                        Class { label: "1", score },
                    ],
                })
                .collect();
            let body = Response {
                result: Classifications { classifications },
            };
            serde_json::to_writer(&mut out, &body)
        }
        // One line a row, no trailing newline (batch transform adds its own).
        ResponseFormat::JsonLines | ResponseFormat::Csv => {
            scores.iter().enumerate().try_for_each(|(i, &score)| {
                if i > 0 {
                    out.push(b'\n');
                }
                if format == ResponseFormat::Csv {
                    serde_json::to_writer(&mut out, &score)?;
                    out.extend_from_slice(if fraud(score) { b",1" } else { b",0" });
                    Ok(())
                } else {
                    let line = Line {
                        score,
                        fraud: fraud(score),
                    };
                    serde_json::to_writer(&mut out, &line)
                }
            })
        }
    };
    written.map_err(|e| ApiError::Internal(format!("cannot render: {e}")))?;
    Ok(out)
}

/// `{"result":{"classifications":[{"classes":[…]}, …]}}`
#[derive(Serialize)]
struct Response {
    result: Classifications,
}

#[derive(Serialize)]
struct Classifications {
    classifications: Vec<Classes>,
}

#[derive(Serialize)]
struct Classes {
    classes: [Class; 2],
}

#[derive(Serialize)]
struct Class {
    label: &'static str,
    score: Score,
}

#[derive(Serialize)]
struct Line {
    score: Score,
    fraud: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn s(v: &[f32]) -> Vec<Score> {
        scores(v).unwrap()
    }

    fn text(format: ResponseFormat, v: &[f32], threshold: f64) -> String {
        String::from_utf8(render(format, &s(v), threshold).unwrap()).unwrap()
    }

    #[test]
    fn json_is_the_tf_classification_shape() {
        let body = text(ResponseFormat::Json, &[0.25, 0.96], 0.5);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let c = &v["result"]["classifications"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[1]["classes"][1]["label"], "1");
        assert_eq!(c[1]["classes"][1]["score"].as_f64().unwrap() as f32, 0.96);
        assert_eq!(c[0]["classes"][0]["label"], "0");
        let sum = c[0]["classes"][0]["score"].as_f64().unwrap()
            + c[0]["classes"][1]["score"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-6);
        assert_eq!(
            body,
            r#"{"result":{"classifications":[{"classes":[{"label":"0","score":0.75},{"label":"1","score":0.25}]},{"classes":[{"label":"0","score":0.04000002},{"label":"1","score":0.96}]}]}}"#
        );
    }

    #[test]
    fn csv_and_jsonl_one_line_per_row_no_trailing_newline() {
        assert_eq!(
            text(ResponseFormat::Csv, &[0.25, 0.96], 0.5),
            "0.25,0\n0.96,1"
        );
        assert_eq!(text(ResponseFormat::Csv, &[0.0, 1.0], 0.5), "0.0,0\n1.0,1");
        assert_eq!(
            text(ResponseFormat::JsonLines, &[0.25], 0.5),
            "{\"score\":0.25,\"fraud\":false}"
        );
        assert_eq!(
            text(ResponseFormat::JsonLines, &[0.25, 0.5], 0.5),
            "{\"score\":0.25,\"fraud\":false}\n{\"score\":0.5,\"fraud\":true}"
        );
    }

    #[test]
    fn only_finite_probabilities_become_scores() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.1, 1.000_001] {
            assert_eq!(Score::new(bad), None, "{bad}");
        }
        assert_eq!(Score::new(0.0).map(Score::get), Some(0.0));
        assert_eq!(Score::new(1.0).map(|s| s.complement().get()), Some(0.0));
        // a model's arithmetic overflowing on huge inputs is a 400 naming
        // the row, never a NaN in the body
        for overflowed in [f32::NAN, f32::INFINITY] {
            let e = scores(&[0.5, overflowed]).unwrap_err();
            assert!(
                matches!(&e, ApiError::BadInput { message, row: Some(2), .. } if message.contains("overflows")),
                "{e:?}"
            );
            assert_eq!(actix_web::ResponseError::status_code(&e).as_u16(), 400);
        }
        // a model gone wrong is a 500 with the JSON error shape, never a body
        let e = scores(&[0.5, 1.5]).unwrap_err();
        assert_eq!(e, ApiError::InvalidScore { row: 2 });
        let resp = actix_web::ResponseError::error_response(&e);
        assert_eq!(resp.status().as_u16(), 500);
        assert_eq!(
            resp.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
    }

    fn negotiate(values: &[&str]) -> Result<ResponseFormat, ApiError> {
        let mut req = TestRequest::default();
        for v in values {
            req = req.append_header((header::ACCEPT, *v));
        }
        ResponseFormat::from_request(&req.to_http_request())
    }

    #[test]
    fn accept_negotiation() {
        use ResponseFormat::*;
        assert_eq!(negotiate(&[]).unwrap(), Json);
        assert_eq!(negotiate(&["  "]).unwrap(), Json);
        assert_eq!(negotiate(&["*/*"]).unwrap(), Json);
        assert_eq!(negotiate(&["image/png, text/csv;q=0.5"]).unwrap(), Csv);
        assert_eq!(negotiate(&["application/jsonlines"]).unwrap(), JsonLines);
        assert_eq!(negotiate(&["TEXT/CSV"]).unwrap(), Csv);
        assert_eq!(negotiate(&["text/csv, garbage"]).unwrap(), Csv);
        assert_eq!(negotiate(&["image/png", "text/csv"]).unwrap(), Csv);
        for refused in [&["image/png"][..], &["garbage"], &["text/csv;q=0"]] {
            assert!(
                matches!(negotiate(refused), Err(ApiError::NotAcceptable(_))),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn accept_honours_q() {
        use ResponseFormat::*;
        // q=0 means "not this"
        assert_eq!(
            negotiate(&["text/csv;q=0, application/json"]).unwrap(),
            Json
        );
        assert_eq!(negotiate(&["text/csv;q=0, */*;q=0.1"]).unwrap(), Json);
        // the highest q wins wherever it is listed
        assert_eq!(
            negotiate(&["application/json;q=0.5, text/csv"]).unwrap(),
            Csv
        );
        assert_eq!(
            negotiate(&["text/csv;q=0.2, application/jsonlines;q=0.9, */*;q=0.5"]).unwrap(),
            JsonLines
        );
        assert_eq!(
            negotiate(&["*/*;q=0.8, text/csv; charset=utf-8; q=0.9"]).unwrap(),
            Csv
        );
        // ties go to the first listed
        assert_eq!(
            negotiate(&["text/csv;q=0.5, application/json;q=0.5"]).unwrap(),
            Csv
        );
        assert_eq!(negotiate(&["*/*, text/csv"]).unwrap(), Json);
        // unsupported types do not win, however preferred
        assert_eq!(negotiate(&["image/png, text/csv;q=0.1"]).unwrap(), Csv);
        assert!(matches!(
            negotiate(&["image/png, */*;q=0"]),
            Err(ApiError::NotAcceptable(_))
        ));
    }
}

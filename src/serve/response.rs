//! Fraud probabilities → response bodies, chosen by `Accept`:
//! * JSON (default): TF Serving's classification shape, one entry per row, so
//!   `result.classifications[0].classes[1].score` is the fraud probability;
//! * CSV: `score,decision` per row (decision 1 = fraud at the model's
//!   threshold), no trailing newline (batch transform adds its own);
//! * JSON Lines: `{"score":…,"fraud":…}` per row.
//!
//! Bodies are written straight into one pre-sized buffer.

use super::error::ApiError;
use std::fmt::Write;

/// Response body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Json,
    Csv,
    JsonLines,
}

impl Accept {
    /// From an Accept header (a comma-separated list; the first acceptable
    /// entry wins; none or `*/*` means JSON).
    pub fn from_header(h: Option<&str>) -> Result<Accept, ApiError> {
        let Some(h) = h else { return Ok(Accept::Json) };
        if h.trim().is_empty() {
            return Ok(Accept::Json);
        }
        for part in h.split(',') {
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match media.as_str() {
                "*/*" | "application/*" | "application/json" | "text/json" => {
                    return Ok(Accept::Json)
                }
                "text/csv" | "text/*" | "application/csv" => return Ok(Accept::Csv),
                "application/jsonlines"
                | "application/jsonl"
                | "application/x-jsonlines"
                | "application/json-lines" => return Ok(Accept::JsonLines),
                _ => {}
            }
        }
        Err(ApiError::NotAcceptable(h.to_string()))
    }

    /// The Content-Type of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Accept::Json => "application/json",
            Accept::Csv => "text/csv",
            Accept::JsonLines => "application/jsonlines",
        }
    }
}

/// Renders scores in the chosen format.
pub fn render(accept: Accept, scores: &[f32], threshold: f64) -> String {
    match accept {
        Accept::Json => json(scores),
        Accept::Csv => lines(scores, |out, s| {
            let _ = write!(out, "{},{}", s, u8::from(f64::from(s) >= threshold));
        }),
        Accept::JsonLines => lines(scores, |out, s| {
            let _ = write!(
                out,
                "{{\"score\":{},\"fraud\":{}}}",
                s,
                f64::from(s) >= threshold
            );
        }),
    }
}

fn json(scores: &[f32]) -> String {
    let mut out = String::with_capacity(40 + scores.len() * 90);
    out.push_str("{\"result\":{\"classifications\":[");
    for (i, &s) in scores.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"classes\":[{{\"label\":\"0\",\"score\":{}}},{{\"label\":\"1\",\"score\":{}}}]}}",
            1.0 - s,
            s
        );
    }
    out.push_str("]}}");
    out
}

fn lines(scores: &[f32], mut row: impl FnMut(&mut String, f32)) -> String {
    let mut out = String::with_capacity(scores.len() * 24);
    for (i, &s) in scores.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        row(&mut out, s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_tf_classification_shape() {
        let body = render(Accept::Json, &[0.25, 0.96], 0.5);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let c = &v["result"]["classifications"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[1]["classes"][1]["label"], "1");
        assert_eq!(c[1]["classes"][1]["score"].as_f64().unwrap() as f32, 0.96);
        assert_eq!(c[0]["classes"][0]["label"], "0");
        let sum = c[0]["classes"][0]["score"].as_f64().unwrap()
            + c[0]["classes"][1]["score"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn csv_and_jsonl_one_line_per_row_no_trailing_newline() {
        assert_eq!(render(Accept::Csv, &[0.25, 0.96], 0.5), "0.25,0\n0.96,1");
        assert_eq!(
            render(Accept::JsonLines, &[0.25], 0.5),
            "{\"score\":0.25,\"fraud\":false}"
        );
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(Accept::from_header(None).unwrap(), Accept::Json);
        assert_eq!(Accept::from_header(Some("*/*")).unwrap(), Accept::Json);
        assert_eq!(
            Accept::from_header(Some("image/png, text/csv;q=0.5")).unwrap(),
            Accept::Csv
        );
        assert_eq!(
            Accept::from_header(Some("application/jsonlines")).unwrap(),
            Accept::JsonLines
        );
        assert!(matches!(
            Accept::from_header(Some("image/png")),
            Err(ApiError::NotAcceptable(_))
        ));
    }
}

//! Fraud probabilities → response bodies, in the format the caller's
//! `Accept` header prefers:
//! * JSON (default): TF Serving's classification shape, one entry per row, so
//!   `result.classifications[0].classes[1].score` is the fraud probability
//!   (the lab's Lambda reads exactly that path);
//! * CSV: `score,decision` per row (decision 1 = fraud at the model's
//!   threshold), no trailing newline (batch transform adds its own);
//! * JSON Lines: `{"score":…,"fraud":…}` per row.
//!
//! When the caller asks (see [`super::asks`]), each answer also carries,
//! per row, its decision ([`crate::decide::Decision`]) and its top reasons
//! ([`Reasons`]: the base value, the model's own output and the features
//! with the largest exact attributions, in the output space the answer
//! names). JSON puts them in sibling keys of `classifications`
//! (`result.model`, `result.decisions[i]`, `result.explanations[i]`), so
//! the lab's path
//! is untouched; JSON Lines adds `decision` and `explanation` fields; CSV
//! adds columns after `score,decision`: `action,expected_loss` (empty when
//! the amount is unknown), then `base` and `K` pairs `feature,contribution`.
//! Without an ask, every body is byte for byte what it was.
//!
//! Every body is written by a serde serializer from [`Score`]s, and a
//! `Score` can only hold a finite probability, so no body can carry `NaN`,
//! `inf` or a number outside [0, 1] (CSV's decision and JSON Lines' `fraud`
//! are computed from the `Score` too). A raw score that is not a
//! probability is refused by [`scores`] with the row it belongs to.

use super::error::ApiError;
use crate::decide::Decision;
use crate::model::explain::{Explanation, Space};
use crate::schema::Schema;
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
    /// The format a media range asks for, if it is one we can produce
    /// (`*/*`: the default).
    fn of(media: &actix_web::mime::Mime, default: ResponseFormat) -> Option<ResponseFormat> {
        let essence = media.essence_str().to_ascii_lowercase();
        match essence.as_str() {
            "*/*" => Some(default),
            "application/*" | "application/json" | "text/json" => Some(ResponseFormat::Json),
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
    /// No header, a blank one or `*/*` means `default` (JSON unless
    /// `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` says otherwise); nothing
    /// acceptable is 406.
    pub fn from_request(
        req: &impl HttpMessage,
        default: ResponseFormat,
    ) -> Result<ResponseFormat, ApiError> {
        let raw: Vec<&str> = req
            .headers()
            .get_all(header::ACCEPT)
            .map(|v| v.to_str())
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::NotAcceptable("(not ASCII)".into()))?;
        if raw.iter().all(|v| v.trim().is_empty()) {
            return Ok(default);
        }
        let refused = || ApiError::NotAcceptable(raw.join(", "));
        let accept = header::Accept::parse(req).map_err(|_| refused())?;
        if accept.is_empty() {
            // nothing in the header parsed as a media range
            return Err(refused());
        }
        ResponseFormat::negotiate(&accept, default).ok_or_else(refused)
    }

    /// The best format in a parsed `Accept` list (see [`Self::from_request`]);
    /// an empty list means `default`.
    pub fn negotiate(accept: &header::Accept, default: ResponseFormat) -> Option<ResponseFormat> {
        if accept.is_empty() {
            return Some(default);
        }
        accept
            .iter()
            .filter(|item| item.quality > Quality::ZERO)
            .filter_map(|item| Some((item.quality, ResponseFormat::of(&item.item, default)?)))
            // `min_by` keeps the first of equals: the highest q listed first
            .min_by(|a, b| b.0.cmp(&a.0))
            .map(|(_, format)| format)
    }

    /// `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`'s value: one media type this
    /// server answers in (parameters ignored).
    pub fn parse_default(value: &str) -> Option<ResponseFormat> {
        let media: actix_web::mime::Mime = value.trim().parse().ok()?;
        match media.essence_str() {
            "*/*" | "text/*" | "application/*" => None,
            _ => ResponseFormat::of(&media, ResponseFormat::Json),
        }
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

/// A row's feature value as the model saw it: a number, a category, or
/// missing (`null`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FeatureValue<'s> {
    Number(f32),
    Category(&'s str),
    Missing,
}

/// One reason: a feature, its value and its share of the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason<'s> {
    pub feature: &'s str,
    pub value: FeatureValue<'s>,
    pub contribution: f64,
}

/// A row's top reasons: `base + Σ every feature's contribution = value`
/// (the reasons listed are the largest `K` of them by magnitude).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reasons<'s> {
    /// What `base`, `value` and the contributions are measured in.
    pub space: Space,
    pub base: f64,
    pub value: f64,
    /// `|base + Σ − value|` of an approximate method (the DNN's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness_error: Option<f64>,
    pub reasons: Vec<Reason<'s>>,
}

impl<'s> Reasons<'s> {
    /// The top `k` reasons of `e`, the explanation of encoded `row`. A
    /// non-finite figure (the model's f32 arithmetic overflowing on huge
    /// values) is refused as the score would be, naming the row.
    pub fn new(
        schema: &'s Schema,
        row: &[f32],
        e: &Explanation,
        k: usize,
        index: usize,
    ) -> Result<Reasons<'s>, ApiError> {
        let finite = e.base.is_finite()
            && e.value.is_finite()
            && e.contributions.iter().all(|c| c.is_finite());
        if !finite {
            let row = index + 1;
            return Err(ApiError::bad(
                format!("row {row}: the model's f32 arithmetic overflows on these values, so they cannot be explained"),
                Some(row),
                None,
            ));
        }
        let mut order: Vec<usize> = (0..e.contributions.len().min(row.len())).collect();
        order.sort_by(|&a, &b| {
            e.contributions[b]
                .abs()
                .total_cmp(&e.contributions[a].abs())
                .then(a.cmp(&b))
        });
        order.truncate(k);
        let reasons = order
            .into_iter()
            .map(|j| {
                let v = row[j];
                let value = if v.is_nan() {
                    FeatureValue::Missing
                } else if let Some(c) = schema.is_categorical(j).then(|| schema.category(j, v)) {
                    c.map_or(FeatureValue::Missing, FeatureValue::Category)
                } else {
                    FeatureValue::Number(v)
                };
                Reason {
                    feature: schema.columns()[j].name.as_str(),
                    value,
                    contribution: e.contributions[j],
                }
            })
            .collect();
        Ok(Reasons {
            space: e.space,
            base: e.base,
            value: e.value,
            completeness_error: e.completeness_error,
            reasons,
        })
    }
}

/// A key of `SAGEMAKER_INFERENCE_OUTPUT`, the inference response keys of
/// SageMaker's built-in (Autopilot) classification containers: what each
/// CSV or JSON Lines answer line holds, in the order listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKey {
    /// `1` (fraud) at or above the model's threshold, else `0`.
    PredictedLabel,
    /// The fraud probability (the positive class's, as Autopilot's binary
    /// HPO models give it).
    Probability,
    /// `[P(0), P(1)]`.
    Probabilities,
    /// `['0', '1']`, the labels `probabilities` follows.
    Labels,
}

/// A `SAGEMAKER_INFERENCE_OUTPUT` that is not a list of known keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SAGEMAKER_INFERENCE_OUTPUT '{}' must list, comma-separated and each once, some of predicted_label, probability, probabilities, labels", .0.escape_debug())]
pub struct BadOutputKeys(pub String);

impl OutputKey {
    const ALL: [OutputKey; 4] = [
        OutputKey::PredictedLabel,
        OutputKey::Probability,
        OutputKey::Probabilities,
        OutputKey::Labels,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutputKey::PredictedLabel => "predicted_label",
            OutputKey::Probability => "probability",
            OutputKey::Probabilities => "probabilities",
            OutputKey::Labels => "labels",
        }
    }

    /// `predicted_label,probability`: known keys (any case, spaces
    /// around), each once, at least one.
    pub fn parse_list(value: &str) -> Result<Vec<OutputKey>, BadOutputKeys> {
        let bad = || BadOutputKeys(value.to_string());
        let mut keys = Vec::new();
        for word in value.split(',') {
            let word = word.trim().to_ascii_lowercase();
            let key = OutputKey::ALL
                .into_iter()
                .find(|k| k.name() == word)
                .ok_or_else(bad)?;
            if keys.contains(&key) {
                return Err(bad());
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// One CSV line's selected fields.
fn csv_selected(
    out: &mut Vec<u8>,
    keys: &[OutputKey],
    score: Score,
    fraud: bool,
) -> serde_json::Result<()> {
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match key {
            OutputKey::PredictedLabel => out.push(if fraud { b'1' } else { b'0' }),
            OutputKey::Probability => serde_json::to_writer(&mut *out, &score)?,
            OutputKey::Probabilities => {
                out.extend_from_slice(b"\"[");
                serde_json::to_writer(&mut *out, &score.complement())?;
                out.extend_from_slice(b", ");
                serde_json::to_writer(&mut *out, &score)?;
                out.extend_from_slice(b"]\"");
            }
            OutputKey::Labels => out.extend_from_slice(b"\"['0', '1']\""),
        }
    }
    Ok(())
}

/// One JSON Lines line's selected fields (and the extras).
#[derive(Serialize, Default)]
struct Selected<'a, 's> {
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted_label: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probability: Option<Score>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilities: Option<[Score; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<[&'static str; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<&'a Reasons<'s>>,
}

impl Selected<'_, '_> {
    fn new(keys: &[OutputKey], score: Score, fraud: bool) -> Self {
        let mut s = Selected::default();
        for key in keys {
            match key {
                OutputKey::PredictedLabel => s.predicted_label = Some(u8::from(fraud)),
                OutputKey::Probability => s.probability = Some(score),
                OutputKey::Probabilities => s.probabilities = Some([score.complement(), score]),
                OutputKey::Labels => s.labels = Some(["0", "1"]),
            }
        }
        s
    }
}

/// What an answer carries beside the scores, one entry a row each.
#[derive(Debug, Default)]
pub struct Extras<'s> {
    /// `SAGEMAKER_INFERENCE_OUTPUT`'s keys: what CSV and JSON Lines lines
    /// hold instead of `score,decision` / `score`, `fraud` (empty: those).
    pub outputs: &'s [OutputKey],
    /// The model answering (given with decisions and reasons).
    pub model: Option<&'static str>,
    pub decisions: Option<Vec<Decision>>,
    pub explanations: Option<Vec<Reasons<'s>>>,
}

/// A CSV field: quoted when it holds a separator, a quote or a line break.
fn csv_field(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// The CSV columns [`Extras`] add to row `i` (after `score,decision`).
fn csv_extras(out: &mut Vec<u8>, extras: &Extras<'_>, i: usize) -> serde_json::Result<()> {
    if let Some(d) = extras.decisions.as_ref().and_then(|d| d.get(i)) {
        out.push(b',');
        out.extend_from_slice(d.action.as_str().as_bytes());
        out.push(b',');
        if let Some(l) = d.expected_loss {
            serde_json::to_writer(&mut *out, &l)?;
        }
    }
    if let Some(r) = extras.explanations.as_ref().and_then(|r| r.get(i)) {
        out.push(b',');
        serde_json::to_writer(&mut *out, &r.base)?;
        for reason in &r.reasons {
            out.push(b',');
            csv_field(out, reason.feature);
            out.push(b',');
            serde_json::to_writer(&mut *out, &reason.contribution)?;
        }
    }
    Ok(())
}

/// Renders scores in the chosen format; `threshold` decides the CSV
/// `decision` and the JSON Lines `fraud` fields; `extras` are added as the
/// module doc says.
pub fn render(
    format: ResponseFormat,
    scores: &[Score],
    threshold: f64,
    extras: &Extras<'_>,
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
                result: Classifications {
                    classifications,
                    model: extras.model,
                    decisions: extras.decisions.as_deref(),
                    explanations: extras.explanations.as_deref(),
                },
            };
            serde_json::to_writer(&mut out, &body)
        }
        // One line a row, no trailing newline (batch transform adds its own).
        ResponseFormat::JsonLines | ResponseFormat::Csv => {
            scores.iter().enumerate().try_for_each(|(i, &score)| {
                if i > 0 {
                    out.push(b'\n');
                }
                let keys = extras.outputs;
                if format == ResponseFormat::Csv {
                    if keys.is_empty() {
                        serde_json::to_writer(&mut out, &score)?;
                        out.extend_from_slice(if fraud(score) { b",1" } else { b",0" });
                    } else {
                        csv_selected(&mut out, keys, score, fraud(score))?;
                    }
                    csv_extras(&mut out, extras, i)
                } else if !keys.is_empty() {
                    let line = Selected {
                        decision: extras.decisions.as_ref().and_then(|d| d.get(i)),
                        explanation: extras.explanations.as_ref().and_then(|r| r.get(i)),
                        ..Selected::new(keys, score, fraud(score))
                    };
                    serde_json::to_writer(&mut out, &line)
                } else {
                    let line = Line {
                        score,
                        fraud: fraud(score),
                        decision: extras.decisions.as_ref().and_then(|d| d.get(i)),
                        explanation: extras.explanations.as_ref().and_then(|r| r.get(i)),
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
struct Response<'a, 's> {
    result: Classifications<'a, 's>,
}

#[derive(Serialize)]
struct Classifications<'a, 's> {
    classifications: Vec<Classes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decisions: Option<&'a [Decision]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanations: Option<&'a [Reasons<'s>]>,
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
struct Line<'a, 's> {
    score: Score,
    fraud: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<&'a Reasons<'s>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn s(v: &[f32]) -> Vec<Score> {
        scores(v).unwrap()
    }

    fn text(format: ResponseFormat, v: &[f32], threshold: f64) -> String {
        String::from_utf8(render(format, &s(v), threshold, &Extras::default()).unwrap()).unwrap()
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

    fn explanation(contributions: Vec<f64>) -> Explanation {
        Explanation {
            space: Space::LogOdds,
            base: -2.0,
            value: -2.0 + contributions.iter().sum::<f64>(),
            contributions,
            completeness_error: None,
        }
    }

    #[test]
    fn reasons_are_the_largest_contributions_with_their_values() {
        use crate::schema::{Column, Form};
        let schema = Schema::new(
            Form::Header,
            vec![
                Column::numeric("amount"),
                Column::categorical("country", vec!["GB".into(), "US".into()]),
                Column::numeric("hour"),
            ],
            "y".into(),
            Some("amount".into()),
        )
        .unwrap();
        let e = explanation(vec![0.5, -1.5, 0.5]);
        let r = Reasons::new(&schema, &[12.5, 1.0, f32::NAN], &e, 2, 0).unwrap();
        assert_eq!(r.reasons.len(), 2);
        assert_eq!(
            (r.reasons[0].feature, &r.reasons[0].value),
            ("country", &FeatureValue::Category("US"))
        );
        // ties keep schema order
        assert_eq!(
            (r.reasons[1].feature, &r.reasons[1].value),
            ("amount", &FeatureValue::Number(12.5))
        );
        let all = Reasons::new(&schema, &[12.5, 1.0, f32::NAN], &e, 99, 0).unwrap();
        assert_eq!(all.reasons[2].value, FeatureValue::Missing);
        assert_eq!(
            serde_json::to_string(&all.reasons[2]).unwrap(),
            r#"{"feature":"hour","value":null,"contribution":0.5}"#
        );
        let bad = explanation(vec![f64::NAN, 0.0, 0.0]);
        let err = Reasons::new(&schema, &[1.0, 0.0, 0.0], &bad, 1, 4).unwrap_err();
        assert!(
            matches!(&err, ApiError::BadInput { row: Some(5), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn extras_go_beside_the_lab_shape_in_every_format() {
        let schema = Schema::lab();
        let row = [0f32; 29];
        let mut c = vec![0.0; 29];
        c[13] = 1.25;
        c[3] = -0.5;
        let e = explanation(c);
        let extras = Extras {
            outputs: &[],
            model: Some("gbdt"),
            decisions: Some(vec![Decision::new(0.75, 0.5, Some(100.0))]),
            explanations: Some(vec![Reasons::new(&schema, &row, &e, 2, 0).unwrap()]),
        };
        let json =
            String::from_utf8(render(ResponseFormat::Json, &s(&[0.75]), 0.5, &extras).unwrap())
                .unwrap();
        assert_eq!(
            json,
            r#"{"result":{"classifications":[{"classes":[{"label":"0","score":0.25},{"label":"1","score":0.75}]}],"model":"gbdt","decisions":[{"action":"review","expected_loss":75.0}],"explanations":[{"space":"log_odds","base":-2.0,"value":-1.25,"reasons":[{"feature":"V14","value":0.0,"contribution":1.25},{"feature":"V4","value":0.0,"contribution":-0.5}]}]}}"#
        );
        let csv =
            String::from_utf8(render(ResponseFormat::Csv, &s(&[0.75]), 0.5, &extras).unwrap())
                .unwrap();
        assert_eq!(csv, "0.75,1,review,75.0,-2.0,V14,1.25,V4,-0.5");
        let jsonl = String::from_utf8(
            render(ResponseFormat::JsonLines, &s(&[0.75]), 0.5, &extras).unwrap(),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&jsonl).unwrap();
        assert_eq!(v["decision"]["action"], "review");
        assert_eq!(v["explanation"]["reasons"][0]["feature"], "V14");
        // with SAGEMAKER_INFERENCE_OUTPUT's keys the extras stay on the line
        let keyed = Extras {
            outputs: &[OutputKey::Probability],
            model: Some("gbdt"),
            decisions: Some(vec![Decision::new(0.75, 0.5, Some(100.0))]),
            explanations: Some(vec![Reasons::new(&schema, &row, &e, 2, 0).unwrap()]),
        };
        let jsonl = render(ResponseFormat::JsonLines, &s(&[0.75]), 0.5, &keyed).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&jsonl).unwrap();
        assert_eq!(v["probability"], 0.75);
        assert_eq!(v["decision"]["action"], "review");
        assert_eq!(v["explanation"]["reasons"][0]["feature"], "V14");
        // decisions alone; an unknown amount leaves the CSV field empty
        let only = Extras {
            outputs: &[],
            model: Some("dnn"),
            decisions: Some(vec![Decision::new(0.1, 0.5, None)]),
            explanations: None,
        };
        let csv = String::from_utf8(render(ResponseFormat::Csv, &s(&[0.1]), 0.5, &only).unwrap())
            .unwrap();
        assert_eq!(csv, "0.1,0,approve,");
    }

    #[test]
    fn inference_output_keys_select_what_lines_hold() {
        use OutputKey::*;
        assert_eq!(
            OutputKey::parse_list("predicted_label, Probability").unwrap(),
            [PredictedLabel, Probability]
        );
        assert_eq!(
            OutputKey::parse_list("labels,probabilities,probability,predicted_label")
                .unwrap()
                .len(),
            4
        );
        for bad in ["", "probability,", "score", "probability,probability"] {
            assert!(OutputKey::parse_list(bad).is_err(), "{bad}");
        }
        let all = [PredictedLabel, Probability, Probabilities, Labels];
        let extras = Extras {
            outputs: &all,
            ..Extras::default()
        };
        let csv = render(ResponseFormat::Csv, &s(&[0.75, 0.25]), 0.5, &extras).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "1,0.75,\"[0.25, 0.75]\",\"['0', '1']\"\n0,0.25,\"[0.75, 0.25]\",\"['0', '1']\""
        );
        let two = Extras {
            outputs: &[Probability, PredictedLabel],
            decisions: Some(vec![Decision::new(0.75, 0.5, None)]),
            ..Extras::default()
        };
        let csv = render(ResponseFormat::Csv, &s(&[0.75]), 0.5, &two).unwrap();
        assert_eq!(String::from_utf8(csv).unwrap(), "0.75,1,review,");
        let jsonl = render(ResponseFormat::JsonLines, &s(&[0.75]), 0.5, &extras).unwrap();
        assert_eq!(
            String::from_utf8(jsonl).unwrap(),
            r#"{"predicted_label":1,"probability":0.75,"probabilities":[0.25,0.75],"labels":["0","1"]}"#
        );
        // JSON keeps the lab's shape whatever the keys
        let json = render(ResponseFormat::Json, &s(&[0.75]), 0.5, &extras).unwrap();
        assert_eq!(
            json,
            render(ResponseFormat::Json, &s(&[0.75]), 0.5, &Extras::default()).unwrap()
        );
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        let mut out = Vec::new();
        csv_field(&mut out, "plain");
        out.push(b'|');
        csv_field(&mut out, "a,\"b\"");
        assert_eq!(String::from_utf8(out).unwrap(), "plain|\"a,\"\"b\"\"\"");
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
        ResponseFormat::from_request(&req.to_http_request(), ResponseFormat::Json)
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
        // SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: no Accept, a blank one or */*
        let mut none = TestRequest::default().to_http_request();
        assert_eq!(ResponseFormat::from_request(&none, Csv).unwrap(), Csv);
        none = TestRequest::default()
            .append_header((header::ACCEPT, "*/*"))
            .to_http_request();
        assert_eq!(
            ResponseFormat::from_request(&none, JsonLines).unwrap(),
            JsonLines
        );
        none = TestRequest::default()
            .append_header((header::ACCEPT, "application/json"))
            .to_http_request();
        assert_eq!(ResponseFormat::from_request(&none, Csv).unwrap(), Json);
        assert_eq!(ResponseFormat::parse_default("text/csv").unwrap(), Csv);
        assert_eq!(
            ResponseFormat::parse_default(" application/jsonlines ").unwrap(),
            JsonLines
        );
        assert_eq!(
            ResponseFormat::parse_default("application/json; charset=utf-8").unwrap(),
            Json
        );
        for bad in ["", "*/*", "text/*", "image/png", "csv"] {
            assert_eq!(ResponseFormat::parse_default(bad), None, "{bad}");
        }
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

//! TensorFlow Serving's REST API, so an unmodified TF Serving client (or
//! SageMaker's `TensorFlowPredictor`) scores with ccfraud:
//!
//! * `GET /v1/models/{name}[/versions/1]` — the model's status
//!   (`model_version_status`, version `1`, `AVAILABLE`);
//! * `GET /v1/models/{name}[/versions/1]/metadata` — the `serving_default`
//!   signature: one input per schema column, the `probability` output;
//! * `POST /v1/models/{name}[/versions/1]:predict` — row format
//!   `{"instances": [row, …]}` answers `{"predictions": [p, …]}`; columnar
//!   format `{"inputs": …}` answers `{"outputs": [p, …]}` (`inputs` is a
//!   list of rows, or an object of named columns each holding one value
//!   per row); `p` is the fraud probability;
//! * `POST …:classify` and `…:regress` — `{"examples": [{column: value}, …],
//!   "context"?: {column: value}}` (a feature value may be wrapped in a
//!   one-item list, as `tf.Example` features are) answer
//!   `{"result": [[["0", 1 − p], ["1", p]], …]}` and `{"result": [p, …]}`.
//!
//! `signature_name` may be given and must name the one signature,
//! `serving_default` (or be empty, TF Serving's default). A row is a list
//! of the schema's values or an object of named columns, exactly as on
//! `/invocations`: every body is turned into rows by [`super::super::request`],
//! so validation and its messages are the same everywhere.
//!
//! Through `/invocations`, SageMaker's TensorFlow container protocol is
//! honoured too: the custom attribute `tfs-method=predict|classify|regress`
//! makes the body one of the requests above and the answer its TF Serving
//! shape; `tfs-model-name` must name the served model (and alone asks for
//! `predict`, the TF container's default); `tfs-model-version` must be `1`.

use super::{shape, write_object, ModelName, Pairs, VERSION};
use crate::schema::Schema;
use crate::serve::error::ApiError;
use crate::serve::request::{self, Format};
use crate::serve::response::Score;
use crate::serve::{admit, json, predict, resource, scored, scoring_post, State};
use actix_web::http::Method as Verb;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Instant;

/// Mounts `/v1/models/…`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(
        "/v1/models/{tail:.*}",
        [web::get().to(get), scoring_post(call)],
    ));
}

async fn get(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    match super::target(&req, &state.name, Path::parse)? {
        Target::Status => Ok(HttpResponse::Ok().json(status())),
        Target::Metadata => {
            Ok(HttpResponse::Ok().json(metadata(&state.name, state.model.schema())))
        }
        Target::Call(_) => Err(ApiError::MethodNotAllowed(Verb::GET)),
    }
}

async fn call(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    let Target::Call(method) = super::target(req, &state.name, Path::parse)? else {
        return Err(ApiError::MethodNotAllowed(Verb::POST));
    };
    admit(req, state)?;
    let observer = crate::serve::metrics::Observer::of(req);
    let out = scored(req, payload, state, received, false, move |st, body| {
        answer(method, body, st.model.schema_arc(), |rows| {
            predict(&st.model, &observer, rows)
        })
    })
    .await?;
    Ok(json(out))
}

/// The one signature a model is served with.
pub const SIGNATURE: &str = "serving_default";

/// `Ok` for the served signature (or an empty name, the default).
pub fn check_signature(name: &str) -> Result<(), ApiError> {
    match name {
        "" | SIGNATURE => Ok(()),
        other => Err(ApiError::bad(
            format!(
                "signature_name '{}' is not served: the model's one signature is '{SIGNATURE}'",
                other.escape_debug()
            ),
            None,
            Some("signature_name"),
        )),
    }
}

/// TF Serving's verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Predict,
    Classify,
    Regress,
}

impl Method {
    fn parse(verb: &str) -> Option<Method> {
        match verb {
            "predict" => Some(Method::Predict),
            "classify" => Some(Method::Classify),
            "regress" => Some(Method::Regress),
            _ => None,
        }
    }

    /// SageMaker's TF container attributes (`tfs-method`, `tfs-model-name`,
    /// `tfs-model-version`, split by `,` or `;`): the method asked, if any,
    /// once the model and version they name are checked against `served`.
    /// A model or version named without a method asks for `predict`, as
    /// the TF container's default is (the SDK's `TensorFlowPredictor` sends
    /// only `tfs-model-name` when it predicts).
    pub fn from_attributes(header: &str, served: &ModelName) -> Result<Option<Method>, ApiError> {
        let (mut method, mut name, mut version) = (None, None, None);
        for pair in header.split([';', ',']) {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "tfs-method" => {
                    method = Some(Method::parse(v).ok_or_else(|| {
                        ApiError::bad(
                            format!(
                                "tfs-method '{}' is not one of predict, classify, regress",
                                v.escape_debug()
                            ),
                            None,
                            Some("tfs-method"),
                        )
                    })?)
                }
                "tfs-model-name" => name = Some(v),
                "tfs-model-version" => version = Some(v),
                _ => {}
            }
        }
        if name.is_none() && version.is_none() {
            return Ok(method);
        }
        served.check(name.unwrap_or(served.as_str()), version)?;
        // a TF container client: its requests are predictions by default
        Ok(Some(method.unwrap_or(Method::Predict)))
    }
}

/// What a `/v1/models/…` path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Status,
    Metadata,
    Call(Method),
}

/// A parsed `/v1/models/{tail}`: the model, the version if named, the
/// target.
pub type Path<'p> = super::Path<'p, Target>;

impl<'p> super::Path<'p, Target> {
    /// `name[/versions/V][/metadata | :verb]`; anything else is `None`
    /// (no such route).
    pub fn parse(tail: &'p str) -> Option<Path<'p>> {
        let (rest, verb) = match tail.rsplit_once(':') {
            Some((rest, verb)) => (rest, Some(Method::parse(verb)?)),
            None => (tail, None),
        };
        let (rest, metadata) = match rest.strip_suffix("/metadata") {
            Some(r) if verb.is_none() => (r, true),
            _ => (rest, false),
        };
        let mut parts = rest.split('/');
        let name = parts.next().filter(|n| !n.is_empty())?;
        let version = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some("versions"), Some(v), None) if !v.is_empty() => Some(v),
            _ => return None,
        };
        let target = match (verb, metadata) {
            (Some(m), _) => Target::Call(m),
            (None, true) => Target::Metadata,
            (None, false) => Target::Status,
        };
        Some(Path {
            name,
            version,
            target,
        })
    }
}

/// `GET /v1/models/{name}`: one version, available.
pub fn status() -> serde_json::Value {
    serde_json::json!({
        "model_version_status": [{
            "version": VERSION,
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}
        }]
    })
}

/// `GET /v1/models/{name}/metadata`: the signature's inputs (one per
/// schema column: `DT_FLOAT`, or `DT_STRING` for a categorical one, one
/// value per row) and its output.
pub fn metadata(name: &ModelName, schema: &Schema) -> serde_json::Value {
    let tensor = |dtype: &str, name: &str| serde_json::json!({"dtype": dtype, "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": false}, "name": name});
    let inputs: serde_json::Map<String, serde_json::Value> = schema
        .columns()
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let dtype = if schema.is_categorical(j) {
                "DT_STRING"
            } else {
                "DT_FLOAT"
            };
            (c.name.clone(), tensor(dtype, &c.name))
        })
        .collect();
    serde_json::json!({
        "model_spec": {"name": name.as_str(), "signature_name": "", "version": VERSION},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: {
            "inputs": inputs,
            "outputs": {"probability": tensor("DT_FLOAT", "probability")},
            "method_name": "tensorflow/serving/predict"
        }}}}
    })
}

/// A predict request: rows under `instances` or `inputs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest<'a> {
    #[serde(default)]
    signature_name: Option<String>,
    #[serde(borrow, default)]
    instances: Option<&'a RawValue>,
    #[serde(borrow, default)]
    inputs: Option<&'a RawValue>,
}

/// A classify or regress request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleRequest<'a> {
    #[serde(default)]
    signature_name: Option<String>,
    #[serde(borrow, default)]
    context: Option<Pairs<'a>>,
    #[serde(borrow)]
    examples: Vec<Pairs<'a>>,
}

/// Parses a body for `method` and scores it with `score` (the whole batch
/// at once), answering TF Serving's JSON.
pub fn answer(
    method: Method,
    body: &[u8],
    schema: &Arc<Schema>,
    score: impl FnOnce(&[f32]) -> Result<Vec<Score>, ApiError>,
) -> Result<Vec<u8>, ApiError> {
    let text = request::utf8(body, "body")?;
    match method {
        Method::Predict => {
            let req: PredictRequest =
                serde_json::from_str(text).map_err(|e| shape("a TF Serving predict request", e))?;
            check_signature(req.signature_name.as_deref().unwrap_or(""))?;
            let (rows, columnar) = match (req.instances, req.inputs) {
                (Some(rows), None) => (rows_of(rows, schema)?, false),
                (None, Some(inputs)) => (inputs_of(inputs, schema)?, true),
                _ => {
                    return Err(ApiError::bad(
                        "a predict request holds exactly one of 'instances' (rows) or 'inputs' (columns)",
                        None,
                        None,
                    ))
                }
            };
            let scores = score(&rows)?;
            match columnar {
                false => write(&Predictions {
                    predictions: &scores,
                }),
                true => write(&Outputs { outputs: &scores }),
            }
        }
        Method::Classify | Method::Regress => {
            let req: ExampleRequest = serde_json::from_str(text)
                .map_err(|e| shape("a TF Serving classify or regress request", e))?;
            check_signature(req.signature_name.as_deref().unwrap_or(""))?;
            let rows = examples_of(&req.examples, req.context.as_ref(), schema)?;
            let scores = score(&rows)?;
            match method {
                Method::Regress => write(&Regression { result: &scores }),
                _ => write(&Classification {
                    result: scores
                        .iter()
                        .map(|&p| [("0", p.complement()), ("1", p)])
                        .collect(),
                }),
            }
        }
    }
}

/// A list of rows (`instances`, or `inputs` in its list form).
fn rows_of(raw: &RawValue, schema: &Arc<Schema>) -> Result<Vec<f32>, ApiError> {
    if !raw.get().trim_start().starts_with('[') {
        return Err(ApiError::bad(
            "'instances' must hold a list of rows",
            None,
            Some("instances"),
        ));
    }
    request::parse(Format::Json, raw.get().as_bytes(), schema)
}

/// `inputs`: a list of rows, or an object of named columns, each a list of
/// one value per row (turned into the rows they make).
fn inputs_of(raw: &RawValue, schema: &Arc<Schema>) -> Result<Vec<f32>, ApiError> {
    if !raw.get().trim_start().starts_with('{') {
        return rows_of(raw, schema);
    }
    let columns: Pairs =
        serde_json::from_str(raw.get()).map_err(|e| shape("TF Serving columnar inputs", e))?;
    let mut values: Vec<(&str, Vec<&RawValue>)> = Vec::with_capacity(columns.0.len());
    for (name, v) in &columns.0 {
        let list: Vec<&RawValue> = serde_json::from_str(v.get()).map_err(|_| {
            ApiError::bad(
                format!("inputs: column '{name}' must hold a list of one value per row"),
                None,
                Some(name),
            )
        })?;
        if let Some((first, n)) = values.first().map(|(f, l)| (*f, l.len())) {
            if list.len() != n {
                return Err(ApiError::bad(
                    format!("inputs: column '{name}' holds {} values, column '{first}' {n}: every column needs one value per row", list.len()),
                    None,
                    Some(name),
                ));
            }
        }
        values.push((name, list));
    }
    let n = values.first().map_or(0, |(_, l)| l.len());
    let cap = expansion_cap(raw.get().len());
    let mut text = Vec::with_capacity(raw.get().len() + n * values.len() * 8);
    text.push(b'[');
    for i in 0..n {
        if i > 0 {
            text.push(b',');
        }
        write_object(&mut text, values.iter().map(|(k, l)| (*k, l[i].get())))?;
        if text.len() > cap {
            return Err(too_large("'inputs' columns", cap));
        }
    }
    text.push(b']');
    request::parse(Format::Json, &text, schema)
}

/// The most bytes of rows a body of `sent` bytes may expand into when its
/// columns or its shared `context` are written out row by row: a request
/// must not cost far more memory than it sent.
fn expansion_cap(sent: usize) -> usize {
    8 * sent + (1 << 20)
}

fn too_large(what: &str, cap: usize) -> ApiError {
    ApiError::bad(
        format!("{what} expand to more than {cap} bytes of rows (8 times what was sent, plus 1 MiB): send the rows themselves ('instances')"),
        None,
        None,
    )
}

/// `examples` (each merged with `context`) as named rows; a value wrapped
/// in a one-item list is unwrapped.
fn examples_of(
    examples: &[Pairs<'_>],
    context: Option<&Pairs<'_>>,
    schema: &Arc<Schema>,
) -> Result<Vec<f32>, ApiError> {
    if examples.is_empty() {
        return Err(ApiError::bad(
            "'examples' is empty: send at least one",
            None,
            Some("examples"),
        ));
    }
    let shared = context.map_or(&[][..], |c| &c.0[..]);
    let sent: usize = examples
        .iter()
        .chain(context)
        .flat_map(|e| &e.0)
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let cap = expansion_cap(sent);
    let mut text = Vec::new();
    text.push(b'[');
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        let mut pairs = Vec::with_capacity(shared.len() + example.0.len());
        for (k, v) in shared.iter().chain(&example.0) {
            pairs.push((k.as_ref(), unwrapped(v, i + 1, k)?));
        }
        write_object(&mut text, pairs.into_iter())?;
        if text.len() > cap {
            return Err(too_large("'examples' with their 'context'", cap));
        }
    }
    text.push(b']');
    request::parse(Format::Json, &text, schema)
}

/// A feature value, or the one value of a one-item list.
fn unwrapped<'a>(v: &'a RawValue, row: usize, key: &str) -> Result<&'a str, ApiError> {
    if !v.get().trim_start().starts_with('[') {
        return Ok(v.get());
    }
    let items: Vec<&RawValue> = serde_json::from_str(v.get()).map_err(|e| {
        ApiError::bad(
            format!("row {row}, feature {key}: {e}"),
            Some(row),
            Some(key),
        )
    })?;
    match items[..] {
        [one] => Ok(one.get()),
        _ => Err(ApiError::bad(
            format!(
                "row {row}, feature {key}: expected one value, found a list of {}",
                items.len()
            ),
            Some(row),
            Some(key),
        )),
    }
}

#[derive(Serialize)]
struct Predictions<'a> {
    predictions: &'a [Score],
}

#[derive(Serialize)]
struct Outputs<'a> {
    outputs: &'a [Score],
}

#[derive(Serialize)]
struct Classification {
    result: Vec<[(&'static str, Score); 2]>,
}

#[derive(Serialize)]
struct Regression<'a> {
    result: &'a [Score],
}

/// An answer's bytes.
fn write<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::Internal(format!("cannot render: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Arc<Schema> {
        Arc::new(Schema::lab())
    }

    /// Scores each row as its first value (clamped), so answers are
    /// predictable.
    fn first(rows: &[f32]) -> Result<Vec<Score>, ApiError> {
        Ok(rows
            .chunks(29)
            .map(|r| Score::new(r[0].clamp(0.0, 1.0)).unwrap())
            .collect())
    }

    fn row(v: f32) -> String {
        let mut r = vec![0f32; 29];
        r[0] = v;
        serde_json::to_string(&r).unwrap()
    }

    fn ask(method: Method, body: &str) -> Result<serde_json::Value, ApiError> {
        let out = answer(method, body.as_bytes(), &lab(), first)?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn paths_name_model_version_and_target() {
        let p = Path::parse("ccfraud").unwrap();
        assert_eq!(
            (p.name, p.version, p.target),
            ("ccfraud", None, Target::Status)
        );
        let p = Path::parse("m/versions/1:predict").unwrap();
        assert_eq!(
            (p.name, p.version, p.target),
            ("m", Some("1"), Target::Call(Method::Predict))
        );
        assert_eq!(Path::parse("m/metadata").unwrap().target, Target::Metadata);
        assert_eq!(
            Path::parse("m:classify").unwrap().target,
            Target::Call(Method::Classify)
        );
        assert_eq!(
            Path::parse("m:regress").unwrap().target,
            Target::Call(Method::Regress)
        );
        for bad in [
            "",
            ":predict",
            "m:explode",
            "m/versions",
            "m/versions/",
            "m/labels/x",
            "m/a/b/c",
            "m/metadata:predict",
        ] {
            assert!(Path::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn predict_rows_answer_predictions_and_columns_outputs() {
        let v = ask(
            Method::Predict,
            &format!(r#"{{"instances": [{}, {}]}}"#, row(0.25), row(0.75)),
        )
        .unwrap();
        assert_eq!(v, serde_json::json!({"predictions": [0.25, 0.75]}));
        let v = ask(
            Method::Predict,
            &format!(
                r#"{{"signature_name": "serving_default", "inputs": [{}]}}"#,
                row(0.5)
            ),
        )
        .unwrap();
        assert_eq!(v, serde_json::json!({"outputs": [0.5]}));
        // columnar by name: V1..V28 and Amount_std, one value per row each
        let mut cols: Vec<String> = (1..=28)
            .map(|i| format!(r#""V{i}": [{}, 0]"#, if i == 1 { "0.125" } else { "0" }))
            .collect();
        cols.push(r#""Amount_std": [0, 0]"#.into());
        let v = ask(
            Method::Predict,
            &format!(r#"{{"inputs": {{{}}}}}"#, cols.join(",")),
        )
        .unwrap();
        assert_eq!(v, serde_json::json!({"outputs": [0.125, 0.0]}));
    }

    #[test]
    fn predict_refusals_name_what_is_wrong() {
        let msg = |body: &str| ask(Method::Predict, body).unwrap_err().to_string();
        assert!(msg(r#"{"instances": [[1, 2]]}"#).contains("expected 29 features"));
        assert!(msg(r#"{"signature_name": "other", "instances": []}"#)
            .contains("signature_name 'other'"));
        assert!(
            msg(&format!(r#"{{"instances": [{}], "inputs": []}}"#, row(0.1)))
                .contains("exactly one of")
        );
        assert!(msg("{}").contains("exactly one of"));
        assert!(msg(r#"{"instance": []}"#).contains("unknown field `instance`"));
        assert!(msg(r#"{"instances": 3}"#).contains("list of rows"));
        assert!(msg(r#"{"inputs": {"V1": [1, 2], "V2": [1]}}"#)
            .contains("column 'V2' holds 1 values, column 'V1' 2"));
        assert!(msg(r#"{"inputs": {"V1": 1}}"#).contains("column 'V1' must hold a list"));
        assert!(msg(r#"{"inputs": {"V1": [1]}}"#).contains("missing feature V2"));
        assert!(msg("[1").contains("not a TF Serving predict request"));
    }

    #[test]
    fn classify_and_regress_read_examples_with_context() {
        let example = |v: &str| {
            let mut f: Vec<String> = (2..=28).map(|i| format!(r#""V{i}": [0]"#)).collect();
            f.push(format!(r#""V1": {v}"#));
            format!("{{{}}}", f.join(","))
        };
        let body = format!(
            r#"{{"signature_name": "", "context": {{"Amount_std": 0}}, "examples": [{}, {}]}}"#,
            example("0.25"),
            example("[0.5]")
        );
        let v = ask(Method::Classify, &body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"result": [[["0", 0.75], ["1", 0.25]], [["0", 0.5], ["1", 0.5]]]})
        );
        let v = ask(Method::Regress, &body).unwrap();
        assert_eq!(v, serde_json::json!({"result": [0.25, 0.5]}));
        let msg = |body: &str| ask(Method::Classify, body).unwrap_err().to_string();
        assert!(msg(&body.replace("[0.5]", "[0.5, 1]"))
            .contains("row 2, feature V1: expected one value, found a list of 2"));
        assert!(msg(r#"{"examples": []}"#).contains("'examples' is empty"));
        // a context repeated over many examples may not blow up memory
        let wide: Vec<String> = (1..=28)
            .map(|i| format!(r#""V{i}": {}"#, "1".repeat(300)))
            .collect();
        let many = format!(
            r#"{{"context": {{{}}}, "examples": [{}]}}"#,
            wide.join(","),
            vec!["{}"; 2000].join(",")
        );
        assert!(msg(&many).contains("expand to more than"), "{}", msg(&many));
        // a context feature repeated in an example is refused, not overridden
        assert!(msg(&body.replace(r#""V2": [0]"#, r#""Amount_std": 1"#)).contains("Amount_std"));
    }

    #[test]
    fn sagemaker_attributes_pick_the_method_and_check_the_model() {
        let n = ModelName::default();
        assert_eq!(
            Method::from_attributes("tfs-method=classify", &n).unwrap(),
            Some(Method::Classify)
        );
        assert_eq!(
            Method::from_attributes("explain=3; tfs-method = predict", &n).unwrap(),
            Some(Method::Predict)
        );
        assert_eq!(Method::from_attributes("explain=3", &n).unwrap(), None);
        assert_eq!(
            Method::from_attributes("tfs-model-name=ccfraud,tfs-model-version=1", &n).unwrap(),
            Some(Method::Predict)
        );
        assert_eq!(
            Method::from_attributes("tfs-method=regress;tfs-model-name=ccfraud", &n).unwrap(),
            Some(Method::Regress)
        );
        assert!(Method::from_attributes("tfs-method=explode", &n).is_err());
        assert!(Method::from_attributes("tfs-model-name=other", &n).is_err());
        assert!(Method::from_attributes("tfs-model-version=7", &n).is_err());
    }

    #[test]
    fn metadata_lists_the_schema_columns() {
        let v = metadata(&ModelName::default(), &lab());
        let sig = &v["metadata"]["signature_def"]["signature_def"]["serving_default"];
        assert_eq!(sig["inputs"].as_object().unwrap().len(), 29);
        assert_eq!(sig["inputs"]["V1"]["dtype"], "DT_FLOAT");
        assert_eq!(sig["outputs"]["probability"]["dtype"], "DT_FLOAT");
        assert_eq!(v["model_spec"]["version"], "1");
        assert_eq!(status()["model_version_status"][0]["state"], "AVAILABLE");
    }
}

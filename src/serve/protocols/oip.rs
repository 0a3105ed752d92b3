//! The Open Inference Protocol v2 (KServe, Seldon MLServer, Triton), so
//! their clients (`tritonclient[http]`, KServe's `InferenceRESTClient`)
//! score with ccfraud unmodified:
//!
//! * `GET /v2` — server metadata; `GET /v2/health/live`, `/v2/health/ready`;
//! * `GET /v2/models/{name}[/versions/1]` — model metadata (inputs and
//!   outputs); `GET …/ready`;
//! * `POST /v2/models/{name}[/versions/1]/infer` — either one input of
//!   shape `[N, D]` (or `[D]` for one row; D the schema's column count, any
//!   name, e.g. `features`) holding the rows in schema order, or one input
//!   per schema column, named as the column, of shape `[N]` or `[N, 1]`
//!   (`BYTES` for a categorical column: its value's text). Numbers come as
//!   `FP32`, `FP64` or an integer type, in `data` (flat or nested, row
//!   major) or in the binary tensor extension (`Inference-Header-Content-
//!   Length` header, `binary_data_size` parameters; little-endian). A `NaN`
//!   (possible only in binary data) is a missing value, as in CSV.
//!   Outputs: `probability` (`FP32 [N]`, the fraud probability) and
//!   `predicted_label` (`INT64 [N]`, 1 at or above the model's threshold);
//!   a request's `outputs` picks among them. The answer is JSON (clients
//!   read JSON outputs whatever binary output they asked for).
//!
//! Every value goes through the same checks as a JSON or CSV row (finite,
//! within f32, categories coded by the schema), and every refusal names the
//! input and the element.

use super::{shape, ModelName, VERSION};
use crate::data::csv::{check_number, Shown};
use crate::schema::Schema;
use crate::serve::error::ApiError;
use crate::serve::response::Score;
use crate::serve::{admit, json, predict, resource, scored, scoring_post, State};
use actix_web::http::Method as Verb;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::time::Instant;

/// Mounts `/v2` and everything under it.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let get = |path: &str, f: fn() -> serde_json::Value| {
        resource(
            path,
            [web::get().to(move || async move { HttpResponse::Ok().json(f()) })],
        )
    };
    cfg.service(get("/v2", server_metadata))
        .service(get("/v2/health/live", || serde_json::json!({"live": true})))
        .service(get(
            "/v2/health/ready",
            || serde_json::json!({"ready": true}),
        ))
        .service(resource(
            "/v2/models/{tail:.*}",
            [web::get().to(model), scoring_post(call)],
        ));
}

async fn model(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    match super::target(&req, &state.name, Path::parse)? {
        Target::Metadata => {
            Ok(HttpResponse::Ok().json(model_metadata(&state.name, state.model.schema())))
        }
        Target::Ready => Ok(HttpResponse::Ok()
            .json(serde_json::json!({"name": state.name.as_str(), "ready": true}))),
        Target::Infer => Err(ApiError::MethodNotAllowed(Verb::GET)),
    }
}

async fn call(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    if super::target(req, &state.name, Path::parse)? != Target::Infer {
        return Err(ApiError::MethodNotAllowed(Verb::POST));
    }
    admit(req, state)?;
    let header_length = match req.headers().get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::bad(
                        format!("{HEADER_LENGTH} must be a byte count"),
                        None,
                        Some(HEADER_LENGTH),
                    )
                })?,
        ),
    };
    let observer = crate::serve::metrics::Observer::of(req);
    let out = scored(req, payload, state, received, false, move |st, body| {
        let model = &st.model;
        infer(
            &st.name,
            body,
            header_length,
            model.schema(),
            model.threshold(),
            |rows| predict(model, &observer, rows),
        )
    })
    .await?;
    Ok(json(out))
}

/// The header of the binary tensor extension: the JSON part's length.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The outputs a model answers.
const OUTPUTS: [&str; 2] = ["probability", "predicted_label"];

/// `GET /v2`.
pub fn server_metadata() -> serde_json::Value {
    serde_json::json!({
        "name": "ccfraud",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"]
    })
}

/// `GET /v2/models/{name}`: the single-tensor input (the per-column form
/// is in the module doc) and both outputs.
pub fn model_metadata(name: &ModelName, schema: &Schema) -> serde_json::Value {
    serde_json::json!({
        "name": name.as_str(),
        "versions": [VERSION],
        "platform": "ccfraud",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, schema.n_columns()]}],
        "outputs": [
            {"name": OUTPUTS[0], "datatype": "FP32", "shape": [-1]},
            {"name": OUTPUTS[1], "datatype": "INT64", "shape": [-1]}
        ]
    })
}

/// What a `/v2/models/{tail}` path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Metadata,
    Ready,
    Infer,
}

/// A parsed `/v2/models/{tail}`.
pub type Path<'p> = super::Path<'p, Target>;

impl<'p> super::Path<'p, Target> {
    /// `name[/versions/V][/ready | /infer]`; anything else is `None`.
    pub fn parse(tail: &'p str) -> Option<Path<'p>> {
        let parts: Vec<&str> = tail.split('/').collect();
        let (name, rest) = parts.split_first()?;
        if name.is_empty() {
            return None;
        }
        let (version, rest) = match rest {
            ["versions", v, rest @ ..] if !v.is_empty() => (Some(*v), rest),
            _ => (None, rest),
        };
        let target = match rest {
            [] => Target::Metadata,
            ["ready"] => Target::Ready,
            ["infer"] => Target::Infer,
            _ => return None,
        };
        Some(Path {
            name,
            version,
            target,
        })
    }
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow)]
    inputs: Vec<Input<'a>>,
    #[serde(default)]
    outputs: Option<Vec<Requested>>,
    #[serde(borrow, default, rename = "parameters")]
    _parameters: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Input<'a> {
    name: String,
    shape: Vec<u64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    binary_data_size: Option<usize>,
}

#[derive(Deserialize)]
struct Requested {
    name: String,
}

/// One tensor element.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Num(f64),
    Text(String),
}

/// An element type of the protocol that this server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
    /// Signed integers of this many bytes.
    Int(usize),
    /// Unsigned integers of this many bytes.
    UInt(usize),
    Bytes,
}

impl Dtype {
    fn parse(name: &str) -> Option<Dtype> {
        Some(match name {
            "FP32" => Dtype::F32,
            "FP64" => Dtype::F64,
            "INT8" => Dtype::Int(1),
            "INT16" => Dtype::Int(2),
            "INT32" => Dtype::Int(4),
            "INT64" => Dtype::Int(8),
            "UINT8" => Dtype::UInt(1),
            "UINT16" => Dtype::UInt(2),
            "UINT32" => Dtype::UInt(4),
            "UINT64" => Dtype::UInt(8),
            "BYTES" => Dtype::Bytes,
            _ => return None,
        })
    }

    /// Decodes binary tensor data (little-endian; `BYTES` elements are a
    /// 4-byte length and the bytes).
    fn decode(self, raw: &[u8]) -> Result<Vec<Cell>, String> {
        let fixed = |size: usize, f: &dyn Fn(&[u8]) -> f64| {
            if !raw.len().is_multiple_of(size) {
                return Err(format!(
                    "{} bytes is not a whole number of {size}-byte elements",
                    raw.len()
                ));
            }
            Ok(raw.chunks_exact(size).map(|c| Cell::Num(f(c))).collect())
        };
        let int = |c: &[u8]| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            if c.last().is_some_and(|l| l & 0x80 != 0) {
                b[c.len()..].fill(0xff);
            }
            i64::from_le_bytes(b) as f64
        };
        let uint = |c: &[u8]| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b) as f64
        };
        match self {
            Dtype::F32 => fixed(4, &|c| {
                f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            }),
            Dtype::F64 => fixed(8, &|c| {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            }),
            Dtype::Int(n) => fixed(n, &int),
            Dtype::UInt(n) => fixed(n, &uint),
            Dtype::Bytes => {
                let mut cells = Vec::new();
                let mut rest = raw;
                while !rest.is_empty() {
                    let (len, tail) = rest
                        .split_first_chunk::<4>()
                        .ok_or("a BYTES element's length is cut short")?;
                    let len = u32::from_le_bytes(*len) as usize;
                    let bytes = tail.get(..len).ok_or("a BYTES element is cut short")?;
                    let text =
                        std::str::from_utf8(bytes).map_err(|_| "a BYTES element is not UTF-8")?;
                    cells.push(Cell::Text(text.to_string()));
                    rest = &tail[len..];
                }
                Ok(cells)
            }
        }
    }
}

/// Reads `data` (nested lists or flat) into its elements: numbers for a
/// numeric type, strings for `BYTES`.
struct Flatten<'v> {
    out: &'v mut Vec<Cell>,
    bytes: bool,
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.bytes { "strings" } else { "numbers" })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let bytes = self.bytes;
        while seq
            .next_element_seed(Flatten {
                out: &mut *self.out,
                bytes,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.out.push(match self.bytes {
            true => Cell::Text(v.to_string()),
            false => Cell::Num(v),
        });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out.push(match self.bytes {
            true => Cell::Text(v.to_string()),
            false => Cell::Num(v as f64),
        });
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out.push(match self.bytes {
            true => Cell::Text(v.to_string()),
            false => Cell::Num(v as f64),
        });
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.bytes {
            true => {
                self.out.push(Cell::Text(v.to_string()));
                Ok(())
            }
            false => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
        }
    }
}

/// Refuses a request about one input.
fn refused(input: &str, why: impl fmt::Display) -> ApiError {
    ApiError::bad(format!("input '{input}': {why}"), None, Some(input))
}

/// An input's elements, from `data` or from the binary part (`binary`,
/// consumed in input order).
fn cells(input: &Input<'_>, dtype: Dtype, binary: &mut &[u8]) -> Result<Vec<Cell>, ApiError> {
    let size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
    match (size, input.data) {
        (Some(n), None) => {
            if binary.len() < n {
                return Err(refused(
                    &input.name,
                    format!(
                        "binary_data_size {n} is more than the {} binary bytes left",
                        binary.len()
                    ),
                ));
            }
            let (mine, rest) = binary.split_at(n);
            *binary = rest;
            dtype.decode(mine).map_err(|e| refused(&input.name, e))
        }
        (None, Some(data)) => {
            let mut out = Vec::new();
            let mut de = serde_json::Deserializer::from_str(data.get());
            Flatten {
                out: &mut out,
                bytes: dtype == Dtype::Bytes,
            }
            .deserialize(&mut de)
            .map_err(|e| refused(&input.name, format!("data: {e}")))?;
            Ok(out)
        }
        (Some(_), Some(_)) => Err(refused(
            &input.name,
            "give data or binary_data_size, not both",
        )),
        (None, None) => Err(refused(&input.name, "no data (and no binary_data_size)")),
    }
}

/// The encoded value of one element in schema column `j`.
fn encode(schema: &Schema, j: usize, cell: &Cell, input: &str, at: &str) -> Result<f32, ApiError> {
    let column = &schema.columns()[j].name;
    let categorical = schema.is_categorical(j);
    match cell {
        Cell::Num(v) if v.is_nan() => Ok(f32::NAN),
        Cell::Num(v) if categorical => Ok(schema.code(j, &v.to_string()).unwrap_or(f32::NAN)),
        Cell::Num(v) => check_number(*v, || Shown::number(*v))
            .map(|v| v as f32)
            .map_err(|p| refused(input, format!("{at} (column {column}): {p}"))),
        Cell::Text(t) if categorical => match t.trim() {
            "" => Ok(f32::NAN),
            t => Ok(schema.code(j, t).unwrap_or(f32::NAN)),
        },
        Cell::Text(_) => Err(refused(
            input,
            format!("{at}: column {column} is numeric: send it as FP32, FP64 or an integer type"),
        )),
    }
}

/// The rows an infer request's inputs make (row-major, schema order).
fn rows(inputs: &[Input<'_>], binary: &[u8], schema: &Schema) -> Result<Vec<f32>, ApiError> {
    let d = schema.n_columns();
    let mut binary = binary;
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let dtype = Dtype::parse(&input.datatype).ok_or_else(|| {
            refused(&input.name, format!("datatype '{}' is not read here (FP32, FP64, INT8..INT64, UINT8..UINT64, BYTES)", input.datatype.escape_debug()))
        })?;
        let cells = cells(input, dtype, &mut binary)?;
        let want = input.shape.iter().try_fold(1u64, |a, &s| a.checked_mul(s));
        if want != Some(cells.len() as u64) {
            return Err(refused(
                &input.name,
                format!(
                    "shape {:?} does not hold the {} elements sent",
                    input.shape,
                    cells.len()
                ),
            ));
        }
        tensors.push((input, cells));
    }
    if !binary.is_empty() {
        return Err(ApiError::bad(
            format!(
                "{} binary bytes are not claimed by any input's binary_data_size",
                binary.len()
            ),
            None,
            None,
        ));
    }
    let single = match &tensors[..] {
        [(input, _)] => schema.position(&input.name).is_none(),
        _ => false,
    };
    if single {
        let (input, cells) = &tensors[0];
        let n = match input.shape[..] {
            [n, w] if w as usize == d => n as usize,
            [w] if w as usize == d => 1,
            _ => {
                return Err(refused(&input.name, format!("shape {:?} is not [N, {d}] (rows of the model's {d} columns, in schema order: {})", input.shape, schema.names().collect::<Vec<_>>().join(", "))))
            }
        };
        let mut out = Vec::with_capacity(n * d);
        for (i, cell) in cells.iter().enumerate() {
            let at = format!("element [{}, {}]", i / d, i % d);
            out.push(encode(schema, i % d, cell, &input.name, &at)?);
        }
        return non_empty(out);
    }
    // one input per column; under the lab's schema `Amount` is the raw
    // amount (standardized here, as in a JSON named row) and `Amount_std`
    // the standardized one
    let mut columns: Vec<Option<(&Vec<Cell>, bool)>> = vec![None; d];
    let mut n = None;
    for (input, cells) in &tensors {
        let (j, raw) = match (schema.is_lab(), input.name.as_str()) {
            (true, "Amount") => (d - 1, true),
            (true, "Amount_std") => (d - 1, false),
            (_, name) => (
                schema.position(name).ok_or_else(|| {
                    refused(name, format!("not a column of the model: send one input of shape [N, {d}], or one input per column named as the column"))
                })?,
                false,
            ),
        };
        if columns[j].replace((cells, raw)).is_some() {
            return Err(refused(
                &input.name,
                "given twice (or with its other amount form)",
            ));
        }
        let rows = match input.shape[..] {
            [r] | [r, 1] => r as usize,
            _ => {
                return Err(refused(
                    &input.name,
                    format!("shape {:?} is not [N] or [N, 1]", input.shape),
                ))
            }
        };
        if *n.get_or_insert(rows) != rows {
            return Err(refused(
                &input.name,
                format!("{rows} rows where the other inputs have {}", n.unwrap_or(0)),
            ));
        }
    }
    if let Some(j) = columns.iter().position(Option::is_none) {
        let column = &schema.columns()[j].name;
        return Err(ApiError::bad(
            format!("no input for column '{column}': every column needs one"),
            None,
            Some(column),
        ));
    }
    let n = n.unwrap_or(0);
    let mut out = vec![0f32; n * d];
    for (j, column) in columns.iter().enumerate() {
        let Some((cells, raw)) = column else { continue };
        let name = &schema.columns()[j].name;
        for (i, cell) in cells.iter().enumerate() {
            let v = encode(schema, j, cell, name, &format!("element [{i}]"))?;
            out[i * d + j] = match raw {
                true => crate::data::standardize_amount(f64::from(v)) as f32,
                false => v,
            };
        }
    }
    non_empty(out)
}

fn non_empty(rows: Vec<f32>) -> Result<Vec<f32>, ApiError> {
    match rows.is_empty() {
        true => Err(ApiError::bad(
            "no transactions in the request (N = 0)",
            None,
            None,
        )),
        false => Ok(rows),
    }
}

#[derive(Serialize)]
struct Response<'a> {
    model_name: &'a str,
    model_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<Output<'a>>,
}

#[derive(Serialize)]
struct Output<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: [usize; 1],
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Probability(&'a [Score]),
    Label(Vec<u8>),
}

/// Answers one infer request: `body` is its JSON, or, with the binary
/// extension, `header_length` bytes of JSON followed by the tensors.
pub fn infer(
    name: &ModelName,
    body: &[u8],
    header_length: Option<usize>,
    schema: &Schema,
    threshold: f64,
    score: impl FnOnce(&[f32]) -> Result<Vec<Score>, ApiError>,
) -> Result<Vec<u8>, ApiError> {
    let (json, binary) = match header_length {
        Some(n) if n > body.len() => {
            return Err(ApiError::bad(
                format!(
                    "{HEADER_LENGTH} {n} is more than the body's {} bytes",
                    body.len()
                ),
                None,
                None,
            ))
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let text = crate::serve::request::utf8(json, "the JSON part")?;
    let req: Request = serde_json::from_str(text)
        .map_err(|e| shape("an Open Inference Protocol v2 request", e))?;
    if req.inputs.is_empty() {
        return Err(ApiError::bad("'inputs' is empty", None, Some("inputs")));
    }
    let wanted: Vec<&'static str> = match &req.outputs {
        None => OUTPUTS.to_vec(),
        Some(list) => list
            .iter()
            .map(|o| {
                OUTPUTS
                    .iter()
                    .copied()
                    .find(|k| *k == o.name)
                    .ok_or_else(|| {
                        ApiError::bad(
                            format!(
                                "unknown output '{}' (outputs: probability, predicted_label)",
                                o.name.escape_debug()
                            ),
                            None,
                            Some("outputs"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let rows = rows(&req.inputs, binary, schema)?;
    let scores = score(&rows)?;
    let n = scores.len();
    let outputs = wanted
        .into_iter()
        .map(|k| match k {
            "probability" => Output {
                name: "probability",
                datatype: "FP32",
                shape: [n],
                data: Data::Probability(&scores),
            },
            _ => Output {
                name: "predicted_label",
                datatype: "INT64",
                shape: [n],
                data: Data::Label(
                    scores
                        .iter()
                        .map(|s| u8::from(f64::from(s.get()) >= threshold))
                        .collect(),
                ),
            },
        })
        .collect();
    serde_json::to_vec(&Response {
        model_name: name.as_str(),
        model_version: VERSION,
        id: req.id.as_deref(),
        outputs,
    })
    .map_err(|e| ApiError::Internal(format!("cannot render: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Schema {
        Schema::lab()
    }

    /// Scores each row as its first value (clamped).
    fn first(rows: &[f32]) -> Result<Vec<Score>, ApiError> {
        Ok(rows
            .chunks(29)
            .map(|r| Score::new(r[0].clamp(0.0, 1.0)).unwrap())
            .collect())
    }

    fn ask(body: &str) -> Result<serde_json::Value, ApiError> {
        let out = infer(
            &ModelName::default(),
            body.as_bytes(),
            None,
            &lab(),
            0.5,
            first,
        )?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    fn flat(first_values: &[f32]) -> String {
        let mut data = Vec::new();
        for v in first_values {
            data.push(*v);
            data.extend([0f32; 28]);
        }
        serde_json::to_string(&data).unwrap()
    }

    #[test]
    fn datatypes_are_the_protocols_names() {
        let all = [
            ("FP32", Dtype::F32),
            ("FP64", Dtype::F64),
            ("INT8", Dtype::Int(1)),
            ("INT16", Dtype::Int(2)),
            ("INT32", Dtype::Int(4)),
            ("INT64", Dtype::Int(8)),
            ("UINT8", Dtype::UInt(1)),
            ("UINT16", Dtype::UInt(2)),
            ("UINT32", Dtype::UInt(4)),
            ("UINT64", Dtype::UInt(8)),
            ("BYTES", Dtype::Bytes),
        ];
        for (name, dtype) in all {
            assert_eq!(Dtype::parse(name), Some(dtype), "{name}");
        }
        for bad in ["FP16", "BF16", "BOOL", "fp32", ""] {
            assert_eq!(Dtype::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Dtype::Int(8).decode(&(-3i64).to_le_bytes()).unwrap(),
            [Cell::Num(-3.0)]
        );
        assert_eq!(
            Dtype::F64.decode(&0.25f64.to_le_bytes()).unwrap(),
            [Cell::Num(0.25)]
        );
    }

    #[test]
    fn metadata_names_the_tensors() {
        let m = model_metadata(&ModelName::parse("fraud").unwrap(), &lab());
        assert_eq!(m["name"], "fraud");
        assert_eq!(m["versions"], serde_json::json!(["1"]));
        assert_eq!(
            m["inputs"],
            serde_json::json!([{"name": "features", "datatype": "FP32", "shape": [-1, 29]}])
        );
        assert_eq!(m["outputs"][0]["name"], "probability");
        assert_eq!(m["outputs"][1]["datatype"], "INT64");
        assert_eq!(
            server_metadata()["extensions"],
            serde_json::json!(["binary_tensor_data"])
        );
    }

    #[test]
    fn paths() {
        let p = Path::parse("m").unwrap();
        assert_eq!((p.name, p.version, p.target), ("m", None, Target::Metadata));
        let p = Path::parse("m/versions/1/infer").unwrap();
        assert_eq!(
            (p.name, p.version, p.target),
            ("m", Some("1"), Target::Infer)
        );
        assert_eq!(Path::parse("m/ready").unwrap().target, Target::Ready);
        for bad in ["", "/infer", "m/infer/x", "m/versions//infer", "m/other"] {
            assert!(Path::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn one_tensor_of_rows_answers_both_outputs() {
        let body = format!(
            r#"{{"id": "r1", "inputs": [{{"name": "features", "shape": [2, 29], "datatype": "FP32", "data": {}}}]}}"#,
            flat(&[0.25, 0.75])
        );
        let v = ask(&body).unwrap();
        assert_eq!(v["model_name"], "ccfraud");
        assert_eq!(v["model_version"], "1");
        assert_eq!(v["id"], "r1");
        assert_eq!(
            v["outputs"][0],
            serde_json::json!({"name": "probability", "datatype": "FP32", "shape": [2], "data": [0.25, 0.75]})
        );
        assert_eq!(
            v["outputs"][1],
            serde_json::json!({"name": "predicted_label", "datatype": "INT64", "shape": [2], "data": [0, 1]})
        );
        // nested data, one row as shape [29], one output asked
        let mut row = vec![0f32; 29];
        row[0] = 0.5;
        let body = format!(
            r#"{{"inputs": [{{"name": "x", "shape": [29], "datatype": "FP64", "data": [{}]}}], "outputs": [{{"name": "probability"}}]}}"#,
            serde_json::to_string(&row).unwrap()
        );
        let v = ask(&body).unwrap();
        assert_eq!(v["outputs"].as_array().unwrap().len(), 1);
        assert_eq!(v["outputs"][0]["data"], serde_json::json!([0.5]));
    }

    #[test]
    fn binary_tensors_decode_little_endian() {
        let mut rows = vec![0f32; 58];
        rows[0] = 0.125;
        rows[30] = f32::NAN; // missing
        let bin: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        let json = format!(
            r#"{{"inputs": [{{"name": "features", "shape": [2, 29], "datatype": "FP32", "parameters": {{"binary_data_size": {}}}}}]}}"#,
            bin.len()
        );
        let mut body = json.clone().into_bytes();
        body.extend(&bin);
        let seen = std::cell::RefCell::new(Vec::new());
        let out = infer(
            &ModelName::default(),
            &body,
            Some(json.len()),
            &lab(),
            0.5,
            |r| {
                seen.borrow_mut().extend_from_slice(r);
                first(r)
            },
        )
        .unwrap();
        let seen = seen.into_inner();
        assert_eq!(seen[0], 0.125);
        assert!(seen[30].is_nan());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["outputs"][0]["shape"], serde_json::json!([2]));
        assert_eq!(
            Dtype::Int(2).decode(&[0xfe, 0xff, 5, 0]).unwrap(),
            [Cell::Num(-2.0), Cell::Num(5.0)]
        );
        assert_eq!(
            Dtype::UInt(2).decode(&[0xfe, 0xff]).unwrap(),
            [Cell::Num(65534.0)]
        );
        assert_eq!(
            Dtype::Bytes.decode(&[2, 0, 0, 0, b'h', b'i']).unwrap(),
            [Cell::Text("hi".into())]
        );
        assert!(Dtype::Bytes.decode(&[9, 0, 0, 0, b'h']).is_err());
        assert!(Dtype::F32.decode(&[0, 0, 0]).is_err());
        // too few bytes, unclaimed bytes
        assert!(infer(
            &ModelName::default(),
            &body,
            Some(json.len() + 4),
            &lab(),
            0.5,
            first
        )
        .is_err());
        let mut extra = body.clone();
        extra.push(0);
        let e = infer(
            &ModelName::default(),
            &extra,
            Some(json.len()),
            &lab(),
            0.5,
            first,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not claimed"), "{e}");
    }

    #[test]
    fn one_input_per_column_by_name() {
        let mut inputs: Vec<String> = (1..=28)
            .map(|i| {
                format!(
                    r#"{{"name": "V{i}", "shape": [2], "datatype": "FP32", "data": [{}, 0]}}"#,
                    if i == 1 { "0.375" } else { "0" }
                )
            })
            .collect();
        inputs.push(
            r#"{"name": "Amount_std", "shape": [2, 1], "datatype": "INT32", "data": [[0], [0]]}"#
                .into(),
        );
        let body = format!(r#"{{"inputs": [{}]}}"#, inputs.join(","));
        let v = ask(&body).unwrap();
        assert_eq!(v["outputs"][0]["data"], serde_json::json!([0.375, 0.0]));
        let msg = |b: &str| ask(b).unwrap_err().to_string();
        assert!(msg(&body.replace(r#""name": "V7""#, r#""name": "V1""#)).contains("given twice"));
        assert!(
            msg(&format!(r#"{{"inputs": [{}]}}"#, inputs[..28].join(",")))
                .contains("no input for column 'Amount'")
        );
        assert!(
            msg(&body.replace(r#""shape": [2, 1]"#, r#""shape": [1, 2]"#))
                .contains("is not [N] or [N, 1]")
        );
    }

    #[test]
    fn refusals_name_the_input_and_element() {
        let body = |shape: &str, dtype: &str, data: &str| {
            format!(
                r#"{{"inputs": [{{"name": "features", "shape": {shape}, "datatype": "{dtype}", "data": {data}}}]}}"#
            )
        };
        let msg = |b: String| ask(&b).unwrap_err().to_string();
        let data = flat(&[0.5]);
        assert!(msg(body("[2, 29]", "FP32", &data)).contains("does not hold the 29 elements"));
        assert!(msg(body(
            "[1, 28]",
            "FP32",
            &flat(&[0.5])[..].replacen("0.5,", "", 1)
        ))
        .contains("is not [N, 29]"));
        assert!(msg(body("[1, 29]", "FP16", &data)).contains("datatype 'FP16'"));
        assert!(
            msg(body("[1, 29]", "FP32", &data.replacen("0.5", "1e39", 1)))
                .contains("element [0, 0] (column V1)")
        );
        assert!(
            msg(body("[1, 29]", "FP32", &data.replacen("0.5", "\"a\"", 1)))
                .contains("input 'features': data: invalid type: string")
        );
        assert!(msg(body(
            "[18446744073709551615, 18446744073709551615]",
            "FP32",
            &data
        ))
        .contains("does not hold"));
        assert!(msg(body("[0, 29]", "FP32", "[]")).contains("N = 0"));
        assert!(msg(r#"{"inputs": []}"#.into()).contains("'inputs' is empty"));
        assert!(msg(r#"{"input": []}"#.into()).contains("missing field `inputs`"));
        let e = msg(format!(
            r#"{{"inputs": [{{"name": "f", "shape": [1, 29], "datatype": "FP32", "data": {data}}}], "outputs": [{{"name": "logits"}}]}}"#
        ));
        assert!(e.contains("unknown output 'logits'"), "{e}");
    }
}

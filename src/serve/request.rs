//! Request bodies → a batch of validated rows (29 finite features each, in
//! model order, `Amount` standardized). Parsed once here; the model never
//! sees raw text.
//!
//! Accepted bodies:
//! * JSON: `[29 numbers]` (the lab's Lambda), `[[…], …]`, `{"instances": …}`,
//!   `{"inputs": …}`, `{"V1": …, …, "V28": …, "Amount": …}` or a list of such
//!   objects. Named objects take the raw `Amount` and standardize it the
//!   lab's way (`(Amount − 88.3496…) / 250.1197…`), or `Amount_std` as is;
//!   `Time` and `Class` are ignored.
//! * CSV: one transaction per line, 29 values, no header; blank lines skipped.
//! * JSON Lines: one transaction (list or object) per line.

use super::error::ApiError;
use crate::data::csv::Problem;
use crate::data::{standardize_amount, FEATURE_NAMES, N_FEATURES};
use serde_json::Value;

/// Request body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    JsonLines,
    /// No or generic Content-Type: decide from the body.
    Detect,
}

impl Format {
    /// From a Content-Type header value (parameters such as charset ignored).
    pub fn from_content_type(ct: Option<&str>) -> Result<Format, ApiError> {
        let Some(ct) = ct else {
            return Ok(Format::Detect);
        };
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "" | "application/octet-stream" | "*/*" => Ok(Format::Detect),
            "application/json" | "text/json" => Ok(Format::Json),
            "text/csv" | "application/csv" | "text/plain" => Ok(Format::Csv),
            "application/jsonlines"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json-lines" => Ok(Format::JsonLines),
            _ => Err(ApiError::UnsupportedMediaType(ct.to_string())),
        }
    }
}

/// Parses a body into row-major features (`rows * 29` values).
pub fn parse(format: Format, body: &[u8]) -> Result<Vec<f32>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad(
            format!("body is not valid UTF-8 (byte {})", e.valid_up_to()),
            None,
            None,
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad(
            "empty body: send at least one transaction",
            None,
            None,
        ));
    }
    let rows = match format {
        Format::Json => parse_json(text)?,
        Format::Csv => parse_csv(text)?,
        Format::JsonLines => parse_jsonl(text)?,
        Format::Detect => {
            let t = text.trim_start();
            if t.starts_with('[') || t.starts_with('{') {
                match parse_json(text) {
                    Ok(r) => r,
                    // Several JSON documents, one per line, are JSON Lines.
                    Err(e) if text.trim().lines().count() > 1 => {
                        parse_jsonl(text).map_err(|_| e)?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                parse_csv(text)?
            }
        }
    };
    if rows.is_empty() {
        return Err(ApiError::bad("no transactions in the body", None, None));
    }
    Ok(rows)
}

fn parse_json(text: &str) -> Result<Vec<f32>, ApiError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad(format!("malformed JSON: {e}"), None, None))?;
    let mut out = Vec::new();
    json_batch(&v, &mut out)?;
    Ok(out)
}

/// A JSON document holding one or many transactions.
fn json_batch(v: &Value, out: &mut Vec<f32>) -> Result<(), ApiError> {
    match v {
        Value::Object(m) => {
            for key in ["instances", "inputs"] {
                if let Some(inner) = m.get(key) {
                    if m.len() != 1 {
                        return Err(ApiError::bad(format!("'{key}' must be the only key"), None, None));
                    }
                    return match inner {
                        Value::Array(_) | Value::Object(_) => json_batch(inner, out),
                        _ => Err(ApiError::bad(format!("'{key}' must hold a list"), None, None)),
                    };
                }
            }
            named_row(m, 1, out)
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number) => number_row(items, 1, out),
        Value::Array(items) => {
            out.reserve(items.len() * N_FEATURES);
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Array(row) => number_row(row, i + 1, out)?,
                    Value::Object(m) => named_row(m, i + 1, out)?,
                    other => {
                        return Err(ApiError::bad(
                            format!("row {}: expected a list of {N_FEATURES} numbers or an object of named features, found {}", i + 1, kind(other)),
                            Some(i + 1),
                            None,
                        ))
                    }
                }
            }
            Ok(())
        }
        other => Err(ApiError::bad(
            format!("expected a list of {N_FEATURES} numbers, a list of such lists, or an object; found {}", kind(other)),
            None,
            None,
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn number_row(items: &[Value], row: usize, out: &mut Vec<f32>) -> Result<(), ApiError> {
    if items.len() != N_FEATURES {
        return Err(ApiError::bad(
            format!("row {row}: expected {N_FEATURES} features (V1..V28, Amount standardized), found {}", items.len()),
            Some(row),
            None,
        ));
    }
    for (j, item) in items.iter().enumerate() {
        let v = item.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
            ApiError::bad(
                format!(
                    "row {row}, feature {} ({}): expected a finite number, found {}",
                    j + 1,
                    FEATURE_NAMES[j],
                    item
                ),
                Some(row),
                Some(FEATURE_NAMES[j]),
            )
        })?;
        out.push(v as f32);
    }
    Ok(())
}

fn named_row(
    m: &serde_json::Map<String, Value>,
    row: usize,
    out: &mut Vec<f32>,
) -> Result<(), ApiError> {
    let mut vals = [f32::NAN; N_FEATURES];
    for (k, v) in m {
        let slot = match k.as_str() {
            "Time" | "Class" => continue,
            "Amount" | "Amount_std" => N_FEATURES - 1,
            name => FEATURE_NAMES[..N_FEATURES - 1].iter().position(|n| *n == name).ok_or_else(|| {
                ApiError::bad(
                    format!("row {row}: unknown feature '{name}' (expected V1..V28 and Amount or Amount_std)"),
                    Some(row),
                    Some(name),
                )
            })?,
        };
        let x = v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            ApiError::bad(
                format!("row {row}, feature {k}: expected a finite number, found {v}"),
                Some(row),
                Some(k),
            )
        })?;
        if !vals[slot].is_nan() {
            return Err(ApiError::bad(
                format!("row {row}: give either Amount or Amount_std, not both"),
                Some(row),
                Some(k),
            ));
        }
        vals[slot] = if k == "Amount" {
            standardize_amount(x) as f32
        } else {
            x as f32
        };
    }
    if let Some(j) = vals.iter().position(|v| v.is_nan()) {
        return Err(ApiError::bad(
            format!("row {row}: missing feature {}", FEATURE_NAMES[j]),
            Some(row),
            Some(FEATURE_NAMES[j]),
        ));
    }
    out.extend_from_slice(&vals);
    Ok(())
}

/// CSV bodies go through the one CSV reader of [`crate::data::csv`]
/// (parallel for large bodies); errors name the body's line and the field.
fn parse_csv(text: &str) -> Result<Vec<f32>, ApiError> {
    crate::data::csv::parse_features(text.as_bytes()).map_err(|e| {
        let line = e.line;
        match e.problem {
            Problem::Columns { expected, found } => {
                let hint = if found == expected + 1 {
                    " (drop the Class column)"
                } else {
                    ""
                };
                ApiError::bad(
                    format!("line {line}: expected {expected} values, found {found}{hint}"),
                    Some(line),
                    None,
                )
            }
            problem => {
                let name = FEATURE_NAMES.get(e.column - 1).copied();
                ApiError::bad(
                    format!(
                        "line {line}, column {} ({}): {problem}",
                        e.column,
                        name.unwrap_or("?")
                    ),
                    Some(line),
                    name,
                )
            }
        }
    })
}

fn parse_jsonl(text: &str) -> Result<Vec<f32>, ApiError> {
    let mut out = Vec::new();
    let mut row = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        row += 1;
        let v: Value = serde_json::from_str(line).map_err(|e| {
            ApiError::bad(format!("line {row}: malformed JSON: {e}"), Some(row), None)
        })?;
        match &v {
            Value::Array(items) => number_row(items, row, &mut out)?,
            Value::Object(m) => match m.get("features").or_else(|| m.get("instances")) {
                Some(Value::Array(items)) if m.len() == 1 => number_row(items, row, &mut out)?,
                _ => named_row(m, row, &mut out)?,
            },
            other => {
                return Err(ApiError::bad(
                    format!(
                    "line {row}: expected a list of {N_FEATURES} numbers or an object, found {}",
                    kind(other)
                ),
                    Some(row),
                    None,
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row_text(sep: &str) -> String {
        (0..N_FEATURES)
            .map(|i| format!("{}.5", i))
            .collect::<Vec<_>>()
            .join(sep)
    }

    #[test]
    fn every_json_shape() {
        let r = row_text(",");
        let one = parse(Format::Json, format!("[{r}]").as_bytes()).unwrap();
        assert_eq!(one.len(), N_FEATURES);
        for body in [
            format!("[[{r}],[{r}]]"),
            format!("{{\"instances\": [[{r}],[{r}]]}}"),
            format!("{{\"inputs\": [[{r}],[{r}]]}}"),
        ] {
            let v = parse(Format::Json, body.as_bytes()).unwrap();
            assert_eq!(v.len(), 2 * N_FEATURES, "{body}");
            assert_eq!(&v[..N_FEATURES], &one[..]);
        }
        let named: String = (1..=28)
            .map(|i| format!("\"V{i}\": {i}, "))
            .collect::<String>()
            + "\"Amount\": 1.0, \"Time\": 5";
        let v = parse(Format::Json, format!("{{{named}}}").as_bytes()).unwrap();
        assert_eq!(v[0], 1.0);
        assert!((v[28] - -0.349_231_3).abs() < 1e-6);
        let v = parse(
            Format::Json,
            format!("[{{{named}}}, {{{named}}}]").as_bytes(),
        )
        .unwrap();
        assert_eq!(v.len(), 2 * N_FEATURES);
    }

    #[test]
    fn csv_jsonl_and_detection() {
        let r = row_text(",");
        let csv = format!("{r}\n\n{r}\r\n");
        assert_eq!(
            parse(Format::Csv, csv.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            parse(Format::Detect, csv.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        let jl = format!("[{r}]\n[{r}]\n");
        assert_eq!(
            parse(Format::JsonLines, jl.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            parse(Format::Detect, jl.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            parse(Format::Detect, format!("[{r}]").as_bytes())
                .unwrap()
                .len(),
            N_FEATURES
        );
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/octet-stream")).unwrap(),
            Format::Detect
        );
        assert_eq!(Format::from_content_type(None).unwrap(), Format::Detect);
        assert!(matches!(
            Format::from_content_type(Some("image/png")),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }

    fn bad(format: Format, body: &str) -> (String, Option<usize>, Option<String>) {
        match parse(format, body.as_bytes()) {
            Err(ApiError::BadInput {
                message,
                row,
                field,
            }) => (message, row, field),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn bad_input_names_row_and_field() {
        let r = row_text(",");
        let (m, row, _) = bad(Format::Json, "[1, 2, 3]");
        assert!(m.contains("expected 29 features") && row == Some(1), "{m}");
        let (m, row, field) = bad(
            Format::Json,
            &format!("[[{r}], [{}]]", r.replacen("3.5", "\"x\"", 1)),
        );
        assert_eq!((row, field.as_deref()), (Some(2), Some("V4")), "{m}");
        let (m, _, _) = bad(Format::Json, "{\"a\": ");
        assert!(m.starts_with("malformed JSON"), "{m}");
        let (m, _, field) = bad(Format::Csv, &r.replacen("2.5", "NaN", 1));
        assert!(
            m.contains("not finite") && field.as_deref() == Some("V3"),
            "{m}"
        );
        let (m, row, _) = bad(Format::Csv, &format!("{r}\n{r},1"));
        assert!(
            m.contains("found 30 (drop the Class column)") && row == Some(2),
            "{m}"
        );
        let (m, _, _) = bad(Format::Detect, "hello,world");
        assert!(m.contains("not a number: 'hello'"), "{m}");
        let (m, _, _) = bad(Format::Json, "  ");
        assert!(m.contains("empty body"), "{m}");
        let (m, _, _) = bad(Format::Json, "[]");
        assert!(m.contains("no transactions"), "{m}");
        let (m, _, field) = bad(Format::Json, "{\"V1\": 1, \"Foo\": 2}");
        assert!(
            m.contains("unknown feature 'Foo'") && field.as_deref() == Some("Foo"),
            "{m}"
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let (m, _, _) = bad(Format::Json, &deep);
        assert!(m.contains("malformed JSON"), "{m}");
        match parse(Format::Json, b"[\xff]") {
            Err(ApiError::BadInput { message, .. }) => assert!(message.contains("UTF-8")),
            other => panic!("{other:?}"),
        }
        let (m, _, _) = bad(
            Format::Json,
            &format!("[{}]", r.replacen("0.5", "1e999", 1)),
        );
        assert!(m.contains("finite") || m.contains("malformed"), "{m}");
    }

    #[test]
    fn large_csv_bodies_parse_in_parallel_with_true_row_numbers() {
        let r = row_text(",");
        let mut body = String::new();
        for _ in 0..30_000 {
            body.push_str(&r);
            body.push('\n');
        }
        assert!(body.len() > 2 << 20, "must span several chunks");
        let v = parse(Format::Csv, body.as_bytes()).unwrap();
        assert_eq!(v.len(), 30_000 * N_FEATURES);
        assert_eq!(&v[..N_FEATURES], &v[29_999 * N_FEATURES..]);
        body.push_str(&r.replacen("4.5", "oops", 1));
        let (m, row, field) = bad(Format::Csv, &body);
        assert_eq!((row, field.as_deref()), (Some(30_001), Some("V5")), "{m}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            for f in [Format::Json, Format::Csv, Format::JsonLines, Format::Detect] {
                if let Ok(rows) = parse(f, &body) {
                    prop_assert!(!rows.is_empty() && rows.len() % N_FEATURES == 0);
                    prop_assert!(rows.iter().all(|v| v.is_finite()));
                }
            }
        }

        #[test]
        fn structured_near_misses_never_panic(
            vals in proptest::collection::vec(prop_oneof![any::<f64>().prop_map(|v| v.to_string()), "[a-zA-Z\"{}\\[\\],:]{0,6}".prop_map(|s| s)], 0..35)
        ) {
            let body = vals.join(",");
            for f in [Format::Json, Format::Csv, Format::Detect] {
                let _ = parse(f, body.as_bytes());
                let _ = parse(f, format!("[{body}]").as_bytes());
            }
        }
    }
}

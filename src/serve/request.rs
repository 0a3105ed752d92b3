//! Request bodies → a batch of validated rows encoded under the model's
//! [`Schema`] (see [`crate::schema`]): one `f32` per schema column, in
//! schema order — a number, a categorical value's code, or `NaN` for a
//! missing value, never an infinity — the type the models compute in.
//! Parsed once here; the model never sees raw text.
//!
//! Accepted bodies (N is the schema's column count, 29 for the lab's):
//! * JSON: `[N values]` (the lab's Lambda), `[[…], …]`, `{"instances": …}`,
//!   `{"inputs": …}` (beside which TF Serving's `signature_name` may name
//!   the one signature, `serving_default`), an object of named columns, or
//!   a list of such objects.
//!   A numeric column takes a number; a categorical one a string, a number
//!   or a boolean (its text: MCC `5411` is `"5411"`; a value outside the
//!   vocabulary is its "other" bucket, never an error); `null` (or, in a
//!   categorical column, a blank string) is a missing value in any column.
//!   Named objects name every column once (the label's key is read past);
//!   under the lab's schema the keys are `V1`..`V28` and the raw `Amount`,
//!   standardized the lab's way (`(Amount − 88.3496…) / 250.1197…`), or
//!   `Amount_std` as is, and `Time` and `Class` are read past.
//! * CSV: one transaction per line, the schema's columns in order,
//!   optionally under a header line naming them; an empty field or `NaN` is
//!   a missing value; blank lines skipped (the one CSV reader,
//!   [`crate::data::csv::parse_features`]).
//! * JSON Lines: one transaction (list, object, or `{"features": […]}`) per
//!   line.
//!
//! A leading UTF-8 byte-order mark is ignored. JSON is read by serde
//! straight into the `f32` rows (one `Shape` per position in the shapes
//! above), never into a `serde_json::Value` tree: a 6 MiB body of small
//! numbers costs its rows, not a `Value` per number. A refused value is
//! reported only once it has been read whole, so a truncated or too deeply
//! nested body is "malformed JSON" wherever it breaks; every refusal names
//! the row (the line, for JSON Lines) and the field, and a key given twice
//! is refused, never "last wins". Under the lab's schema every message reads
//! as it did before schemas (the lab's Lambda passes them on).

use super::asks::Asks;
use super::error::ApiError;
use crate::data::csv::{check_number, Problem, RowError, Shown};
use crate::data::standardize_amount;
use crate::schema::{Schema, LAB_COLUMNS};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::Arc;

/// Index of the lab's `Amount` (raw or standardized) among its columns.
const LAB_AMOUNT: usize = LAB_COLUMNS - 1;

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

/// Parses a body into row-major encoded rows (`rows * schema.n_columns()`
/// values).
pub fn parse(format: Format, body: &[u8], schema: &Arc<Schema>) -> Result<Vec<f32>, ApiError> {
    parse_asked(format, body, schema).map(|(rows, _)| rows)
}

/// `bytes` as text, or the 400 saying where `what` (a body, a part of
/// one) stops being UTF-8.
pub(crate) fn utf8<'b>(bytes: &'b [u8], what: &str) -> Result<&'b str, ApiError> {
    std::str::from_utf8(bytes).map_err(|e| {
        ApiError::bad(
            format!("{what} is not valid UTF-8 (byte {})", e.valid_up_to()),
            None,
            None,
        )
    })
}

/// Parses a body into rows (as [`parse`]) and what a JSON body asks for
/// beside them (`"explain"`, `"decide"`: see [`super::asks`]).
pub fn parse_asked(
    format: Format,
    body: &[u8],
    schema: &Arc<Schema>,
) -> Result<(Vec<f32>, Asks), ApiError> {
    let text = utf8(body, "body")?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(ApiError::bad(
            "empty body: send at least one transaction",
            None,
            None,
        ));
    }
    let plain = |rows| (rows, Asks::default());
    let (rows, asks) = match format {
        Format::Json => parse_json(text, schema)?,
        Format::Csv => plain(parse_csv(text, schema)?),
        Format::JsonLines => plain(parse_jsonl(text, schema)?),
        Format::Detect => {
            let t = text.trim_start();
            if !(t.starts_with('[') || t.starts_with('{')) {
                plain(parse_csv(text, schema)?)
            } else if is_json_lines(t) {
                plain(parse_jsonl(text, schema)?)
            } else {
                parse_json(text, schema)?
            }
        }
    };
    if rows.is_empty() {
        return Err(ApiError::bad("no transactions in the body", None, None));
    }
    Ok((rows, asks))
}

/// Several non-blank lines, the first a whole JSON value: JSON Lines (a
/// pretty-printed document's first line is not a whole value).
fn is_json_lines(text: &str) -> bool {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match (lines.next(), lines.next()) {
        (Some(first), Some(_)) => serde_json::from_str::<de::IgnoredAny>(first).is_ok(),
        _ => false,
    }
}

/// One JSON document: its rows and what it asks for.
fn parse_json(text: &str, schema: &Schema) -> Result<(Vec<f32>, Asks), ApiError> {
    let mut ctx = Ctx::new(schema, "row");
    let mut de = serde_json::Deserializer::from_str(text);
    Any(Doc {
        ctx: &mut ctx,
        key: None,
    })
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| ctx.error(e))?;
    Ok((ctx.out, ctx.asks))
}

fn parse_jsonl(text: &str, schema: &Schema) -> Result<Vec<f32>, ApiError> {
    let mut ctx = Ctx::new(schema, "line");
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = i + 1;
        ctx.at = Some(Place::row(row));
        let mut de = serde_json::Deserializer::from_str(line);
        Any(Row {
            ctx: &mut ctx,
            row,
            envelope: Envelope::Line,
        })
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| ctx.error(e))?;
    }
    Ok(ctx.out)
}

/// One JSON parse under a schema: the rows so far, where the parser is (to
/// place serde's own syntax errors) and the first refusal. serde's errors
/// carry only text, so a refusal is kept here and serde aborted with a
/// blank one.
struct Ctx<'s> {
    schema: &'s Schema,
    /// No categorical column (the lab's): every value is a number.
    all_numeric: bool,
    out: Vec<f32>,
    at: Option<Place<'s>>,
    refused: Option<ApiError>,
    /// What a row is called in messages: "row", or "line" for JSON Lines.
    unit: &'static str,
    /// Per column of the named row being read, the key that gave it (one
    /// buffer for every named row of the body).
    given: Vec<Option<&'s str>>,
    /// What the document asks for beside its rows.
    asks: Asks,
}

/// Where a value sits: its 1-based row and its field.
#[derive(Debug, Clone, Copy)]
struct Place<'s> {
    row: usize,
    field: Field<'s>,
}

#[derive(Debug, Clone, Copy)]
enum Field<'s> {
    /// The row as a whole.
    Row,
    /// The 0-based position in a list row.
    Index(usize),
    /// A named column's key.
    Key(&'s str),
}

impl Place<'_> {
    fn row(row: usize) -> Self {
        Place {
            row,
            field: Field::Row,
        }
    }
}

impl<'s> Ctx<'s> {
    fn new(schema: &'s Schema, unit: &'static str) -> Ctx<'s> {
        Ctx {
            schema,
            all_numeric: schema.is_lab() || schema.all_numeric(),
            out: Vec::with_capacity(schema.n_columns()),
            at: None,
            refused: None,
            unit,
            given: Vec::new(),
            asks: Asks::default(),
        }
    }

    /// "row 2, feature 4 (V4)" and the field's name.
    fn describe(&self, place: Place<'s>) -> (String, Option<&'s str>) {
        let (unit, row) = (self.unit, place.row);
        let columns: &'s [crate::schema::Column] = self.schema.columns();
        match place.field {
            Field::Index(j) if j < columns.len() => {
                let name = columns[j].name.as_str();
                (
                    format!("{unit} {row}, feature {} ({name})", j + 1),
                    Some(name),
                )
            }
            Field::Key(k) => (format!("{unit} {row}, feature {k}"), Some(k)),
            _ => (format!("{unit} {row}"), None),
        }
    }

    /// Keeps `e` as the parse's error and aborts serde.
    fn refuse<E: de::Error>(&mut self, e: ApiError) -> E {
        self.refused = Some(e);
        E::custom("")
    }

    /// Refuses the value at `place`.
    fn refuse_at<E: de::Error>(&mut self, place: Place<'s>, why: Refusal) -> E {
        let (at, field) = self.describe(place);
        self.refuse(ApiError::bad(
            format!("{at}: {why}"),
            Some(place.row),
            field,
        ))
    }

    /// Refuses a row for a reason that names the `field` itself.
    fn refuse_field<E: de::Error>(&mut self, row: usize, field: &str, why: Refusal) -> E {
        let unit = self.unit;
        self.refuse(ApiError::bad(
            format!("{unit} {row}: {why}"),
            Some(row),
            Some(field),
        ))
    }

    /// Refuses the document as a whole.
    fn refuse_doc<E: de::Error>(&mut self, why: Refusal) -> E {
        self.refuse(ApiError::bad(why.to_string(), None, None))
    }

    /// The error of a failed parse: the refusal, or serde's syntax error
    /// placed where the parser was.
    fn error(&mut self, e: serde_json::Error) -> ApiError {
        if let Some(refused) = self.refused.take() {
            return refused;
        }
        let Some(place) = self.at else {
            return ApiError::bad(format!("malformed JSON: {e}"), None, None);
        };
        let (at, field) = self.describe(place);
        let message = if self.unit == "line" {
            // serde counts lines within the line: keep the column only
            let text = e.to_string();
            let code = text.rsplit_once(" at line ").map_or(&text[..], |(c, _)| c);
            format!("malformed JSON: {code} at column {} ({at})", e.column())
        } else {
            format!("malformed JSON: {e} ({at})")
        };
        ApiError::bad(message, Some(place.row), field)
    }

    /// A number the models can compute with (finite as f32), or a refusal.
    fn number<E: de::Error>(&mut self, place: Place<'s>, v: f64) -> Result<f64, E> {
        check_number(v, || Shown::number(v)).map_err(|p| self.refuse_at(place, Refusal::Range(p)))
    }

    /// The code of `value` in categorical column `j` (blank: missing).
    fn code(&self, j: usize, value: &str) -> f64 {
        let value = value.trim();
        if value.is_empty() {
            return f64::NAN;
        }
        self.schema.code(j, value).map_or(f64::NAN, f64::from)
    }

    /// The name of column `j` for messages that name it themselves: `None`
    /// under the lab's schema, whose messages name the feature before.
    fn column_name(&self, j: usize) -> Option<&'s str> {
        let schema: &'s Schema = self.schema;
        match schema.is_lab() {
            true => None,
            false => schema.columns().get(j).map(|c| c.name.as_str()),
        }
    }
}

/// A JSON number as serde read it: integers kept whole, so a categorical
/// code such as `4111111111111111` keeps its text.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Num {
    fn get(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::UInt(v) => v as f64,
            Num::Float(v) => v,
        }
    }

    /// Its text, as a category: `5411`, `2.5`.
    fn text(self) -> String {
        match self {
            Num::Int(v) => v.to_string(),
            Num::UInt(v) => v.to_string(),
            Num::Float(v) => v.to_string(),
        }
    }
}

/// What a JSON value was, for messages.
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    Null,
    Bool(bool),
    Number,
    Str(&'a str),
    List,
    Object,
}

impl fmt::Display for Kind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Null => f.write_str("null"),
            Kind::Bool(_) => f.write_str("a boolean"),
            Kind::Number => f.write_str("a number"),
            Kind::Str(s) if s.chars().count() > 40 => {
                write!(f, "a string {:?}…", s.chars().take(40).collect::<String>())
            }
            Kind::Str(s) => write!(f, "a string {s:?}"),
            Kind::List => f.write_str("a list"),
            Kind::Object => f.write_str("an object"),
        }
    }
}

/// Why a JSON body, row or value was refused. `column` is the column's name
/// where the message names it (never under the lab's schema, see
/// [`Ctx::column_name`]).
#[derive(Debug, thiserror::Error)]
enum Refusal<'a> {
    #[error("expected a number{}, found {found}", ForColumn(*.column))]
    NotANumber {
        column: Option<&'a str>,
        found: Kind<'a>,
    },
    #[error("expected a number{}, found the string {text:?}: send numbers without quotes", ForColumn(*.column))]
    QuotedNumber {
        column: Option<&'a str>,
        text: &'a str,
    },
    #[error("expected a category (a string or a number) for column '{column}', found {found}")]
    NotACategory { column: &'a str, found: Kind<'a> },
    #[error("{0}")]
    Range(Problem),
    #[error("expected {} features ({}), found {found}", .schema.n_columns(), Columns(.schema))]
    Count { schema: &'a Schema, found: usize },
    #[error("expected a list of {} {} or an object of named {}, found {found}", .schema.n_columns(), Words(.schema).values(), Words(.schema).names())]
    NotARow { schema: &'a Schema, found: Kind<'a> },
    #[error("expected a list of {} {}, a list of such lists, or an object; found {found}", .schema.n_columns(), Words(.schema).values())]
    NotABatch { schema: &'a Schema, found: Kind<'a> },
    #[error("'{0}' must hold a list")]
    NotAList(&'static str),
    #[error("'{0}' must be the only key")]
    OnlyKey(&'static str),
    #[error("key '{0}' appears twice")]
    Twice(&'a str),
    #[error("give either Amount or Amount_std, not both")]
    BothAmounts,
    #[error("{}", Unknown(.schema, .key))]
    Unknown { schema: &'a Schema, key: &'a str },
    #[error("{}", Missing(.schema, .column))]
    Missing { schema: &'a Schema, column: &'a str },
}

impl<'a> Refusal<'a> {
    /// A value that is not a number in a numeric column; a string holding
    /// one gets a hint.
    fn value(column: Option<&'a str>, found: Kind<'a>) -> Refusal<'a> {
        match found {
            Kind::Str(text) if text.trim().parse::<f64>().is_ok() => {
                Refusal::QuotedNumber { column, text }
            }
            _ => Refusal::NotANumber { column, found },
        }
    }
}

/// " for column 'amount'", or nothing.
struct ForColumn<'a>(Option<&'a str>);

impl fmt::Display for ForColumn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, " for column '{c}'"),
            None => Ok(()),
        }
    }
}

/// The columns a row holds, for messages: the lab's in its own words, any
/// other schema's by name (the first 40).
struct Columns<'a>(&'a Schema);

impl fmt::Display for Columns<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 40;
        let s = self.0;
        if s.is_lab() {
            return f.write_str("V1..V28, Amount standardized");
        }
        f.write_str("the model's columns: ")?;
        for (i, name) in s.names().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        if s.n_columns() > SHOWN {
            write!(f, " and {} more", s.n_columns() - SHOWN)?;
        }
        Ok(())
    }
}

/// What a row's values and names are called: the lab's "numbers" and
/// "features", any other schema's "values" and "columns".
struct Words<'a>(&'a Schema);

impl Words<'_> {
    fn values(&self) -> &'static str {
        if self.0.is_lab() {
            "numbers"
        } else {
            "values"
        }
    }
    fn names(&self) -> &'static str {
        if self.0.is_lab() {
            "features"
        } else {
            "columns"
        }
    }
}

/// An unknown key of a named row.
struct Unknown<'a>(&'a Schema, &'a str);

impl fmt::Display for Unknown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Unknown(schema, key) = *self;
        if schema.is_lab() {
            write!(
                f,
                "unknown feature '{key}' (expected V1..V28 and Amount or Amount_std)"
            )
        } else {
            write!(f, "unknown column '{key}' ({})", Columns(schema))
        }
    }
}

/// A column a named row left out.
struct Missing<'a>(&'a Schema, &'a str);

impl fmt::Display for Missing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Missing(schema, column) = *self;
        if schema.is_lab() {
            write!(f, "missing feature {column}")
        } else {
            write!(
                f,
                "missing column '{column}' (send null for a missing value)"
            )
        }
    }
}

/// What one position of the accepted shapes does with the JSON value found
/// there; [`Any`] turns serde's visitor calls into these four.
trait Shape<'de>: Sized {
    type Out;
    fn number<E: de::Error>(self, v: Num) -> Result<Self::Out, E>;
    /// null, a boolean or a string.
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<Self::Out, E>;
    fn list<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error>;
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error>;
}

/// A [`Shape`] as a serde seed and visitor.
struct Any<S>(S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Any<S> {
    type Value = S::Out;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de>> Visitor<'de> for Any<S> {
    type Value = S::Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<S::Out, E> {
        self.0.other(Kind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<S::Out, E> {
        self.0.number(Num::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<S::Out, E> {
        self.0.number(Num::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<S::Out, E> {
        self.0.number(Num::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<S::Out, E> {
        self.0.other(Kind::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<S::Out, E> {
        self.0.other(Kind::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S::Out, A::Error> {
        self.0.list(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S::Out, A::Error> {
        self.0.object(map)
    }
}

/// Any value, read and dropped. It goes through `deserialize_any` (not
/// serde_json's iterative `IgnoredAny`), so serde_json's nesting limit holds.
struct Skip;

impl<'de> Shape<'de> for Skip {
    type Out = ();
    fn number<E: de::Error>(self, _: Num) -> Result<(), E> {
        Ok(())
    }
    fn other<E: de::Error>(self, _: Kind<'_>) -> Result<(), E> {
        Ok(())
    }
    fn list<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Any(Skip))?.is_some() {}
        Ok(())
    }
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Any(Skip))?.is_some() {
            map.next_value_seed(Any(Skip))?;
        }
        Ok(())
    }
}

/// A whole document, or what an `instances`/`inputs` `key` holds.
struct Doc<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    key: Option<&'static str>,
}

impl<'de> Shape<'de> for Doc<'_, '_> {
    type Out = ();
    fn number<E: de::Error>(self, _: Num) -> Result<(), E> {
        self.other(Kind::Number)
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<(), E> {
        let schema = self.ctx.schema;
        let why = match self.key {
            Some(key) => Refusal::NotAList(key),
            None => Refusal::NotABatch { schema, found },
        };
        Err(self.ctx.refuse_doc(why))
    }
    /// One row of values or a list of rows: the first item tells.
    fn list<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let outer = ctx.at;
        ctx.at = Some(First::PLACE);
        let first = seq.next_element_seed(Any(First { ctx: &mut *ctx }))?;
        ctx.at = outer;
        match first {
            None => Ok(()),
            Some(First::VALUE) => values(ctx, seq, 1, 1),
            Some(_) => {
                let mut row = 2;
                while seq
                    .next_element_seed(Any(Row {
                        ctx: &mut *ctx,
                        row,
                        envelope: Envelope::None,
                    }))?
                    .is_some()
                {
                    row += 1;
                }
                Ok(())
            }
        }
    }
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        object(self.ctx, map, 1, Envelope::Batch)
    }
}

/// The first item of a top-level list: a value (a number, string, boolean
/// or null: the list is one row and this its first value,
/// [`First::VALUE`]) or a row (the list is a batch).
struct First<'c, 's> {
    ctx: &'c mut Ctx<'s>,
}

impl<'c, 's> First<'c, 's> {
    const VALUE: bool = true;
    const PLACE: Place<'static> = Place {
        row: 1,
        field: Field::Index(0),
    };
    fn row(self) -> Row<'c, 's> {
        Row {
            ctx: self.ctx,
            row: 1,
            envelope: Envelope::None,
        }
    }
    fn value(&mut self) -> Value<'_, 's> {
        Value {
            ctx: &mut *self.ctx,
            place: First::PLACE,
            column: 0,
        }
    }
}

impl<'de> Shape<'de> for First<'_, '_> {
    type Out = bool;
    fn number<E: de::Error>(mut self, v: Num) -> Result<bool, E> {
        let v = self.value().number(v)?;
        self.ctx.out.push(v as f32);
        Ok(First::VALUE)
    }
    fn other<E: de::Error>(mut self, found: Kind<'_>) -> Result<bool, E> {
        let v = self.value().other(found)?;
        self.ctx.out.push(v as f32);
        Ok(First::VALUE)
    }
    fn list<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        self.row().list(seq).map(|()| !First::VALUE)
    }
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.row().object(map).map(|()| !First::VALUE)
    }
}

/// One transaction: a list row or a named row (an item of a batch, with
/// [`Envelope::None`]), or a line of JSON Lines ([`Envelope::Line`]: also
/// `{"features": […]}`).
struct Row<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    row: usize,
    envelope: Envelope,
}

impl<'de> Shape<'de> for Row<'_, '_> {
    type Out = ();
    fn number<E: de::Error>(self, _: Num) -> Result<(), E> {
        self.other(Kind::Number)
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<(), E> {
        let schema = self.ctx.schema;
        Err(self
            .ctx
            .refuse_at(Place::row(self.row), Refusal::NotARow { schema, found }))
    }
    fn list<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        values(self.ctx, seq, self.row, 0)
    }
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        object(self.ctx, map, self.row, self.envelope)
    }
}

/// What a JSON Lines `key` (`features`, `instances`) holds: one list row.
struct Flat<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    row: usize,
    key: &'static str,
}

impl<'de> Shape<'de> for Flat<'_, '_> {
    type Out = ();
    fn number<E: de::Error>(self, _: Num) -> Result<(), E> {
        self.other(Kind::Number)
    }
    fn other<E: de::Error>(self, _: Kind<'_>) -> Result<(), E> {
        Err(self
            .ctx
            .refuse_at(Place::row(self.row), Refusal::NotAList(self.key)))
    }
    fn list<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        values(self.ctx, seq, self.row, 0)
    }
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Skip.object(map)?;
        self.other(Kind::Object)
    }
}

/// The value of schema column `column` at `place`: a number the models can
/// compute with for a numeric column, a code for a categorical one, `NaN`
/// for a missing value.
struct Value<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    place: Place<'s>,
    column: usize,
}

impl Value<'_, '_> {
    fn categorical(&self) -> bool {
        !self.ctx.all_numeric && self.ctx.schema.is_categorical(self.column)
    }
}

impl<'de> Shape<'de> for Value<'_, '_> {
    type Out = f64;
    fn number<E: de::Error>(self, v: Num) -> Result<f64, E> {
        if self.categorical() {
            return Ok(self.ctx.code(self.column, &v.text()));
        }
        self.ctx.number(self.place, v.get())
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<f64, E> {
        let categorical = self.categorical();
        match found {
            Kind::Null => return Ok(f64::NAN),
            Kind::Str(s) if categorical => return Ok(self.ctx.code(self.column, s)),
            Kind::Bool(b) if categorical => {
                return Ok(self.ctx.code(self.column, if b { "true" } else { "false" }))
            }
            _ => {}
        }
        let name = self.ctx.column_name(self.column);
        let why = match (categorical, name) {
            (true, Some(column)) => Refusal::NotACategory { column, found },
            _ => Refusal::value(name, found),
        };
        Err(self.ctx.refuse_at(self.place, why))
    }
    fn list<A: SeqAccess<'de>>(self, seq: A) -> Result<f64, A::Error> {
        Skip.list(seq)?;
        self.other(Kind::List)
    }
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<f64, A::Error> {
        Skip.object(map)?;
        self.other(Kind::Object)
    }
}

/// The values of a list row from position `from` on (earlier ones already
/// pushed): exactly one per schema column.
fn values<'de, A: SeqAccess<'de>>(
    ctx: &mut Ctx<'_>,
    mut seq: A,
    row: usize,
    from: usize,
) -> Result<(), A::Error> {
    let outer = ctx.at;
    let width = ctx.schema.n_columns();
    let mut n = from;
    loop {
        let place = Place {
            row,
            field: Field::Index(n),
        };
        ctx.at = Some(place);
        if n < width {
            let Some(v) = seq.next_element_seed(Any(Value {
                ctx: &mut *ctx,
                place,
                column: n,
            }))?
            else {
                break;
            };
            ctx.out.push(v as f32);
        } else if seq.next_element_seed(Any(Skip))?.is_none() {
            break;
        }
        n += 1;
    }
    ctx.at = outer;
    if n != width {
        let schema = ctx.schema;
        return Err(ctx.refuse_at(Place::row(row), Refusal::Count { schema, found: n }));
    }
    Ok(())
}

/// Which keys make an object an envelope rather than a named row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envelope {
    /// A document: `instances` or `inputs` around a batch.
    Batch,
    /// A JSON Lines line: `features` or `instances` around one list row.
    Line,
    /// An item of a batch: named columns only.
    None,
}

/// A key of an object, classified under the schema.
enum Key<'s, 'de> {
    /// A column's slot and the key's name; `raw` for the lab's raw
    /// `Amount`, standardized into the lab's `Amount` slot (`Amount_std`
    /// shares the slot as is).
    Column {
        slot: usize,
        name: &'s str,
        raw: bool,
    },
    /// Read past: `Time` (0, the lab's only), the label (1), or a column
    /// training dropped (2 + its index among them).
    Ignored(usize, &'s str),
    Envelope(&'static str),
    /// `explain` or `decide` at a document's top level (see
    /// [`super::asks`]), or TF Serving's `signature_name` (which must name
    /// the one signature), unless a column, the label or a dropped column
    /// has that name.
    Ask(&'static str),
    Unknown(std::borrow::Cow<'de, str>),
}

impl Key<'_, '_> {
    fn name(&self) -> &str {
        match self {
            Key::Column { name, .. } | Key::Ignored(_, name) => name,
            Key::Envelope(n) | Key::Ask(n) => n,
            Key::Unknown(n) => n,
        }
    }
}

struct KeySeed<'s> {
    schema: &'s Schema,
    envelope: Envelope,
}

impl<'de, 's> DeserializeSeed<'de> for KeySeed<'s> {
    type Value = Key<'s, 'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key<'s, 'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 's> Visitor<'de> for KeySeed<'s> {
    type Value = Key<'s, 'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'s, 'de>, E> {
        Ok(self.classify(v).unwrap_or(Key::Unknown(v.into())))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'s, 'de>, E> {
        Ok(self
            .classify(v)
            .unwrap_or_else(|| Key::Unknown(v.to_owned().into())))
    }
}

impl<'s> KeySeed<'s> {
    /// An envelope key (unless the schema has a column of that name), the
    /// lab's `Time`, `Amount` and `Amount_std`, a column, or the label.
    fn classify(&self, k: &str) -> Option<Key<'s, 'static>> {
        let schema = self.schema;
        let envelopes: &[&'static str] = match self.envelope {
            Envelope::Batch => &["instances", "inputs"],
            Envelope::Line => &["features", "instances"],
            Envelope::None => &[],
        };
        if let Some(e) = envelopes.iter().find(|e| **e == k) {
            if schema.position(k).is_none() {
                return Some(Key::Envelope(e));
            }
        }
        if schema.is_lab() {
            let (name, raw) = match k {
                "Time" => return Some(Key::Ignored(0, "Time")),
                "Amount" => ("Amount", true),
                "Amount_std" => ("Amount_std", false),
                _ => ("", false),
            };
            if !name.is_empty() {
                let slot = LAB_AMOUNT;
                return Some(Key::Column { slot, name, raw });
            }
        }
        if let Some(slot) = schema.position(k) {
            let name = schema.columns()[slot].name.as_str();
            return Some(Key::Column {
                slot,
                name,
                raw: false,
            });
        }
        if k == schema.label() {
            return Some(Key::Ignored(1, schema.label()));
        }
        if let Some(i) = schema.ignored().iter().position(|n| n == k) {
            return Some(Key::Ignored(2 + i, &schema.ignored()[i]));
        }
        if self.envelope == Envelope::Batch {
            return ["explain", "decide", "signature_name"]
                .into_iter()
                .find(|a| *a == k)
                .map(Key::Ask);
        }
        None
    }
}

/// A misused envelope: about the document, or about a JSON Lines line.
fn envelope_error<E: de::Error>(
    ctx: &mut Ctx<'_>,
    envelope: Envelope,
    row: usize,
    why: Refusal,
) -> E {
    match envelope {
        Envelope::Line => ctx.refuse_at(Place::row(row), why),
        _ => ctx.refuse_doc(why),
    }
}

/// An object at `row`: a named row, or an envelope (see [`Envelope`]). A
/// named row's values go straight into the rows, every column `NaN` until
/// its key is read; each column must be named once.
fn object<'de, A: MapAccess<'de>>(
    ctx: &mut Ctx<'_>,
    mut map: A,
    row: usize,
    envelope: Envelope,
) -> Result<(), A::Error> {
    let outer = ctx.at;
    let schema = ctx.schema;
    let width = schema.n_columns();
    // where this row starts in `ctx.out`, once a column's key has been read
    let mut start: Option<usize> = None;
    // whether Time and the label were seen
    let mut ignored = [false; 2];
    // columns training dropped (none for the lab: no allocation)
    let mut dropped = vec![false; schema.ignored().len()];
    let mut wrapped: Option<&'static str> = None;
    let mut first = true;
    // whether explain, decide and signature_name were given
    let mut asked = [false; 3];
    while let Some(key) = map.next_key_seed(KeySeed { schema, envelope })? {
        if let Key::Ask(k) = key {
            let slot = match k {
                "explain" => 0,
                "decide" => 1,
                _ => 2,
            };
            if std::mem::replace(&mut asked[slot], true) {
                map.next_value_seed(Any(Skip))?;
                return Err(ctx.refuse_doc(Refusal::Twice(k)));
            }
            map.next_value_seed(Any(AskValue {
                ctx: &mut *ctx,
                key: k,
            }))?;
            continue;
        }
        if let (Key::Envelope(k), true) = (&key, std::mem::take(&mut first)) {
            wrapped = Some(k);
            match envelope {
                Envelope::Line => map.next_value_seed(Any(Flat {
                    ctx: &mut *ctx,
                    row,
                    key: k,
                }))?,
                _ => map.next_value_seed(Any(Doc {
                    ctx: &mut *ctx,
                    key: Some(k),
                }))?,
            }
            continue;
        }
        if let Some(w) = wrapped {
            // a second key beside an envelope
            map.next_value_seed(Any(Skip))?;
            let why = if key.name() == w {
                Refusal::Twice(w)
            } else {
                Refusal::OnlyKey(w)
            };
            return Err(envelope_error(ctx, envelope, row, why));
        }
        let place = |field| Place { row, field };
        match key {
            Key::Column { slot, name, raw } => {
                let at = place(Field::Key(name));
                ctx.at = Some(at);
                let v = map.next_value_seed(Any(Value {
                    ctx: &mut *ctx,
                    place: at,
                    column: slot,
                }))?;
                let base = match start {
                    Some(b) => b,
                    None => {
                        let b = ctx.out.len();
                        ctx.out.resize(b + width, f32::NAN);
                        ctx.given.clear();
                        ctx.given.resize(width, None);
                        *start.insert(b)
                    }
                };
                if let Some(earlier) = ctx.given[slot] {
                    let why = if earlier == name {
                        Refusal::Twice(name)
                    } else {
                        Refusal::BothAmounts
                    };
                    return Err(ctx.refuse_at(at, why));
                }
                ctx.given[slot] = Some(name);
                ctx.out[base + slot] = if raw {
                    standardize_amount(v) as f32
                } else {
                    v as f32
                };
            }
            Key::Ignored(i, name) => {
                map.next_value_seed(Any(Skip))?;
                let seen = match ignored.get_mut(i) {
                    Some(s) => s,
                    None => &mut dropped[i - 2],
                };
                if std::mem::replace(seen, true) {
                    return Err(ctx.refuse_at(place(Field::Key(name)), Refusal::Twice(name)));
                }
            }
            Key::Unknown(key) => {
                map.next_value_seed(Any(Skip))?;
                return Err(ctx.refuse_field(row, &key, Refusal::Unknown { schema, key: &key }));
            }
            // read above
            Key::Ask(_) => {}
            Key::Envelope(k) => {
                // an envelope key after other keys
                map.next_value_seed(Any(Skip))?;
                return Err(envelope_error(ctx, envelope, row, Refusal::OnlyKey(k)));
            }
        }
    }
    ctx.at = outer;
    if wrapped.is_some() {
        return Ok(());
    }
    let missing = match start {
        None => Some(0),
        Some(_) => ctx.given.iter().position(Option::is_none),
    };
    if let Some(j) = missing {
        let column = schema.columns()[j].name.as_str();
        return Err(ctx.refuse_field(row, column, Refusal::Missing { schema, column }));
    }
    Ok(())
}

/// The value of an `explain` or `decide` key: a number, a boolean or
/// their text.
struct AskValue<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    key: &'static str,
}

impl AskValue<'_, '_> {
    fn take<E: de::Error>(self, text: &str) -> Result<(), E> {
        let asks = &mut self.ctx.asks;
        let set = match self.key {
            "explain" => Asks::explain_value(text).map(|k| asks.explain = Some(k)),
            "signature_name" => super::protocols::tfserving::check_signature(text),
            _ => Asks::decide_value(text).map(|d| asks.decide = d),
        };
        set.map_err(|e| self.ctx.refuse(e))
    }
}

impl<'de> Shape<'de> for AskValue<'_, '_> {
    type Out = ();
    fn number<E: de::Error>(self, v: Num) -> Result<(), E> {
        self.take(&v.text())
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<(), E> {
        match found {
            Kind::Bool(b) => self.take(if b { "true" } else { "false" }),
            Kind::Str(s) => self.take(s),
            _ => self.take(&found.to_string()),
        }
    }
    fn list<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.take("a list")
    }
    fn object<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.take("an object")
    }
}

/// CSV bodies go through the one CSV reader of [`crate::data::csv`]
/// (parallel for large bodies); errors name the body's line and the field.
fn parse_csv(text: &str, schema: &Arc<Schema>) -> Result<Vec<f32>, ApiError> {
    crate::data::csv::parse_features(text.as_bytes(), schema)
        .map_err(|e| csv_error(text, schema, e))
}

/// A refused CSV body as an answer: its line, and the field by its name.
fn csv_error(text: &str, schema: &Schema, e: RowError) -> ApiError {
    let line = e.line;
    match e.problem {
        Problem::Columns { expected, found } => {
            let hint = if found == expected + 1 {
                format!(" (drop the {} column)", schema.label())
            } else {
                String::new()
            };
            ApiError::bad(
                format!("line {line}: expected {expected} values, found {found}{hint}"),
                Some(line),
                None,
            )
        }
        problem => {
            let name = csv_field_name(text, schema, line, e.column, &problem);
            ApiError::bad(
                format!(
                    "line {line}, column {} ({}): {problem}",
                    e.column,
                    name.as_deref().unwrap_or("?")
                ),
                Some(line),
                name.as_deref(),
            )
        }
    }
}

/// The name of a CSV body's 1-based `column` in a refusal at `line`: the
/// header's name for a problem with the header itself, or for a row below a
/// header that names that column; otherwise the schema's column at that
/// position (a body without a header).
fn csv_field_name(
    text: &str,
    schema: &Schema,
    line: usize,
    column: usize,
    problem: &Problem,
) -> Option<String> {
    let header_problem = match problem {
        Problem::MissingColumn(name) => return Some(name.clone()),
        Problem::NotInSchema(..) | Problem::Duplicate(_) | Problem::UnknownColumn(_) => true,
        _ => false,
    };
    let in_header = || {
        let first = crate::data::csv::first_record(text.as_bytes()).ok()??;
        let field = first.get(column.checked_sub(1)?)?;
        crate::data::csv::header_name(field).ok().map(str::to_owned)
    };
    let known = |name: &str| schema.may_head(name);
    if header_problem {
        return in_header();
    }
    if line > 1 {
        if let Some(name) = in_header().filter(|n| known(n)) {
            return Some(name);
        }
    }
    let j = column.checked_sub(1)?;
    schema.columns().get(j).map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::N_FEATURES;
    use crate::schema::{Column, Form};
    use proptest::prelude::*;

    /// Parses under the lab's schema.
    fn lab(format: Format, body: &[u8]) -> Result<Vec<f32>, ApiError> {
        static LAB: std::sync::OnceLock<Arc<Schema>> = std::sync::OnceLock::new();
        parse(format, body, LAB.get_or_init(|| Arc::new(Schema::lab())))
    }

    fn row_text(sep: &str) -> String {
        (0..N_FEATURES)
            .map(|i| format!("{}.5", i))
            .collect::<Vec<_>>()
            .join(sep)
    }

    #[test]
    fn every_json_shape() {
        let r = row_text(",");
        let one = lab(Format::Json, format!("[{r}]").as_bytes()).unwrap();
        assert_eq!(one.len(), N_FEATURES);
        for body in [
            format!("[[{r}],[{r}]]"),
            format!("{{\"instances\": [[{r}],[{r}]]}}"),
            format!("{{\"inputs\": [[{r}],[{r}]]}}"),
        ] {
            let v = lab(Format::Json, body.as_bytes()).unwrap();
            assert_eq!(v.len(), 2 * N_FEATURES, "{body}");
            assert_eq!(&v[..N_FEATURES], &one[..]);
        }
        let named: String = (1..=28)
            .map(|i| format!("\"V{i}\": {i}, "))
            .collect::<String>()
            + "\"Amount\": 1.0, \"Time\": 5";
        let v = lab(Format::Json, format!("{{{named}}}").as_bytes()).unwrap();
        assert_eq!(v[0], 1.0);
        assert!((v[28] - -0.349_231_3).abs() < 1e-6);
        let v = lab(
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
            lab(Format::Csv, csv.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            lab(Format::Detect, csv.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        let jl = format!("[{r}]\n[{r}]\n");
        assert_eq!(
            lab(Format::JsonLines, jl.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            lab(Format::Detect, jl.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            lab(Format::Detect, format!("[{r}]").as_bytes())
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
        match lab(format, body.as_bytes()) {
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
        let (m, _, field) = bad(Format::Csv, &r.replacen("2.5", "inf", 1));
        assert!(
            m.contains("not finite") && field.as_deref() == Some("V3"),
            "{m}"
        );
        let (m, row, _) = bad(Format::Csv, &format!("{r}\n{r},1"));
        assert!(
            m.contains("found 30 (drop the Class column)") && row == Some(2),
            "{m}"
        );
        // under the lab's schema a first line is a header only when it
        // starts with one of the lab's names
        let (m, _, field) = bad(Format::Detect, "hello,world");
        assert!(m.contains("not a number: 'hello'"), "{m}");
        assert_eq!(field.as_deref(), Some("V1"));
        let (m, _, field) = bad(Format::Csv, &r.replacen("0.5", "-inf", 1));
        assert!(m.contains("not finite"), "{m}");
        assert_eq!(field.as_deref(), Some("V1"));
        let (m, _, field) = bad(Format::Detect, "0.5,world");
        assert!(m.contains("not a number: 'world'"), "{m}");
        assert_eq!(field.as_deref(), Some("V2"));
        for first in ["Time", "Amount_std", "Class", "V7"] {
            let (m, row, field) = bad(Format::Csv, &format!("{first},Foo\n{r}"));
            assert!(m.contains("unknown column 'Foo'"), "{first}: {m}");
            assert_eq!((row, field.as_deref()), (Some(1), Some("Foo")));
        }
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
        match lab(Format::Json, b"[\xff]") {
            Err(ApiError::BadInput { message, .. }) => assert!(message.contains("UTF-8")),
            other => panic!("{other:?}"),
        }
        let (m, _, _) = bad(
            Format::Json,
            &format!("[{}]", r.replacen("0.5", "1e999", 1)),
        );
        assert!(m.contains("finite") || m.contains("malformed"), "{m}");
    }

    /// A named object of the 29 features, `Amount` raw.
    fn named(amount: &str) -> String {
        let v: String = (1..=28).map(|i| format!("\"V{i}\": {i}, ")).collect();
        format!("{{{v}\"Amount\": {amount}}}")
    }

    #[test]
    fn values_beyond_f32_are_refused_with_row_and_field() {
        // 1e39 is finite as f64 but infinite as f32, the model's type.
        let r = row_text(",");
        let big = r.replacen("2.5", "1e39", 1);
        let cases = [
            (Format::Json, format!("[{big}]"), 1, "V3"),
            (Format::Json, format!("[[{r}], [{big}]]"), 2, "V3"),
            (
                Format::Json,
                format!("{{\"instances\": [[{r}], [{big}]]}}"),
                2,
                "V3",
            ),
            (
                Format::Json,
                format!("[{r}]").replacen("0.5", "-3.5e38", 1),
                1,
                "V1",
            ),
            (Format::Csv, format!("{r}\n{big}"), 2, "V3"),
            (Format::JsonLines, format!("[{r}]\n[{big}]"), 2, "V3"),
            (Format::Json, named("1e300"), 1, "Amount"),
            (
                Format::Json,
                format!("[{}, {}]", named("1"), named("1e39")),
                2,
                "Amount",
            ),
            (Format::JsonLines, named("-1e300"), 1, "Amount"),
        ];
        for (format, body, want_row, want_field) in cases {
            let (m, row, field) = bad(format, &body);
            assert_eq!(
                (row, field.as_deref()),
                (Some(want_row), Some(want_field)),
                "{m}"
            );
            assert!(m.contains("f32"), "{m}");
        }
        // the largest f32 itself, subnormals, -0 and a raw Amount that
        // standardizes to a finite f32 are fine
        let edge = r
            .replacen("0.5", "3.4e38", 1)
            .replacen("1.5", "1e-50", 1)
            .replacen("2.5", "-0", 1);
        let v = lab(Format::Json, format!("[{edge}]").as_bytes()).unwrap();
        assert_eq!((v[0], v[1], v[2]), (3.4e38, 0.0, 0.0));
        assert!(lab(Format::Json, named("3e38").as_bytes()).is_ok());
    }

    #[test]
    fn numeric_strings_and_wrong_types_name_row_and_field() {
        let r = row_text(",");
        let (m, row, field) = bad(
            Format::Json,
            &format!("[{}]", r.replacen("0.5", "\"0.5\"", 1)),
        );
        assert_eq!((row, field.as_deref()), (Some(1), Some("V1")), "{m}");
        assert!(m.contains("\"0.5\"") && m.contains("without quotes"), "{m}");
        let (m, row, field) = bad(
            Format::Json,
            &format!("[[{r}], [{}]]", r.replacen("5.5", "\"5.5\"", 1)),
        );
        assert_eq!((row, field.as_deref()), (Some(2), Some("V6")), "{m}");
        let (m, row, field) = bad(Format::Json, &named("\"12.5\""));
        assert_eq!((row, field.as_deref()), (Some(1), Some("Amount")), "{m}");
        assert!(m.contains("without quotes"), "{m}");
        let (m, row, field) = bad(
            Format::JsonLines,
            &format!("[{r}]\n\n[{}]", r.replacen("1.5", "true", 1)),
        );
        assert_eq!((row, field.as_deref()), (Some(3), Some("V2")), "{m}");
        assert!(m.contains("found a boolean"), "{m}");
        let (m, _, field) = bad(Format::Json, &format!("[{}]", r.replacen("1.5", "[1]", 1)));
        assert!(
            m.contains("found a list") && field.as_deref() == Some("V2"),
            "{m}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let r = row_text(",");
        let (m, row, field) = bad(
            Format::Json,
            &named("1").replacen("\"V2\": 2", "\"V1\": 2", 1),
        );
        assert_eq!((row, field.as_deref()), (Some(1), Some("V1")), "{m}");
        assert!(m.contains("'V1' appears twice"), "{m}");
        let (m, _, _) = bad(
            Format::Json,
            &named("1").replacen("\"V2\": 2", "\"V2\": 2, \"Time\": 1, \"Time\": 2", 1),
        );
        assert!(m.contains("'Time' appears twice"), "{m}");
        for key in ["instances", "inputs"] {
            let (m, _, _) = bad(
                Format::Json,
                &format!("{{\"{key}\": [[{r}]], \"{key}\": [[{r}]]}}"),
            );
            assert!(m.contains(&format!("'{key}' appears twice")), "{m}");
        }
        let (m, _, _) = bad(
            Format::JsonLines,
            &format!("{{\"features\": [{r}], \"features\": [{r}]}}"),
        );
        assert!(m.contains("'features' appears twice"), "{m}");
        let (m, _, _) = bad(
            Format::Json,
            &format!("{{\"instances\": [[{r}]], \"inputs\": [[{r}]]}}"),
        );
        assert!(m.contains("'instances' must be the only key"), "{m}");
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        let r = row_text(",");
        let want = lab(Format::Csv, r.as_bytes()).unwrap();
        for (format, body) in [
            (Format::Json, format!("\u{feff}[{r}]")),
            (Format::Detect, format!("\u{feff}[{r}]")),
            (Format::Csv, format!("\u{feff}{r}")),
            (Format::Detect, format!("\u{feff}{r}")),
            (Format::JsonLines, format!("\u{feff}[{r}]")),
        ] {
            assert_eq!(lab(format, body.as_bytes()).unwrap(), want, "{body}");
        }
    }

    /// Peak resident memory (kB) of `f` above what the process held before,
    /// from Linux's high-water mark, reset through /proc/self/clear_refs.
    fn peak_kb(f: impl FnOnce()) -> u64 {
        let status = |key: &str| -> u64 {
            let s = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = s.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = status("VmRSS:");
        f();
        status("VmHWM:").saturating_sub(before)
    }

    /// Issue 10, item 4: the peak memory of parsing a 6 MiB JSON body of
    /// small numbers. Run alone (other tests share the process's memory):
    /// `cargo test --lib -- --ignored --exact serve::request::tests::peak_memory_of_a_6_mib_json_body --nocapture`
    #[test]
    #[ignore]
    fn peak_memory_of_a_6_mib_json_body() {
        let row = format!("[{}]", vec!["0"; N_FEATURES].join(","));
        let n = (6 << 20) / (row.len() + 1);
        let body = format!("[{}]", vec![row; n].join(","));
        let rows_kb = (n * N_FEATURES * 4 / 1024) as u64;
        let parse_kb = peak_kb(|| {
            let v = lab(Format::Json, body.as_bytes()).unwrap();
            assert_eq!(v.len(), n * N_FEATURES);
            std::hint::black_box(&v);
        });
        // before the typed deserializer (a serde_json::Value tree): 114,604 kB
        println!(
            "6 MiB body, {n} rows: the f32 rows are {rows_kb} kB; peak {parse_kb} kB to parse"
        );
        assert!(parse_kb < 3 * rows_kb, "{parse_kb} kB");
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
        let v = lab(Format::Csv, body.as_bytes()).unwrap();
        assert_eq!(v.len(), 30_000 * N_FEATURES);
        assert_eq!(&v[..N_FEATURES], &v[29_999 * N_FEATURES..]);
        body.push_str(&r.replacen("4.5", "oops", 1));
        let (m, row, field) = bad(Format::Csv, &body);
        assert_eq!((row, field.as_deref()), (Some(30_001), Some("V5")), "{m}");
    }

    /// The lab's messages read as before schemas: the lab's Lambda and its
    /// tests pass them on word for word.
    #[test]
    fn the_lab_keeps_its_messages() {
        let r = row_text(",");
        let (m, ..) = bad(Format::Json, "[1, 2, 3]");
        assert_eq!(
            m,
            "row 1: expected 29 features (V1..V28, Amount standardized), found 3"
        );
        let (m, ..) = bad(
            Format::Json,
            &format!("[{}]", r.replacen("0.5", "\"x\"", 1)),
        );
        assert_eq!(
            m,
            "row 1, feature 1 (V1): expected a number, found a string \"x\""
        );
        let (m, ..) = bad(Format::Json, &format!("[[{r}], 7]"));
        assert_eq!(
            m,
            "row 2: expected a list of 29 numbers or an object of named features, found a number"
        );
        let (m, ..) = bad(Format::Json, "5");
        assert_eq!(
            m,
            "expected a list of 29 numbers, a list of such lists, or an object; found a number"
        );
        let (m, ..) = bad(Format::Json, "{\"V1\": 1}");
        assert_eq!(m, "row 1: missing feature V2");
        let (m, ..) = bad(Format::Json, "{\"Foo\": 1}");
        assert_eq!(
            m,
            "row 1: unknown feature 'Foo' (expected V1..V28 and Amount or Amount_std)"
        );
        let (m, ..) = bad(Format::Csv, &format!("{r},1"));
        assert_eq!(
            m,
            "line 1: expected 29 values, found 30 (drop the Class column)"
        );
    }

    /// Missing values (issue 11): JSON `null`, an empty CSV field and `NaN`
    /// are `NaN` in the rows, under the lab's schema too; raw `Amount`
    /// stays missing once standardized.
    #[test]
    fn null_empty_fields_and_nan_are_missing_values() {
        let r = row_text(",");
        let v = lab(
            Format::Json,
            format!("[{}]", r.replacen("1.5", "null", 1)).as_bytes(),
        )
        .unwrap();
        assert!(v[1].is_nan() && v[0] == 0.5 && v[2] == 2.5, "{v:?}");
        let v = lab(Format::Json, format!("[null, {}]", &r[4..]).as_bytes()).unwrap();
        assert!(v[0].is_nan() && v[1] == 1.5, "{v:?}");
        let v = lab(Format::Json, named("null").as_bytes()).unwrap();
        assert!(v[28].is_nan() && v[27] == 28.0, "{v:?}");
        for body in [r.replacen("4.5", "", 1), r.replacen("4.5", "NaN", 1)] {
            let v = lab(Format::Csv, body.as_bytes()).unwrap();
            assert!(v[4].is_nan() && v[5] == 5.5, "{body}: {v:?}");
        }
        let v = lab(Format::Csv, ",".repeat(28).as_bytes()).unwrap();
        assert!(v.len() == N_FEATURES && v.iter().all(|x| x.is_nan()));
        // JSON's NaN literal is not JSON
        let (m, ..) = bad(Format::Json, &format!("[{}]", r.replacen("1.5", "NaN", 1)));
        assert!(m.starts_with("malformed JSON"), "{m}");
    }

    /// amount (numeric), country (categorical: US, GB) and hour (numeric),
    /// labelled is_fraud: the brief's example of a user's schema.
    fn user() -> Arc<Schema> {
        let country = Column::categorical("country", vec!["US".into(), "GB".into()]);
        Arc::new(
            Schema::new(
                Form::Header,
                vec![Column::numeric("amount"), country, Column::numeric("hour")],
                "is_fraud".into(),
                Some("amount".into()),
            )
            .unwrap(),
        )
    }

    #[test]
    fn columns_training_dropped_are_read_past() {
        let s = Arc::new(
            Arc::unwrap_or_clone(user())
                .with_ignored(vec!["tx_id".into()])
                .unwrap(),
        );
        let ok = |format, body: &str| {
            parse(format, body.as_bytes(), &s).unwrap_or_else(|e| panic!("{body}: {e}"))
        };
        let one = [12.5, 1.0, 3.0];
        for (format, body) in [
            (
                Format::Json,
                r#"{"tx_id": "a-1", "amount": 12.5, "country": "GB", "hour": 3}"#,
            ),
            (
                Format::Json,
                r#"[{"amount": 12.5, "country": "GB", "hour": 3, "tx_id": 7, "is_fraud": 0}]"#,
            ),
            (Format::Csv, "tx_id,amount,country,hour\nz9,12.5,GB,3\n"),
            (Format::Csv, "amount,country,hour\n12.5,GB,3\n"),
        ] {
            assert!(same(&ok(format, body), &one), "{body}");
        }
        // still only once each, and an unknown name is still refused
        let twice = r#"{"tx_id": 1, "tx_id": 2, "amount": 1, "country": "GB", "hour": 3}"#;
        assert!(parse(Format::Json, twice.as_bytes(), &s).is_err());
        let unknown = r#"{"tx": 1, "amount": 1, "country": "GB", "hour": 3}"#;
        let e = parse(Format::Json, unknown.as_bytes(), &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'tx'"), "{e}");
        // without the ignore list, tx_id is an unknown column
        let e = parse(
            Format::Json,
            br#"{"tx_id": 1, "amount": 1, "country": "GB", "hour": 3}"#,
            &user(),
        );
        assert!(e.unwrap_err().to_string().contains("tx_id"));
    }

    fn user_ok(format: Format, body: &str) -> Vec<f32> {
        parse(format, body.as_bytes(), &user()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn user_bad(format: Format, body: &str) -> (String, Option<usize>, Option<String>) {
        match parse(format, body.as_bytes(), &user()) {
            Err(ApiError::BadInput {
                message,
                row,
                field,
            }) => (message, row, field),
            other => panic!("{body}: {other:?}"),
        }
    }

    /// Equal rows, `NaN` (missing) equal to itself.
    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn positional_rows_follow_the_schema() {
        let nan = f32::NAN;
        let one = [12.5, 1.0, 3.0];
        for (format, body) in [
            (Format::Json, r#"[12.5, "GB", 3]"#),
            (Format::Json, r#"[[12.5, "GB", 3]]"#),
            (Format::Json, r#"{"instances": [[12.5, " GB ", 3]]}"#),
            (Format::Json, r#"{"inputs": [[12.5, "GB", 3]]}"#),
            (Format::JsonLines, r#"[12.5, "GB", 3]"#),
            (Format::JsonLines, r#"{"features": [12.5, "GB", 3]}"#),
            (Format::Detect, r#"[12.5, "GB", 3]"#),
            (Format::Csv, "12.5,GB,3"),
            (Format::Detect, "12.5,GB,3\n"),
        ] {
            assert!(same(&user_ok(format, body), &one), "{body}");
        }
        // a value outside the vocabulary is "other" (code 2), never an error
        assert!(same(
            &user_ok(Format::Json, r#"[1, "FR", 2]"#),
            &[1.0, 2.0, 2.0]
        ));
        assert!(same(&user_ok(Format::Csv, "1,FR,2"), &[1.0, 2.0, 2.0]));
        // null is missing in any column; a blank category too
        let v = user_ok(
            Format::Json,
            r#"[[null, "US", null], [1, null, 2], [1, "  ", 2], [null, "", null]]"#,
        );
        let want = [nan, 0.0, nan, 1.0, nan, 2.0, 1.0, nan, 2.0, nan, nan, nan];
        assert!(same(&v, &want), "{v:?}");
        // the first value of a one-row list may be a string or null
        let mcc = Arc::new(
            Schema::new(
                Form::Header,
                vec![
                    Column::categorical("mcc", vec!["5411".into(), "5812".into(), "true".into()]),
                    Column::numeric("amount"),
                ],
                "y".into(),
                None,
            )
            .unwrap(),
        );
        let p = |body: &str| parse(Format::Json, body.as_bytes(), &mcc).unwrap();
        // a number in a categorical column is its text; a boolean too
        assert!(same(&p("[5812, 1]"), &[1.0, 1.0]));
        assert!(same(&p("[5411.0, 1]"), &[0.0, 1.0]));
        assert!(same(&p("[true, 1]"), &[2.0, 1.0]));
        assert!(same(&p("[false, 1]"), &[3.0, 1.0]));
        assert!(same(&p("[4111111111111111, 1]"), &[3.0, 1.0]));
        assert!(same(&p(r#"["5411", 1]"#), &[0.0, 1.0]));
        assert!(same(&p("[null, 1]"), &[nan, 1.0]));
        assert!(same(
            &p("[[\"x\", 1], [5812, null]]"),
            &[3.0, 1.0, 1.0, nan]
        ));
    }

    #[test]
    fn positional_refusals_name_the_column() {
        let (m, row, field) = user_bad(Format::Json, r#"[[1, "US", 2], ["US", "US", 2]]"#);
        assert_eq!(
            m,
            "row 2, feature 1 (amount): expected a number for column 'amount', found a string \"US\""
        );
        assert_eq!((row, field.as_deref()), (Some(2), Some("amount")));
        let (m, _, field) = user_bad(Format::Json, r#"[1, "US", "3"]"#);
        assert!(
            m.contains("expected a number for column 'hour', found the string \"3\": send numbers without quotes"),
            "{m}"
        );
        assert_eq!(field.as_deref(), Some("hour"));
        let (m, _, field) = user_bad(Format::Json, r#"[1, ["US"], 3]"#);
        assert!(
            m.contains(
                "expected a category (a string or a number) for column 'country', found a list"
            ),
            "{m}"
        );
        assert_eq!(field.as_deref(), Some("country"));
        let (m, ..) = user_bad(Format::Json, r#"[1, {"a": 1}, 3]"#);
        assert!(m.contains("found an object"), "{m}");
        let (m, _, field) = user_bad(Format::Json, r#"[1, "US", true]"#);
        assert!(m.contains("for column 'hour', found a boolean"), "{m}");
        assert_eq!(field.as_deref(), Some("hour"));
        let (m, row, _) = user_bad(Format::Json, r#"[1, "US"]"#);
        assert_eq!(
            m,
            "row 1: expected 3 features (the model's columns: amount, country, hour), found 2"
        );
        assert_eq!(row, Some(1));
        let (m, row, _) = user_bad(Format::JsonLines, "[1, \"US\", 2]\n[1, \"US\", 2, 4]");
        assert!(
            m.contains("expected 3 features") && m.contains("found 4"),
            "{m}"
        );
        assert_eq!(row, Some(2));
        let (m, ..) = user_bad(Format::Json, "[[1, \"US\", 2], 5]");
        assert_eq!(
            m,
            "row 2: expected a list of 3 values or an object of named columns, found a number"
        );
        let (m, ..) = user_bad(Format::Json, "\"x\"");
        assert!(
            m.starts_with("expected a list of 3 values, a list of such lists"),
            "{m}"
        );
        let (m, _, field) = user_bad(Format::Json, r#"[1e39, "US", 2]"#);
        assert!(
            m.contains("f32") && field.as_deref() == Some("amount"),
            "{m}"
        );
        // many columns are listed up to 40
        let wide = Arc::new(
            Schema::new(
                Form::LabelFirst,
                (0..45).map(|i| Column::numeric(format!("f{i}"))).collect(),
                "y".into(),
                None,
            )
            .unwrap(),
        );
        match parse(Format::Json, b"[1]", &wide) {
            Err(ApiError::BadInput { message, .. }) => {
                assert!(
                    message.contains("f38, f39 and 5 more), found 1"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn named_rows_follow_the_schema() {
        let nan = f32::NAN;
        let v = user_ok(
            Format::Json,
            r#"{"hour": 3, "is_fraud": 1, "country": "GB", "amount": 12.5}"#,
        );
        assert!(same(&v, &[12.5, 1.0, 3.0]), "{v:?}");
        let v = user_ok(
            Format::Json,
            r#"[{"amount": null, "country": "XX", "hour": 1}, {"amount": 2, "country": null, "hour": null}]"#,
        );
        assert!(same(&v, &[nan, 2.0, 1.0, 2.0, nan, nan]), "{v:?}");
        let v = user_ok(
            Format::Json,
            r#"{"instances": [{"amount": 1, "country": 5, "hour": 1}]}"#,
        );
        assert!(same(&v, &[1.0, 2.0, 1.0]), "{v:?}");
        let v = user_ok(
            Format::JsonLines,
            "{\"amount\": 1, \"country\": \"US\", \"hour\": 1}\n[2, \"GB\", 2]",
        );
        assert!(same(&v, &[1.0, 0.0, 1.0, 2.0, 1.0, 2.0]), "{v:?}");
    }

    #[test]
    fn named_refusals_name_the_key() {
        let (m, row, field) = user_bad(
            Format::Json,
            r#"{"amount": 1, "country": "US", "hour": 1, "merchant": "x"}"#,
        );
        assert_eq!(
            m,
            "row 1: unknown column 'merchant' (the model's columns: amount, country, hour)"
        );
        assert_eq!((row, field.as_deref()), (Some(1), Some("merchant")));
        // the lab's names mean nothing under another schema
        for key in ["Time", "Amount_std", "Class"] {
            let body = format!(r#"{{"amount": 1, "country": "US", "hour": 1, "{key}": 1}}"#);
            let (m, _, field) = user_bad(Format::Json, &body);
            assert!(m.contains(&format!("unknown column '{key}'")), "{m}");
            assert_eq!(field.as_deref(), Some(key));
        }
        let (m, row, field) = user_bad(
            Format::Json,
            r#"[{"amount": 1, "country": "US", "hour": 1}, {"amount": 1, "country": "US"}]"#,
        );
        assert_eq!(
            m,
            "row 2: missing column 'hour' (send null for a missing value)"
        );
        assert_eq!((row, field.as_deref()), (Some(2), Some("hour")));
        let (m, _, field) = user_bad(Format::Json, "{}");
        assert!(m.contains("missing column 'amount'"), "{m}");
        assert_eq!(field.as_deref(), Some("amount"));
        let (m, _, field) = user_bad(
            Format::Json,
            r#"{"amount": 1, "country": "US", "hour": 1, "amount": 2}"#,
        );
        assert!(m.contains("'amount' appears twice"), "{m}");
        assert_eq!(field.as_deref(), Some("amount"));
        let (m, ..) = user_bad(
            Format::Json,
            r#"{"is_fraud": 0, "amount": 1, "country": "US", "hour": 1, "is_fraud": 1}"#,
        );
        assert!(m.contains("'is_fraud' appears twice"), "{m}");
        let (m, _, field) = user_bad(
            Format::Json,
            r#"{"amount": "12.5", "country": "US", "hour": 1}"#,
        );
        assert!(
            m.contains("row 1, feature amount: expected a number for column 'amount', found the string \"12.5\""),
            "{m}"
        );
        assert_eq!(field.as_deref(), Some("amount"));
        let (m, ..) = user_bad(
            Format::Json,
            r#"{"instances": [[1, "US", 1]], "amount": 1}"#,
        );
        assert!(m.contains("'instances' must be the only key"), "{m}");
    }

    /// A column named like an envelope key is a column.
    #[test]
    fn a_column_may_be_called_instances() {
        let s = Arc::new(
            Schema::new(
                Form::Header,
                vec![Column::numeric("instances"), Column::numeric("b")],
                "y".into(),
                None,
            )
            .unwrap(),
        );
        let v = parse(Format::Json, br#"{"instances": 1, "b": 2}"#, &s).unwrap();
        assert_eq!(v, [1.0, 2.0]);
        let v = parse(Format::Json, br#"[{"b": 2, "instances": 1}]"#, &s).unwrap();
        assert_eq!(v, [1.0, 2.0]);
    }

    #[test]
    fn a_document_may_ask_for_reasons_and_decisions_beside_its_rows() {
        let lab = Arc::new(Schema::lab());
        let r = row_text(",");
        let asked = |body: String| parse_asked(Format::Detect, body.as_bytes(), &lab);
        let (rows, a) = asked(format!("{{\"instances\": [[{r}]], \"explain\": 3}}")).unwrap();
        assert_eq!(rows.len(), N_FEATURES);
        assert_eq!((a.explain, a.decide), (Some(3), false));
        // before the envelope, and both
        let (rows, a) = asked(format!(
            "{{\"decide\": true, \"explain\": \"2\", \"inputs\": [[{r}],[{r}]]}}"
        ))
        .unwrap();
        assert_eq!(rows.len(), 2 * N_FEATURES);
        assert_eq!((a.explain, a.decide), (Some(2), true));
        // a named row at the top may ask too
        let named: String = (1..=28)
            .map(|i| format!("\"V{i}\": {i}, "))
            .collect::<String>();
        let (_, a) = asked(format!("{{{named}\"explain\": 1, \"Amount\": 1}}")).unwrap();
        assert_eq!(a.explain, Some(1));
        // the lab's bare list asks nothing; CSV cannot ask
        assert_eq!(asked(format!("[{r}]")).unwrap().1, Asks::default());
        assert_eq!(asked(r.clone()).unwrap().1, Asks::default());
        // refusals name the key
        for (body, says) in [
            (
                format!("{{\"instances\": [[{r}]], \"explain\": 0}}"),
                "'explain' = '0'",
            ),
            (
                format!("{{\"instances\": [[{r}]], \"explain\": [3]}}"),
                "'explain'",
            ),
            (
                format!("{{\"instances\": [[{r}]], \"decide\": \"maybe\"}}"),
                "'decide'",
            ),
            (
                format!("{{\"explain\": 3, \"instances\": [[{r}]], \"explain\": 3}}"),
                "key 'explain' appears twice",
            ),
        ] {
            let e = asked(body.clone()).unwrap_err().to_string();
            assert!(e.contains(says), "{body}: {e}");
        }
        // an item of a batch is a row: no asks there
        let e = asked(format!("[{{{named}\"Amount\": 1, \"explain\": 1}}]")).unwrap_err();
        assert!(e.to_string().contains("explain"), "{e}");
        // a column called explain is a column
        let s = Arc::new(
            Schema::new(
                Form::Header,
                vec![Column::numeric("explain"), Column::numeric("b")],
                "y".into(),
                None,
            )
            .unwrap(),
        );
        let (v, a) = parse_asked(Format::Json, br#"{"explain": 1, "b": 2}"#, &s).unwrap();
        assert_eq!((v, a), (vec![1.0, 2.0], Asks::default()));
    }

    #[test]
    fn csv_bodies_follow_the_schema_with_or_without_a_header() {
        let nan = f32::NAN;
        let v = user_ok(Format::Csv, "country,amount,hour\nGB,12.5,3\n,,\nZZ,1,");
        assert!(
            same(&v, &[12.5, 1.0, 3.0, nan, nan, nan, 1.0, 2.0, nan]),
            "{v:?}"
        );
        let v = user_ok(Format::Detect, "amount,country,hour,is_fraud\n1,US,2,0");
        assert!(same(&v, &[1.0, 0.0, 2.0]), "{v:?}");
        // a string in a numeric column: named by the header's name
        let (m, row, field) = user_bad(Format::Csv, "hour,country,amount\n1,US,2\n1,US,x");
        assert_eq!((row, field.as_deref()), (Some(3), Some("amount")), "{m}");
        assert!(
            m.starts_with("line 3, column 3 (amount): not a number: 'x'"),
            "{m}"
        );
        // … or by the schema's, without a header
        let (m, row, field) = user_bad(Format::Csv, "1,US,2\nx,US,2");
        assert_eq!((row, field.as_deref()), (Some(2), Some("amount")), "{m}");
        // a header naming a column the model does not have
        let (m, row, field) = user_bad(Format::Csv, "amount,country,hour,merchant\n1,US,2,7");
        assert_eq!((row, field.as_deref()), (Some(1), Some("merchant")), "{m}");
        assert!(m.contains("unknown column 'merchant'"), "{m}");
        // … or leaving one out
        let (m, _, field) = user_bad(Format::Csv, "amount,country\n1,US");
        assert!(m.contains("no 'hour' column"), "{m}");
        assert_eq!(field.as_deref(), Some("hour"));
        let (m, ..) = user_bad(Format::Csv, "1,US,2,0");
        assert!(m.contains("found 4 (drop the is_fraud column)"), "{m}");
        // the lab's header, reordered: the field is the header's
        let r = row_text(",");
        let header = "V2,V1,".to_string()
            + &(3..=28).map(|i| format!("V{i},")).collect::<String>()
            + "Amount_std";
        let (m, row, field) = bad(
            Format::Csv,
            &format!("{header}\n{r}\n{}", r.replacen("0.5", "x", 1)),
        );
        assert_eq!((row, field.as_deref()), (Some(3), Some("V2")), "{m}");
        let v = lab(Format::Csv, format!("{header}\n{r}").as_bytes()).unwrap();
        assert_eq!((v[0], v[1]), (1.5, 0.5));
    }

    /// The issue 10 memory bound holds under a schema with categories: the
    /// JSON visitors stream strings to codes, never a `Value` per value.
    #[test]
    fn a_large_categorical_batch_parses_to_its_rows() {
        let row = r#"[12.5,"GB",3]"#;
        let body = format!("[{}]", vec![row; 20_000].join(","));
        let v = parse(Format::Json, body.as_bytes(), &user()).unwrap();
        assert_eq!(v.len(), 60_000);
        assert!(same(&v[59_997..], &[12.5, 1.0, 3.0]));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            for f in [Format::Json, Format::Csv, Format::JsonLines, Format::Detect] {
                if let Ok(rows) = lab(f, &body) {
                    prop_assert!(!rows.is_empty() && rows.len() % N_FEATURES == 0);
                    // finite, or NaN for a missing value
                    prop_assert!(!rows.iter().any(|v| v.is_infinite()));
                }
            }
        }

        #[test]
        fn structured_near_misses_never_panic(
            vals in proptest::collection::vec(prop_oneof![any::<f64>().prop_map(|v| v.to_string()), "[a-zA-Z\"{}\\[\\],:]{0,6}".prop_map(|s| s)], 0..35)
        ) {
            let body = vals.join(",");
            for f in [Format::Json, Format::Csv, Format::Detect] {
                let _ = lab(f, body.as_bytes());
                let _ = lab(f, format!("[{body}]").as_bytes());
            }
        }

        /// Under a schema with a categorical column, every accepted body
        /// (arbitrary bytes, or near misses around a valid row) gives whole
        /// rows: numbers finite or missing, codes in the vocabulary or
        /// "other", or missing.
        #[test]
        fn categorical_bodies_give_whole_rows(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            vals in proptest::collection::vec(prop_oneof![
                any::<f64>().prop_map(|v| v.to_string()),
                Just("null".to_string()),
                "\"[A-Z ]{0,3}\"",
                "[a-zA-Z\"{}\\[\\],:]{0,6}",
            ], 0..5)
        ) {
            let schema = user();
            let near = vals.join(",");
            let bodies = [body, near.clone().into_bytes(), format!("[{near}]").into_bytes()];
            for body in &bodies {
                for f in [Format::Json, Format::Csv, Format::JsonLines, Format::Detect] {
                    if let Ok(rows) = parse(f, body, &schema) {
                        prop_assert!(!rows.is_empty() && rows.len() % 3 == 0, "{rows:?}");
                        for r in rows.chunks(3) {
                            prop_assert!(!r[0].is_infinite() && !r[2].is_infinite(), "{r:?}");
                            prop_assert!(r[1].is_nan() || [0.0, 1.0, 2.0].contains(&r[1]), "{r:?}");
                        }
                    }
                }
            }
        }

        /// Generated transactions under a categorical schema, in every body
        /// shape, parse to exactly their encoding.
        #[test]
        fn categorical_rows_parse_to_their_encoding(
            rows in proptest::collection::vec((
                proptest::option::of(-1e6f64..1e6),
                prop_oneof![
                    prop_oneof![Just("US"), Just("GB"), Just(" GB"), Just("FR"), Just(""), Just("  ")]
                        .prop_map(|s| Cat::Str(s.to_string())),
                    "[A-Za-z]{1,4}".prop_map(Cat::Str),
                    any::<i32>().prop_map(Cat::Num),
                    any::<bool>().prop_map(Cat::Bool),
                    Just(Cat::Null),
                ],
                proptest::option::of(0u8..24),
            ), 1..6),
            shape in 0usize..7,
        ) {
            let schema = user();
            let want: Vec<f32> = rows
                .iter()
                .flat_map(|(amount, country, hour)| {
                    let code = |s: &str| match s.trim() {
                        "" => f32::NAN,
                        t => schema.code(1, t).unwrap(),
                    };
                    let c = match country {
                        Cat::Str(s) => code(s),
                        Cat::Num(n) => code(&n.to_string()),
                        Cat::Bool(b) => code(&b.to_string()),
                        Cat::Null => f32::NAN,
                    };
                    [amount.map_or(f32::NAN, |a| a as f32), c, hour.map_or(f32::NAN, f32::from)]
                })
                .collect();
            let json = |(amount, country, hour): &(Option<f64>, Cat, Option<u8>)| {
                let c = match country {
                    Cat::Str(s) => serde_json::json!(s),
                    Cat::Num(n) => serde_json::json!(n),
                    Cat::Bool(b) => serde_json::json!(b),
                    Cat::Null => serde_json::Value::Null,
                };
                [serde_json::json!(amount), c, serde_json::json!(hour)]
            };
            let named = |r: &(Option<f64>, Cat, Option<u8>)| {
                let [a, c, h] = json(r);
                serde_json::json!({"hour": h, "country": c, "amount": a, "is_fraud": 0})
            };
            let lists: Vec<_> = rows.iter().map(json).collect();
            let (format, body, n) = match shape {
                0 => (Format::Json, serde_json::json!(lists).to_string(), rows.len()),
                1 => (Format::Json, serde_json::json!({"instances": lists}).to_string(), rows.len()),
                2 => (Format::Json, serde_json::json!(rows.iter().map(named).collect::<Vec<_>>()).to_string(), rows.len()),
                3 => (Format::JsonLines, lists.iter().map(|l| serde_json::json!(l).to_string() + "\n").collect(), rows.len()),
                4 => (Format::JsonLines, rows.iter().map(|r| named(r).to_string() + "\r\n").collect(), rows.len()),
                5 => (Format::Detect, serde_json::json!(lists[0]).to_string(), 1),
                _ => {
                    let field = |v: &serde_json::Value| match v {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    let csv = lists.iter().map(|l| l.iter().map(field).collect::<Vec<_>>().join(",") + "\n").collect();
                    (Format::Csv, csv, rows.len())
                }
            };
            let got = parse(format, body.as_bytes(), &schema);
            prop_assert!(got.is_ok(), "{body}: {got:?}");
            let got = got.unwrap();
            prop_assert!(same(&got, &want[..3 * n]), "{body}: {got:?} vs {:?}", &want[..3 * n]);
        }
    }

    /// A categorical value in [`categorical_rows_parse_to_their_encoding`].
    #[derive(Debug, Clone)]
    enum Cat {
        Str(String),
        Num(i32),
        Bool(bool),
        Null,
    }
}

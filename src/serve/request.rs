//! Request bodies → a batch of validated rows (29 features each, in model
//! order, `Amount` standardized, every value finite as an f32, the type the
//! models compute in). Parsed once here; the model never sees raw text.
//!
//! Accepted bodies:
//! * JSON: `[29 numbers]` (the lab's Lambda), `[[…], …]`, `{"instances": …}`,
//!   `{"inputs": …}`, `{"V1": …, …, "V28": …, "Amount": …}` or a list of such
//!   objects. Named objects take the raw `Amount` and standardize it the
//!   lab's way (`(Amount − 88.3496…) / 250.1197…`), or `Amount_std` as is;
//!   `Time` and `Class` are ignored.
//! * CSV: one transaction per line, 29 values, no header; blank lines skipped.
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
//! is refused, never "last wins".

use super::error::ApiError;
use crate::data::csv::{check_number, Problem, Shown};
use crate::data::{standardize_amount, FEATURE_NAMES, N_FEATURES};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;

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
pub fn parse(
    format: Format,
    body: &[u8],
    schema: &std::sync::Arc<crate::schema::Schema>,
) -> Result<Vec<f32>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad(
            format!("body is not valid UTF-8 (byte {})", e.valid_up_to()),
            None,
            None,
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(ApiError::bad(
            "empty body: send at least one transaction",
            None,
            None,
        ));
    }
    let rows = match format {
        Format::Json => parse_json(text)?,
        Format::Csv => parse_csv(text, schema)?,
        Format::JsonLines => parse_jsonl(text)?,
        Format::Detect => {
            let t = text.trim_start();
            if !(t.starts_with('[') || t.starts_with('{')) {
                parse_csv(text, schema)?
            } else if is_json_lines(t) {
                parse_jsonl(text)?
            } else {
                parse_json(text)?
            }
        }
    };
    if rows.is_empty() {
        return Err(ApiError::bad("no transactions in the body", None, None));
    }
    Ok(rows)
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

/// One JSON document.
fn parse_json(text: &str) -> Result<Vec<f32>, ApiError> {
    let mut ctx = Ctx::new("row");
    let mut de = serde_json::Deserializer::from_str(text);
    Any(Doc {
        ctx: &mut ctx,
        key: None,
    })
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| ctx.error(e))?;
    Ok(ctx.out)
}

fn parse_jsonl(text: &str) -> Result<Vec<f32>, ApiError> {
    let mut ctx = Ctx::new("line");
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

/// One JSON parse: the rows so far, where the parser is (to place serde's
/// own syntax errors) and the first refusal. serde's errors carry only
/// text, so a refusal is kept here and serde aborted with a blank one.
struct Ctx {
    out: Vec<f32>,
    at: Option<Place>,
    refused: Option<ApiError>,
    /// What a row is called in messages: "row", or "line" for JSON Lines.
    unit: &'static str,
}

/// Where a value sits: its 1-based row and its field.
#[derive(Debug, Clone, Copy)]
struct Place {
    row: usize,
    field: Field,
}

#[derive(Debug, Clone, Copy)]
enum Field {
    /// The row as a whole.
    Row,
    /// The 0-based position in a list row.
    Index(usize),
    /// A named feature's key.
    Key(&'static str),
}

impl Place {
    fn row(row: usize) -> Place {
        Place {
            row,
            field: Field::Row,
        }
    }
}

impl Ctx {
    fn new(unit: &'static str) -> Ctx {
        Ctx {
            out: Vec::with_capacity(N_FEATURES),
            at: None,
            refused: None,
            unit,
        }
    }

    /// "row 2, feature 4 (V4)" and the field's name.
    fn describe(&self, place: Place) -> (String, Option<&'static str>) {
        let (unit, row) = (self.unit, place.row);
        match place.field {
            Field::Index(j) if j < N_FEATURES => (
                format!("{unit} {row}, feature {} ({})", j + 1, FEATURE_NAMES[j]),
                Some(FEATURE_NAMES[j]),
            ),
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
    fn refuse_at<E: de::Error>(&mut self, place: Place, why: Refusal) -> E {
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
    fn number<E: de::Error>(&mut self, place: Place, v: f64) -> Result<f64, E> {
        check_number(v, || Shown::number(v)).map_err(|p| self.refuse_at(place, Refusal::Range(p)))
    }
}

/// What a JSON value was, for messages.
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    Null,
    Bool,
    Number,
    Str(&'a str),
    List,
    Object,
}

impl fmt::Display for Kind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Null => f.write_str("null"),
            Kind::Bool => f.write_str("a boolean"),
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

/// Why a JSON body, row or value was refused.
#[derive(Debug, thiserror::Error)]
enum Refusal<'a> {
    #[error("expected a number, found {0}")]
    NotANumber(Kind<'a>),
    #[error("expected a number, found the string {0:?}: send numbers without quotes")]
    QuotedNumber(&'a str),
    #[error("{0}")]
    Range(Problem),
    #[error("expected {N_FEATURES} features (V1..V28, Amount standardized), found {0}")]
    Count(usize),
    #[error("expected a list of {N_FEATURES} numbers or an object of named features, found {0}")]
    NotARow(Kind<'a>),
    #[error(
        "expected a list of {N_FEATURES} numbers, a list of such lists, or an object; found {0}"
    )]
    NotABatch(Kind<'a>),
    #[error("'{0}' must hold a list")]
    NotAList(&'static str),
    #[error("'{0}' must be the only key")]
    OnlyKey(&'static str),
    #[error("key '{0}' appears twice")]
    Twice(&'a str),
    #[error("give either Amount or Amount_std, not both")]
    BothAmounts,
    #[error("unknown feature '{0}' (expected V1..V28 and Amount or Amount_std)")]
    Unknown(&'a str),
    #[error("missing feature {0}")]
    Missing(&'static str),
}

impl<'a> Refusal<'a> {
    /// A value that is not a number; a string holding one gets a hint.
    fn value(found: Kind<'a>) -> Refusal<'a> {
        match found {
            Kind::Str(s) if s.trim().parse::<f64>().is_ok() => Refusal::QuotedNumber(s),
            _ => Refusal::NotANumber(found),
        }
    }
}

/// What one position of the accepted shapes does with the JSON value found
/// there; [`Any`] turns serde's visitor calls into these four.
trait Shape<'de>: Sized {
    type Out;
    fn number<E: de::Error>(self, v: f64) -> Result<Self::Out, E>;
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
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<S::Out, E> {
        self.0.other(Kind::Bool)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<S::Out, E> {
        self.0.number(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<S::Out, E> {
        self.0.number(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<S::Out, E> {
        self.0.number(v)
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
    fn number<E: de::Error>(self, _: f64) -> Result<(), E> {
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
struct Doc<'c> {
    ctx: &'c mut Ctx,
    key: Option<&'static str>,
}

impl<'de> Shape<'de> for Doc<'_> {
    type Out = ();
    fn number<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.other(Kind::Number)
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<(), E> {
        let why = match self.key {
            Some(key) => Refusal::NotAList(key),
            None => Refusal::NotABatch(found),
        };
        Err(self.ctx.refuse_doc(why))
    }
    /// One row of numbers or a list of rows: the first item tells.
    fn list<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let outer = ctx.at;
        ctx.at = Some(Place {
            row: 1,
            field: Field::Index(0),
        });
        let first = seq.next_element_seed(Any(First { ctx: &mut *ctx }))?;
        ctx.at = outer;
        match first {
            None => Ok(()),
            Some(First::NUMBER) => values(ctx, seq, 1, 1),
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

/// The first item of a top-level list: a number (the list is one row,
/// [`First::NUMBER`]) or a row (the list is a batch).
struct First<'c> {
    ctx: &'c mut Ctx,
}

impl<'c> First<'c> {
    const NUMBER: bool = true;
    fn row(self) -> Row<'c> {
        Row {
            ctx: self.ctx,
            row: 1,
            envelope: Envelope::None,
        }
    }
    const PLACE: Place = Place {
        row: 1,
        field: Field::Index(0),
    };
}

impl<'de> Shape<'de> for First<'_> {
    type Out = bool;
    fn number<E: de::Error>(self, v: f64) -> Result<bool, E> {
        let v = self.ctx.number(First::PLACE, v)?;
        self.ctx.out.push(v as f32);
        Ok(First::NUMBER)
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<bool, E> {
        Err(self.ctx.refuse_at(First::PLACE, Refusal::value(found)))
    }
    fn list<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        self.row().list(seq).map(|()| !First::NUMBER)
    }
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.row().object(map).map(|()| !First::NUMBER)
    }
}

/// One transaction: a list row or a named row (an item of a batch, with
/// [`Envelope::None`]), or a line of JSON Lines ([`Envelope::Line`]: also
/// `{"features": […]}`).
struct Row<'c> {
    ctx: &'c mut Ctx,
    row: usize,
    envelope: Envelope,
}

impl<'de> Shape<'de> for Row<'_> {
    type Out = ();
    fn number<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.other(Kind::Number)
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<(), E> {
        Err(self
            .ctx
            .refuse_at(Place::row(self.row), Refusal::NotARow(found)))
    }
    fn list<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        values(self.ctx, seq, self.row, 0)
    }
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        object(self.ctx, map, self.row, self.envelope)
    }
}

/// What a JSON Lines `key` (`features`, `instances`) holds: one list row.
struct Flat<'c> {
    ctx: &'c mut Ctx,
    row: usize,
    key: &'static str,
}

impl<'de> Shape<'de> for Flat<'_> {
    type Out = ();
    fn number<E: de::Error>(self, _: f64) -> Result<(), E> {
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

/// One feature value at `place`: a number the models can compute with.
struct Number<'c> {
    ctx: &'c mut Ctx,
    place: Place,
}

impl<'de> Shape<'de> for Number<'_> {
    type Out = f64;
    fn number<E: de::Error>(self, v: f64) -> Result<f64, E> {
        self.ctx.number(self.place, v)
    }
    fn other<E: de::Error>(self, found: Kind<'_>) -> Result<f64, E> {
        Err(self.ctx.refuse_at(self.place, Refusal::value(found)))
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
/// pushed): exactly 29 numbers.
fn values<'de, A: SeqAccess<'de>>(
    ctx: &mut Ctx,
    mut seq: A,
    row: usize,
    from: usize,
) -> Result<(), A::Error> {
    let outer = ctx.at;
    let mut n = from;
    loop {
        let place = Place {
            row,
            field: Field::Index(n),
        };
        ctx.at = Some(place);
        if n < N_FEATURES {
            let Some(v) = seq.next_element_seed(Any(Number {
                ctx: &mut *ctx,
                place,
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
    if n != N_FEATURES {
        return Err(ctx.refuse_at(Place::row(row), Refusal::Count(n)));
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
    /// An item of a batch: named features only.
    None,
}

/// A key of an object, classified.
enum Key<'a> {
    /// A model feature's slot; `Amount` (raw) and `Amount_std` share one.
    Feature(usize, &'static str),
    /// `Time` (0) or `Class` (1): read past.
    Ignored(usize, &'static str),
    Envelope(&'static str),
    Unknown(std::borrow::Cow<'a, str>),
}

impl Key<'_> {
    fn name(&self) -> &str {
        match self {
            Key::Feature(_, n) | Key::Ignored(_, n) | Key::Envelope(n) => n,
            Key::Unknown(n) => n,
        }
    }
}

struct KeySeed(Envelope);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(self.classify(v).unwrap_or(Key::Unknown(v.into())))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(self
            .classify(v)
            .unwrap_or_else(|| Key::Unknown(v.to_owned().into())))
    }
}

impl KeySeed {
    fn classify(&self, k: &str) -> Option<Key<'static>> {
        let envelopes: &[&'static str] = match self.0 {
            Envelope::Batch => &["instances", "inputs"],
            Envelope::Line => &["features", "instances"],
            Envelope::None => &[],
        };
        if let Some(e) = envelopes.iter().find(|e| **e == k) {
            return Some(Key::Envelope(e));
        }
        Some(match k {
            "Time" => Key::Ignored(0, "Time"),
            "Class" => Key::Ignored(1, "Class"),
            "Amount" => Key::Feature(N_FEATURES - 1, "Amount"),
            "Amount_std" => Key::Feature(N_FEATURES - 1, "Amount_std"),
            _ => {
                let j = FEATURE_NAMES[..N_FEATURES - 1]
                    .iter()
                    .position(|n| *n == k)?;
                Key::Feature(j, FEATURE_NAMES[j])
            }
        })
    }
}

/// A misused envelope: about the document, or about a JSON Lines line.
fn envelope_error<E: de::Error>(ctx: &mut Ctx, envelope: Envelope, row: usize, why: Refusal) -> E {
    match envelope {
        Envelope::Line => ctx.refuse_at(Place::row(row), why),
        _ => ctx.refuse_doc(why),
    }
}

/// An object at `row`: a named row, or an envelope (see [`Envelope`]).
fn object<'de, A: MapAccess<'de>>(
    ctx: &mut Ctx,
    mut map: A,
    row: usize,
    envelope: Envelope,
) -> Result<(), A::Error> {
    let outer = ctx.at;
    let mut vals = [0f32; N_FEATURES];
    // which key gave each slot, and whether Time and Class were seen
    let mut given: [Option<&'static str>; N_FEATURES] = [None; N_FEATURES];
    let mut ignored = [false; 2];
    let mut wrapped: Option<&'static str> = None;
    let mut first = true;
    while let Some(key) = map.next_key_seed(KeySeed(envelope))? {
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
            Key::Feature(slot, name) => {
                ctx.at = Some(place(Field::Key(name)));
                let v = map.next_value_seed(Any(Number {
                    ctx: &mut *ctx,
                    place: place(Field::Key(name)),
                }))?;
                if let Some(earlier) = given[slot] {
                    let why = if earlier == name {
                        Refusal::Twice(name)
                    } else {
                        Refusal::BothAmounts
                    };
                    return Err(ctx.refuse_at(place(Field::Key(name)), why));
                }
                given[slot] = Some(name);
                vals[slot] = if name == "Amount" {
                    standardize_amount(v) as f32
                } else {
                    v as f32
                };
            }
            Key::Ignored(i, name) => {
                map.next_value_seed(Any(Skip))?;
                if std::mem::replace(&mut ignored[i], true) {
                    return Err(ctx.refuse_at(place(Field::Key(name)), Refusal::Twice(name)));
                }
            }
            Key::Unknown(name) => {
                map.next_value_seed(Any(Skip))?;
                return Err(ctx.refuse_field(row, &name, Refusal::Unknown(&name)));
            }
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
    if let Some(j) = given.iter().position(Option::is_none) {
        return Err(ctx.refuse_field(row, FEATURE_NAMES[j], Refusal::Missing(FEATURE_NAMES[j])));
    }
    ctx.out.extend_from_slice(&vals);
    Ok(())
}

/// CSV bodies go through the one CSV reader of [`crate::data::csv`]
/// (parallel for large bodies); errors name the body's line and the field.
fn parse_csv(
    text: &str,
    schema: &std::sync::Arc<crate::schema::Schema>,
) -> Result<Vec<f32>, ApiError> {
    crate::data::csv::parse_features(text.as_bytes(), schema).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;
    fn parse_lab(f: Format, b: &[u8]) -> Result<Vec<f32>, ApiError> {
        parse(f, b, &std::sync::Arc::new(crate::schema::Schema::lab()))
    }
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
        let one = parse_lab(Format::Json, format!("[{r}]").as_bytes()).unwrap();
        assert_eq!(one.len(), N_FEATURES);
        for body in [
            format!("[[{r}],[{r}]]"),
            format!("{{\"instances\": [[{r}],[{r}]]}}"),
            format!("{{\"inputs\": [[{r}],[{r}]]}}"),
        ] {
            let v = parse_lab(Format::Json, body.as_bytes()).unwrap();
            assert_eq!(v.len(), 2 * N_FEATURES, "{body}");
            assert_eq!(&v[..N_FEATURES], &one[..]);
        }
        let named: String = (1..=28)
            .map(|i| format!("\"V{i}\": {i}, "))
            .collect::<String>()
            + "\"Amount\": 1.0, \"Time\": 5";
        let v = parse_lab(Format::Json, format!("{{{named}}}").as_bytes()).unwrap();
        assert_eq!(v[0], 1.0);
        assert!((v[28] - -0.349_231_3).abs() < 1e-6);
        let v = parse_lab(
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
            parse_lab(Format::Csv, csv.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            parse_lab(Format::Detect, csv.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        let jl = format!("[{r}]\n[{r}]\n");
        assert_eq!(
            parse_lab(Format::JsonLines, jl.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            parse_lab(Format::Detect, jl.as_bytes()).unwrap().len(),
            2 * N_FEATURES
        );
        assert_eq!(
            parse_lab(Format::Detect, format!("[{r}]").as_bytes())
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
        match parse_lab(format, body.as_bytes()) {
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
        match parse_lab(Format::Json, b"[\xff]") {
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
        let v = parse_lab(Format::Json, format!("[{edge}]").as_bytes()).unwrap();
        assert_eq!((v[0], v[1], v[2]), (3.4e38, 0.0, 0.0));
        assert!(parse_lab(Format::Json, named("3e38").as_bytes()).is_ok());
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
            &format!("[{r}]\n\n[{}]", r.replacen("1.5", "null", 1)),
        );
        assert_eq!((row, field.as_deref()), (Some(3), Some("V2")), "{m}");
        assert!(m.contains("found null"), "{m}");
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
        let want = parse_lab(Format::Csv, r.as_bytes()).unwrap();
        for (format, body) in [
            (Format::Json, format!("\u{feff}[{r}]")),
            (Format::Detect, format!("\u{feff}[{r}]")),
            (Format::Csv, format!("\u{feff}{r}")),
            (Format::Detect, format!("\u{feff}{r}")),
            (Format::JsonLines, format!("\u{feff}[{r}]")),
        ] {
            assert_eq!(parse_lab(format, body.as_bytes()).unwrap(), want, "{body}");
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
            let v = parse_lab(Format::Json, body.as_bytes()).unwrap();
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
        let v = parse_lab(Format::Csv, body.as_bytes()).unwrap();
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
                if let Ok(rows) = parse_lab(f, &body) {
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
                let _ = parse_lab(f, body.as_bytes());
                let _ = parse_lab(f, format!("[{body}]").as_bytes());
            }
        }
    }
}

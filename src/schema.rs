//! The columns a model reads: their names, kinds (numeric, or categorical
//! with a vocabulary learned from training data), order, the label's name
//! and the amount column. Training derives a [`Schema`] from the train
//! channel's header and the hyperparameters ([`Spec`]); the artifact carries
//! it; serving parses every request under it. The lab's 29 columns are one
//! value of it ([`Schema::lab`]).
//!
//! # Rows under a schema ("encoded rows")
//! One `f32` per column, in schema order: a numeric column's value, or a
//! categorical column's code (the index of its value in the vocabulary, or
//! `categories.len()` — the "other" bucket — for a value outside it); a
//! missing value (an empty field, `NaN`, JSON `null`) is `NaN` in either.
//! Trees split these rows as they are; the DNN and logistic regression see
//! the *design* row ([`Schema::expand`]): numeric columns as they are,
//! categorical ones one-hot over their vocabulary plus "other", a missing
//! category all zeros.
//!
//! Pure data: no files, no HTTP.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Number of model inputs of the lab's schema: `V1`..`V28` and the
/// standardized `Amount`.
pub const LAB_COLUMNS: usize = 29;

/// Column names of the lab's schema, in order (`Amount` is standardized).
pub const LAB_NAMES: [&str; LAB_COLUMNS] = [
    "V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9", "V10", "V11", "V12", "V13", "V14", "V15",
    "V16", "V17", "V18", "V19", "V20", "V21", "V22", "V23", "V24", "V25", "V26", "V27", "V28",
    "Amount",
];

/// The name the "other" bucket of a categorical column has in the one-hot
/// design and in answers.
pub const OTHER: &str = "(other)";

/// How the training files were laid out, which decides how requests and
/// files may name their columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// The lab's 29 columns: headerless lab files or Kaggle's header (`Time`
    /// dropped, the raw `Amount` standardized the lab's way).
    Lab,
    /// Any CSV with a header: columns are the header's names.
    Header,
    /// SageMaker's built-in algorithms' CSV: no header, label first; the
    /// features are named `f0`, `f1`, ….
    LabelFirst,
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    Numeric,
    /// Values from a vocabulary learned from training data, most frequent
    /// first; anything else is "other".
    Categorical {
        categories: Vec<String>,
    },
}

/// One model input column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
}

impl Column {
    pub fn numeric(name: impl Into<String>) -> Column {
        Column {
            name: name.into(),
            kind: Kind::Numeric,
        }
    }

    pub fn categorical(name: impl Into<String>, categories: Vec<String>) -> Column {
        Column {
            name: name.into(),
            kind: Kind::Categorical { categories },
        }
    }

    /// Values of a categorical column, or None for a numeric one.
    pub fn categories(&self) -> Option<&[String]> {
        match &self.kind {
            Kind::Categorical { categories } => Some(categories),
            Kind::Numeric => None,
        }
    }
}

/// Why a schema (from data, hyperparameters or an artifact) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("no label column '{label}'; the header has {}: set the hyperparameter label to one of them", list(.found))]
    NoLabel { label: String, found: Vec<String> },
    #[error("hyperparameter {param} names column '{name}', which the header does not have (it has {})", list(.found))]
    UnknownColumn {
        param: &'static str,
        name: String,
        found: Vec<String>,
    },
    #[error("column '{0}' appears twice")]
    Duplicate(String),
    #[error("column name {0} is empty")]
    EmptyName(usize),
    #[error("no feature columns left once the label and ignored columns are set aside")]
    NoFeatures,
    #[error("the label '{0}' cannot also be a feature, ignored, categorical or the amount")]
    LabelUsed(String),
    #[error("the amount column '{0}' must be a numeric feature column")]
    Amount(String),
    #[error("categorical column '{column}' has {distinct} distinct values, more than max_categories={max} (an identifier? list it in ignore, or raise max_categories)")]
    TooManyCategories {
        column: String,
        distinct: usize,
        max: usize,
    },
    #[error("categorical column '{column}' lists value '{value}' twice")]
    DuplicateCategory { column: String, value: String },
    #[error("the lab's schema is V1..V28 and Amount (numeric) with label Class; found another")]
    NotLab,
    #[error("ignored column '{0}' is also a column, the label, or ignored twice")]
    Ignored(String),
}

fn list(names: &[String]) -> String {
    const SHOWN: usize = 40;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    if names.is_empty() {
        s.push_str("no columns");
    }
    s
}

/// The columns a model reads, checked: built only by [`Schema::lab`],
/// [`Schema::new`] or deserializing (which runs the same checks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "SchemaRepr")]
pub struct Schema {
    form: Form,
    columns: Vec<Column>,
    label: String,
    amount: Option<String>,
    /// Columns of the training files that training dropped (the `ignore`
    /// hyperparameter): requests may send them, and they are read past.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ignored: Vec<String>,
    /// Column index by name.
    #[serde(skip)]
    index: HashMap<String, usize>,
    /// Per column: value → code, for categorical columns.
    #[serde(skip)]
    codes: Vec<Option<HashMap<String, u32>>>,
}

impl PartialEq for Schema {
    fn eq(&self, o: &Schema) -> bool {
        (
            self.form,
            &self.columns,
            &self.label,
            &self.amount,
            &self.ignored,
        ) == (o.form, &o.columns, &o.label, &o.amount, &o.ignored)
    }
}

/// Stored form of [`Schema`].
#[derive(Deserialize)]
struct SchemaRepr {
    form: Form,
    columns: Vec<Column>,
    label: String,
    amount: Option<String>,
    #[serde(default)]
    ignored: Vec<String>,
}

impl TryFrom<SchemaRepr> for Schema {
    type Error = SchemaError;
    fn try_from(r: SchemaRepr) -> Result<Schema, SchemaError> {
        Schema::new(r.form, r.columns, r.label, r.amount)?.with_ignored(r.ignored)
    }
}

impl Schema {
    /// The lab's schema: `V1`..`V28` and the standardized `Amount`, label
    /// `Class`.
    pub fn lab() -> Schema {
        let columns = LAB_NAMES.iter().map(|n| Column::numeric(*n)).collect();
        Schema::new(Form::Lab, columns, "Class".into(), Some("Amount".into()))
            .expect("the lab's schema is valid")
    }

    /// A checked schema: at least one column, names non-empty and unique,
    /// the label not a column, the amount (if any) a numeric column, each
    /// vocabulary without repeats; a `Lab` form is exactly the lab's columns.
    pub fn new(
        form: Form,
        columns: Vec<Column>,
        label: String,
        amount: Option<String>,
    ) -> Result<Schema, SchemaError> {
        if columns.is_empty() {
            return Err(SchemaError::NoFeatures);
        }
        let mut index = HashMap::with_capacity(columns.len());
        let mut codes = Vec::with_capacity(columns.len());
        for (j, c) in columns.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(SchemaError::EmptyName(j + 1));
            }
            if index.insert(c.name.clone(), j).is_some() {
                return Err(SchemaError::Duplicate(c.name.clone()));
            }
            codes.push(match c.categories() {
                None => None,
                Some(cats) => {
                    let mut m = HashMap::with_capacity(cats.len());
                    for (k, v) in cats.iter().enumerate() {
                        if m.insert(v.clone(), k as u32).is_some() {
                            return Err(SchemaError::DuplicateCategory {
                                column: c.name.clone(),
                                value: v.clone(),
                            });
                        }
                    }
                    Some(m)
                }
            });
        }
        if index.contains_key(&label) {
            return Err(SchemaError::LabelUsed(label));
        }
        if let Some(a) = &amount {
            match index.get(a) {
                Some(&j) if codes[j].is_none() => {}
                _ => return Err(SchemaError::Amount(a.clone())),
            }
        }
        let s = Schema {
            form,
            columns,
            label,
            amount,
            ignored: Vec::new(),
            index,
            codes,
        };
        if form == Form::Lab && !s.has_lab_columns() {
            return Err(SchemaError::NotLab);
        }
        Ok(s)
    }

    fn has_lab_columns(&self) -> bool {
        self.columns.len() == LAB_COLUMNS
            && self
                .columns
                .iter()
                .zip(LAB_NAMES)
                .all(|(c, n)| c.name == n && c.kind == Kind::Numeric)
            && self.label == "Class"
            && self.amount.as_deref() == Some("Amount")
    }

    /// The same schema reading past `ignored` columns (each neither a
    /// column nor the label, none twice).
    pub fn with_ignored(mut self, ignored: Vec<String>) -> Result<Schema, SchemaError> {
        for (i, n) in ignored.iter().enumerate() {
            if self.index.contains_key(n) || *n == self.label || ignored[..i].contains(n) {
                return Err(SchemaError::Ignored(n.clone()));
            }
        }
        self.ignored = ignored;
        Ok(self)
    }

    /// Columns training dropped, which requests may send (read past).
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// True for a name a request may send that is not a column: the label,
    /// a column training dropped, and for the lab's schema `Time`.
    pub fn is_read_past(&self, name: &str) -> bool {
        name == self.label
            || self.ignored.iter().any(|n| n == name)
            || (self.is_lab() && name == "Time")
    }

    /// True for a name a header line of a request may hold: a column's,
    /// one read past ([`Schema::is_read_past`]), and under the lab's schema
    /// `Amount_std` (the standardized `Amount`).
    pub fn may_head(&self, name: &str) -> bool {
        self.position(name).is_some()
            || self.is_read_past(name)
            || (self.is_lab() && name == "Amount_std")
    }

    /// How the training files were laid out.
    pub fn form(&self) -> Form {
        self.form
    }

    /// True for the lab's schema (raw `Amount` standardized the lab's way,
    /// `Amount_std` accepted, `Time` ignored).
    pub fn is_lab(&self) -> bool {
        self.form == Form::Lab
    }

    /// The model input columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Number of model input columns (values in an encoded row).
    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// Names of the columns, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The label column's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The transaction amount column, if the schema names one.
    pub fn amount(&self) -> Option<&str> {
        self.amount.as_deref()
    }

    /// The raw transaction amount of each encoded row of `rows` (row-major,
    /// `n_columns()` values a row), when the schema names an amount column
    /// (`NaN` where a row's is missing). The lab's `Amount` is held
    /// standardized and comes back with the lab's constants.
    pub fn amounts(&self, rows: &[f32]) -> Option<Vec<f64>> {
        let j = self.position(self.amount.as_deref()?)?;
        let lab = self.is_lab();
        let amounts = rows
            .chunks_exact(self.n_columns().max(1))
            .map(|r| {
                let v = f64::from(r[j]);
                if lab {
                    v * crate::data::AMOUNT_STD + crate::data::AMOUNT_MEAN
                } else {
                    v
                }
            })
            .collect();
        Some(amounts)
    }

    /// Index of a column by name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// True when column `j` is categorical.
    pub fn is_categorical(&self, j: usize) -> bool {
        matches!(self.codes.get(j), Some(Some(_)))
    }

    /// True when no column is categorical: the design row is the encoded
    /// row itself.
    pub fn all_numeric(&self) -> bool {
        self.codes.iter().all(Option::is_none)
    }

    /// The code of `value` in categorical column `j`: its index in the
    /// vocabulary, or the "other" code for a value outside it (never an
    /// error). None when `j` is not categorical.
    pub fn code(&self, j: usize, value: &str) -> Option<f32> {
        let m = self.codes.get(j)?.as_ref()?;
        Some(m.get(value).copied().unwrap_or(m.len() as u32) as f32)
    }

    /// The value a code of categorical column `j` stands for ([`OTHER`] for
    /// the other bucket).
    pub fn category(&self, j: usize, code: f32) -> Option<&str> {
        let cats = self.columns.get(j)?.categories()?;
        let k = code as usize;
        if code < 0.0 || k > cats.len() || code.fract() != 0.0 {
            return None;
        }
        Some(cats.get(k).map_or(OTHER, String::as_str))
    }

    /// Width of the design row: 1 per numeric column, vocabulary + 1
    /// ("other") per categorical column.
    pub fn design_width(&self) -> usize {
        self.columns
            .iter()
            .map(|c| c.categories().map_or(1, |v| v.len() + 1))
            .sum()
    }

    /// Names of the design row's inputs: a numeric column's name, or
    /// `column=value` per category (and `column=(other)`).
    pub fn design_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.design_width());
        for c in &self.columns {
            match c.categories() {
                None => out.push(c.name.clone()),
                Some(cats) => {
                    out.extend(cats.iter().map(|v| format!("{}={v}", c.name)));
                    out.push(format!("{}={OTHER}", c.name));
                }
            }
        }
        out
    }

    /// The design row of an encoded row: numeric values as they are
    /// (missing stays `NaN`), each categorical column one-hot over its
    /// vocabulary and "other" (a missing category all zeros). `out` has
    /// [`Schema::design_width`] values.
    pub fn expand(&self, row: &[f32], out: &mut [f32]) {
        let mut k = 0;
        for (c, &v) in self.columns.iter().zip(row) {
            match c.categories() {
                None => {
                    out[k] = v;
                    k += 1;
                }
                Some(cats) => {
                    let width = cats.len() + 1;
                    let slot = &mut out[k..k + width];
                    slot.fill(0.0);
                    if v >= 0.0 && (v as usize) < width {
                        slot[v as usize] = 1.0;
                    }
                    k += width;
                }
            }
        }
    }
}

/// Which layout the training files have; `auto` decides from the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormChoice {
    /// The lab's or Kaggle's files when they look like them and no other
    /// column hyperparameter is set; any other header as `Header`.
    Auto,
    Lab,
    Header,
    LabelFirst,
}

/// What the hyperparameters say about the schema (`layout`, `label`,
/// `label_column`, `ignore`, `categorical`, `amount`, `max_categories`,
/// `min_category_count`), checked for form but not yet against any data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub form: FormChoice,
    /// Label column name; None means `Class`.
    pub label: Option<String>,
    pub ignore: Vec<String>,
    pub categorical: Vec<String>,
    pub amount: Option<String>,
    /// More distinct values than this in a categorical column is an error.
    pub max_categories: usize,
    /// Values seen fewer times than this in training go to "other".
    pub min_category_count: usize,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            form: FormChoice::Auto,
            label: None,
            ignore: Vec::new(),
            categorical: Vec::new(),
            amount: None,
            max_categories: 1000,
            min_category_count: 10,
        }
    }
}

impl Spec {
    /// The label's name (`Class` unless set).
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or("Class")
    }

    /// True when any hyperparameter that describes columns is set: such a
    /// run reads a header by its names even when it is Kaggle's.
    pub fn names_columns(&self) -> bool {
        self.label.is_some()
            || !self.ignore.is_empty()
            || !self.categorical.is_empty()
            || self.amount.is_some()
    }

    /// The schema of a CSV header: every column but the label and the
    /// ignored ones is a feature, numeric unless listed in `categorical`
    /// (whose vocabularies are filled in later, by [`vocabulary`]). Every
    /// name the hyperparameters give must be in the header.
    pub fn from_header(&self, header: &[String]) -> Result<Schema, SchemaError> {
        let label = self.label().to_owned();
        if !header.contains(&label) {
            return Err(SchemaError::NoLabel {
                label,
                found: header.to_vec(),
            });
        }
        let lists = [("ignore", &self.ignore), ("categorical", &self.categorical)];
        for (param, names) in lists {
            for n in names {
                if !header.contains(n) {
                    return Err(SchemaError::UnknownColumn {
                        param,
                        name: n.clone(),
                        found: header.to_vec(),
                    });
                }
                if *n == label {
                    return Err(SchemaError::LabelUsed(label));
                }
            }
        }
        if let Some(a) = &self.amount {
            if !header.contains(a) {
                return Err(SchemaError::UnknownColumn {
                    param: "amount",
                    name: a.clone(),
                    found: header.to_vec(),
                });
            }
            // an ignored or categorical amount is refused by `Schema::new`
        }
        let columns = header
            .iter()
            .filter(|n| **n != label && !self.ignore.contains(n))
            .map(|n| Column {
                name: n.clone(),
                kind: if self.categorical.contains(n) {
                    Kind::Categorical {
                        categories: Vec::new(),
                    }
                } else {
                    Kind::Numeric
                },
            })
            .collect();
        Schema::new(Form::Header, columns, label, self.amount.clone())?
            .with_ignored(self.ignore.clone())
    }

    /// The schema of label-first headerless files with `n_features`
    /// features: `f0`, `f1`, … (the names SageMaker's built-in XGBoost
    /// gives them); `categorical`, `ignore` and `amount` may name them.
    pub fn label_first(&self, n_features: usize) -> Result<Schema, SchemaError> {
        let mut header = vec![self.label().to_owned()];
        header.extend((0..n_features).map(|i| format!("f{i}")));
        let mut s = self.from_header(&header)?;
        s.form = Form::LabelFirst;
        Ok(s)
    }
}

/// The vocabulary of a categorical column from its training counts: values
/// seen at least `min_count` times, most frequent first (ties by value, so
/// the order does not depend on the data's order); the rest fall to
/// "other". More than `max` distinct values is an error.
pub fn vocabulary(
    column: &str,
    counts: HashMap<String, u64>,
    min_count: usize,
    max: usize,
) -> Result<Vec<String>, SchemaError> {
    if counts.len() > max {
        return Err(SchemaError::TooManyCategories {
            column: column.to_owned(),
            distinct: counts.len(),
            max,
        });
    }
    let mut kept: Vec<(String, u64)> = counts
        .into_iter()
        .filter(|&(_, n)| n >= min_count as u64)
        .collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(kept.into_iter().map(|(v, _)| v).collect())
}

impl Schema {
    /// The same schema with the vocabularies of its categorical columns set
    /// (`vocabularies[j]` for column `j`; ignored for numeric columns).
    pub fn with_vocabularies(
        &self,
        mut vocabularies: Vec<Option<Vec<String>>>,
    ) -> Result<Schema, SchemaError> {
        let columns = self
            .columns
            .iter()
            .enumerate()
            .map(
                |(j, c)| match (&c.kind, vocabularies.get_mut(j).and_then(Option::take)) {
                    (Kind::Categorical { .. }, Some(categories)) => {
                        Column::categorical(c.name.clone(), categories)
                    }
                    _ => c.clone(),
                },
            )
            .collect();
        Schema::new(self.form, columns, self.label.clone(), self.amount.clone())?
            .with_ignored(self.ignored.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn cat(name: &str, cats: &[&str]) -> Column {
        Column::categorical(name, header(cats))
    }

    #[test]
    fn the_lab_schema_is_29_numeric_columns_labelled_class() {
        let s = Schema::lab();
        assert!(s.is_lab() && s.all_numeric());
        assert_eq!(s.n_columns(), 29);
        assert_eq!(s.design_width(), 29);
        assert_eq!(s.position("V14"), Some(13));
        assert_eq!(s.position("Amount"), Some(28));
        assert_eq!((s.label(), s.amount()), ("Class", Some("Amount")));
        let json = serde_json::to_string(&s).unwrap();
        let back: Schema = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(json.contains(r#"{"name":"V1","kind":"numeric"}"#), "{json}");
        // the standardized Amount comes back raw
        let mut row = [0f32; 29];
        row[28] = crate::data::standardize_amount(149.62) as f32;
        assert!((s.amounts(&row).unwrap()[0] - 149.62).abs() < 1e-4);
    }

    #[test]
    fn categories_code_to_their_index_and_unknown_values_to_other() {
        let s = Schema::new(
            Form::Header,
            vec![Column::numeric("amt"), cat("mcc", &["5411", "5812"])],
            "fraud".into(),
            Some("amt".into()),
        )
        .unwrap();
        assert_eq!(s.amounts(&[12.5, 0.0, 3.0, 1.0]), Some(vec![12.5, 3.0]));
        assert_eq!(s.amounts(&[]), Some(vec![])); // no rows
        assert_eq!(s.code(1, "5812"), Some(1.0));
        assert_eq!(s.code(1, "9999"), Some(2.0));
        assert_eq!(s.code(0, "1"), None);
        assert_eq!(s.category(1, 2.0), Some(OTHER));
        assert_eq!(s.category(1, 0.0), Some("5411"));
        assert_eq!(s.category(1, 3.0), None);
        assert_eq!(s.design_width(), 4);
        assert_eq!(
            s.design_names(),
            ["amt", "mcc=5411", "mcc=5812", "mcc=(other)"]
        );
        let mut out = [9.0; 4];
        s.expand(&[2.5, 1.0], &mut out);
        assert_eq!(out, [2.5, 0.0, 1.0, 0.0]);
        s.expand(&[f32::NAN, f32::NAN], &mut out);
        assert!(out[0].is_nan());
        assert_eq!(&out[1..], [0.0, 0.0, 0.0]);
        s.expand(&[1.0, 2.0], &mut out);
        assert_eq!(&out[1..], [0.0, 0.0, 1.0]);
        // a code outside the column (never made by `code`) sets nothing
        s.expand(&[1.0, 3.0], &mut out);
        assert_eq!(&out[1..], [0.0, 0.0, 0.0]);
        // columns after a categorical one land after its one-hot block
        let t = Schema::new(
            Form::Header,
            vec![
                Column::numeric("a"),
                cat("b", &["x", "y"]),
                Column::numeric("c"),
            ],
            "y".into(),
            None,
        )
        .unwrap();
        let mut out = [9.0; 5];
        t.expand(&[7.0, 0.0, 8.0], &mut out);
        assert_eq!(out, [7.0, 1.0, 0.0, 0.0, 8.0]);
    }

    #[test]
    fn a_header_becomes_columns_minus_label_and_ignored() {
        let spec = Spec {
            label: Some("is_fraud".into()),
            ignore: header(&["id"]),
            categorical: header(&["country"]),
            amount: Some("amount".into()),
            ..Spec::default()
        };
        let s = spec
            .from_header(&header(&["id", "amount", "country", "is_fraud", "hour"]))
            .unwrap();
        assert_eq!(s.names().collect::<Vec<_>>(), ["amount", "country", "hour"]);
        assert!(s.is_categorical(1) && !s.is_categorical(0));
        assert_eq!(s.form(), Form::Header);
        assert_eq!(s.label(), "is_fraud");
        assert_eq!(s.ignored(), ["id"]);
        assert!(s.is_read_past("id") && s.is_read_past("is_fraud"));
        assert!(!s.is_read_past("amount") && !s.is_read_past("Time"));
        let back: Schema = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.ignored(), ["id"]);
        let lab = serde_json::to_string(&Schema::lab()).unwrap();
        assert!(!lab.contains("ignored"), "{lab}");
        assert!(Schema::lab().is_read_past("Time"));
        for bad in ["amount", "is_fraud"] {
            let e = s.clone().with_ignored(vec![bad.into()]).unwrap_err();
            assert_eq!(e, SchemaError::Ignored(bad.into()));
        }
        let e = s
            .clone()
            .with_ignored(vec!["x".into(), "x".into()])
            .unwrap_err();
        assert_eq!(e, SchemaError::Ignored("x".into()));
    }

    #[test]
    fn every_named_column_must_exist_and_roles_must_not_clash() {
        let h = header(&["a", "b", "Class"]);
        let err = |spec: Spec| spec.from_header(&h).unwrap_err();
        assert!(matches!(
            err(Spec {
                label: Some("y".into()),
                ..Spec::default()
            }),
            SchemaError::NoLabel { .. }
        ));
        let e = err(Spec {
            ignore: header(&["c"]),
            ..Spec::default()
        });
        assert!(e.to_string().contains("ignore names column 'c'"), "{e}");
        assert!(e.to_string().contains("'a', 'b', 'Class'"), "{e}");
        assert!(matches!(
            err(Spec {
                categorical: header(&["zz"]),
                ..Spec::default()
            }),
            SchemaError::UnknownColumn {
                param: "categorical",
                ..
            }
        ));
        assert!(matches!(
            err(Spec {
                amount: Some("q".into()),
                ..Spec::default()
            }),
            SchemaError::UnknownColumn {
                param: "amount",
                ..
            }
        ));
        assert!(matches!(
            err(Spec {
                categorical: header(&["a"]),
                amount: Some("a".into()),
                ..Spec::default()
            }),
            SchemaError::Amount(_)
        ));
        assert!(matches!(
            err(Spec {
                ignore: header(&["a"]),
                amount: Some("a".into()),
                ..Spec::default()
            }),
            SchemaError::Amount(_)
        ));
        // any one column hyperparameter makes a header read by its names
        assert!(!Spec::default().names_columns());
        for spec in [
            Spec {
                label: Some("y".into()),
                ..Spec::default()
            },
            Spec {
                ignore: header(&["a"]),
                ..Spec::default()
            },
            Spec {
                categorical: header(&["a"]),
                ..Spec::default()
            },
            Spec {
                amount: Some("a".into()),
                ..Spec::default()
            },
        ] {
            assert!(spec.names_columns(), "{spec:?}");
        }
        assert!(matches!(
            err(Spec {
                ignore: header(&["Class"]),
                ..Spec::default()
            }),
            SchemaError::LabelUsed(_)
        ));
        assert!(matches!(
            err(Spec {
                ignore: header(&["a", "b"]),
                ..Spec::default()
            }),
            SchemaError::NoFeatures
        ));
        let dup = Spec::default().from_header(&header(&["a", "a", "Class"]));
        assert_eq!(dup.unwrap_err(), SchemaError::Duplicate("a".into()));
    }

    #[test]
    fn errors_list_at_most_40_columns_and_schemas_compare_by_content() {
        let names = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
        let forty = list(&names(40));
        assert!(
            forty.ends_with("'c39'") && !forty.contains("more"),
            "{forty}"
        );
        let more = list(&names(41));
        assert!(more.ends_with("'c39' and 1 more"), "{more}");
        assert_eq!(list(&[]), "no columns");
        let lab = Schema::lab();
        let other = Spec::default().label_first(29).unwrap();
        assert_ne!(lab, other);
        assert_ne!(
            lab,
            Schema::lab().with_ignored(vec!["Time".into()]).unwrap()
        );
        assert_eq!(lab, Schema::lab());
    }

    #[test]
    fn label_first_names_features_like_the_built_in_algorithms() {
        let s = Spec::default().label_first(3).unwrap();
        assert_eq!(s.names().collect::<Vec<_>>(), ["f0", "f1", "f2"]);
        assert_eq!(s.form(), Form::LabelFirst);
        let spec = Spec {
            categorical: header(&["f1"]),
            ..Spec::default()
        };
        assert!(spec.label_first(3).unwrap().is_categorical(1));
    }

    #[test]
    fn vocabularies_are_frequency_ordered_with_rare_values_left_out() {
        let counts: HashMap<String, u64> = [("b", 50), ("a", 50), ("c", 200), ("rare", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let v = vocabulary("x", counts.clone(), 10, 1000).unwrap();
        assert_eq!(v, ["c", "a", "b"]);
        assert_eq!(
            vocabulary("x", counts.clone(), 10, 4).unwrap(),
            v,
            "4 values, at most 4"
        );
        let e = vocabulary("x", counts, 10, 3).unwrap_err();
        assert!(e
            .to_string()
            .contains("'x' has 4 distinct values, more than max_categories=3"));
    }

    #[test]
    fn stored_schemas_are_checked() {
        let bad = |json: &str| {
            serde_json::from_str::<Schema>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(r#"{"form":"header","columns":[],"label":"y","amount":null}"#)
                .contains("no feature columns")
        );
        assert!(bad(r#"{"form":"header","columns":[{"name":"a","kind":"numeric"},{"name":"a","kind":"numeric"}],"label":"y","amount":null}"#)
            .contains("twice"));
        assert!(bad(r#"{"form":"header","columns":[{"name":"a","kind":"categorical","categories":["x","x"]}],"label":"y","amount":null}"#)
            .contains("'x' twice"));
        assert!(bad(r#"{"form":"lab","columns":[{"name":"a","kind":"numeric"}],"label":"Class","amount":null}"#)
            .contains("lab's schema"));
        assert!(bad(r#"{"form":"header","columns":[{"name":"a","kind":"categorical","categories":[]}],"label":"y","amount":"a"}"#)
            .contains("amount column 'a'"));
        let s = Schema::new(
            Form::Header,
            vec![Column::numeric("a"), cat("b", &["x"])],
            "y".into(),
            None,
        )
        .unwrap();
        let back: Schema = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.code(1, "x"), Some(0.0));
    }

    #[test]
    fn vocabularies_fill_in_a_draft() {
        let draft = Spec {
            categorical: header(&["b"]),
            ..Spec::default()
        }
        .from_header(&header(&["a", "b", "Class"]))
        .unwrap();
        let s = draft
            .with_vocabularies(vec![None, Some(header(&["u", "v"]))])
            .unwrap();
        assert_eq!(s.columns()[1].categories().unwrap(), ["u", "v"]);
        assert_eq!(s.code(1, "v"), Some(1.0));
    }
}

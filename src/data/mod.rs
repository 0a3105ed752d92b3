//! Transactions in, rows out: the lab's `Amount` scaling constants, and
//! [`Dataset`], the validated in-memory form every model trains and
//! evaluates on: rows encoded under a [`crate::schema::Schema`].
//!
//! Readers live in [`csv`]; the time-ordered split and the stratified
//! validation holdout in [`split`].

pub mod csv;
pub mod prepare;
pub mod split;

use std::path::PathBuf;

pub use crate::schema::{LAB_COLUMNS as N_FEATURES, LAB_NAMES as FEATURE_NAMES};

/// Mean of `Amount` over the full Kaggle data set (the lab's `StandardScaler`).
pub const AMOUNT_MEAN: f64 = 88.349_619_250_931_34;
/// Population standard deviation of `Amount` over the full Kaggle data set.
pub const AMOUNT_STD: f64 = 250.119_670_135_235_4;

/// Standardizes a raw `Amount` the lab's way: `(Amount - mean) / std`.
#[inline]
pub fn standardize_amount(amount: f64) -> f64 {
    (amount - AMOUNT_MEAN) / AMOUNT_STD
}

/// Labelled transactions: a row-major `n x width` matrix of rows encoded
/// under a schema (see [`crate::schema`]: `NaN` is a missing value) and 0/1
/// labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major rows, `len() == labels.len() * width`.
    pub features: Vec<f32>,
    /// 1 = fraud, 0 = normal.
    pub labels: Vec<u8>,
    /// Values a row has: the schema's columns.
    pub width: usize,
}

impl Dataset {
    /// No rows of `width` values.
    pub fn new(width: usize) -> Dataset {
        Dataset {
            features: Vec::new(),
            labels: Vec::new(),
            width,
        }
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no transactions.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of frauds.
    pub fn n_fraud(&self) -> usize {
        self.labels.iter().filter(|&&y| y == 1).count()
    }

    /// Features of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.width..(i + 1) * self.width]
    }

    /// True when column `j` is missing (`NaN`) in every row.
    pub fn column_all_missing(&self, j: usize) -> bool {
        self.features
            .iter()
            .skip(j)
            .step_by(self.width.max(1))
            .all(|v| v.is_nan())
    }

    /// Appends another data set's rows (of the same width).
    pub fn extend(&mut self, other: Dataset) {
        if self.is_empty() {
            *self = other;
            return;
        }
        self.features.extend_from_slice(&other.features);
        self.labels.extend_from_slice(&other.labels);
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut out = Dataset {
            features: Vec::with_capacity(indices.len() * self.width),
            labels: Vec::with_capacity(indices.len()),
            width: self.width,
        };
        for &i in indices {
            out.features.extend_from_slice(self.row(i));
            out.labels.push(self.labels[i]);
        }
        out
    }
}

/// Why a data file or channel was refused. Row errors name file, line (1-based)
/// and column (1-based).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// `source` comes from `fs_err`, which names the path.
    #[error("{source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt gzip data: {source}")]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {problem}")]
    Row {
        path: PathBuf,
        line: usize,
        column: usize,
        problem: csv::Problem,
    },
    #[error("{path}: no data rows after the header")]
    NoRows { path: PathBuf },
    #[error("{path}: {source}")]
    Schema {
        path: PathBuf,
        #[source]
        source: crate::schema::SchemaError,
    },
    #[error("{path}: no header and {columns} columns: a headerless file is the lab's layout (29 features then Class: 30 columns) or, with the hyperparameter label_column=first (or the channel's content type text/csv;label_size=1), the built-in algorithms' layout with the label first; otherwise add a header line naming the columns")]
    Headerless { path: PathBuf, columns: usize },
    #[error("{path}: its header differs from {first}'s: every file of a channel must have the same header")]
    HeaderMismatch { first: PathBuf, path: PathBuf },
    #[error("{path}:{line}: line longer than {limit} bytes (not a CSV of transactions?)")]
    LongLine {
        path: PathBuf,
        line: usize,
        limit: usize,
    },
    #[error("{path}: a {kind}, not a regular file: channels hold only files and folders")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("channel '{channel}': {source}")]
    Walk {
        channel: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("channel '{channel}' ({path}): {why}")]
    Channel {
        channel: String,
        path: PathBuf,
        why: ChannelProblem,
    },
}

/// Why a channel holds nothing to learn from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelProblem {
    #[error("no data files")]
    NoFiles,
    #[error("{files} file(s) but no transactions")]
    NoRows { files: usize },
    #[error("{rows} transactions but no fraud (Class=1) among them: nothing to learn or evaluate")]
    NoFraud { rows: usize },
    #[error(
        "{rows} transactions, all fraud (Class=1): no normal one to learn from or evaluate against"
    )]
    NoNormal { rows: usize },
    #[error("column '{column}' has no value in any row (all missing): drop it, or list it in the hyperparameter ignore")]
    AllMissing { column: String },
    #[error("folder {path} is {first} again (a symlink loop or alias): each folder is read once")]
    FolderTwice { path: PathBuf, first: PathBuf },
}

/// Result alias for data loading.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

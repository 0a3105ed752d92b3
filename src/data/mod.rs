//! Transactions in, arrays out: the 29-feature schema of the lab, the lab's
//! `Amount` scaling constants, and [`Dataset`], the validated in-memory form
//! every model trains and evaluates on.
//!
//! Readers live in [`csv`]; the time-ordered split and the stratified
//! validation holdout in [`split`].

pub mod csv;
pub mod prepare;
pub mod split;

use std::path::PathBuf;

/// Number of model inputs: `V1`..`V28` and the standardized `Amount`.
pub const N_FEATURES: usize = 29;

/// Mean of `Amount` over the full Kaggle data set (the lab's `StandardScaler`).
pub const AMOUNT_MEAN: f64 = 88.349_619_250_931_34;
/// Population standard deviation of `Amount` over the full Kaggle data set.
pub const AMOUNT_STD: f64 = 250.119_670_135_235_4;

/// Standardizes a raw `Amount` the lab's way: `(Amount - mean) / std`.
#[inline]
pub fn standardize_amount(amount: f64) -> f64 {
    (amount - AMOUNT_MEAN) / AMOUNT_STD
}

/// Feature names in model-input order (`Amount` is the standardized amount).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9", "V10", "V11", "V12", "V13", "V14", "V15",
    "V16", "V17", "V18", "V19", "V20", "V21", "V22", "V23", "V24", "V25", "V26", "V27", "V28",
    "Amount",
];

/// Labelled transactions: a row-major `n x 29` feature matrix and 0/1 labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Row-major features, `len() == labels.len() * N_FEATURES`.
    pub features: Vec<f32>,
    /// 1 = fraud, 0 = normal.
    pub labels: Vec<u8>,
}

impl Dataset {
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
        &self.features[i * N_FEATURES..(i + 1) * N_FEATURES]
    }

    /// The feature matrix as an ndarray view (`n x 29`).
    pub fn view(&self) -> ndarray::ArrayView2<'_, f32> {
        ndarray::ArrayView2::from_shape((self.len(), N_FEATURES), &self.features)
            .expect("features length is a multiple of N_FEATURES by construction")
    }

    /// Appends another data set's rows.
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
            features: Vec::with_capacity(indices.len() * N_FEATURES),
            labels: Vec::with_capacity(indices.len()),
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
    #[error("folder {path} is {first} again (a symlink loop or alias): each folder is read once")]
    FolderTwice { path: PathBuf, first: PathBuf },
}

/// Result alias for data loading.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

//! Pure math, no HTTP and no AWS: the fitted models, the [`Model`] trait that
//! serving calls, and the model artifact (versioned, checksummed, atomically
//! written by training, verified on load).
//!
//! # Artifact format (`ccfraud-model.json`, format version 1)
//! Two parts separated by the first newline:
//! 1. a header, one JSON line: `{"format":"ccfraud-model","format_version":1,
//!    "payload_bytes":N,"payload_crc32":"8 hex digits"}`;
//! 2. the payload, JSON of [`Artifact`]: feature names and order, the lab's
//!    `Amount` scaling constants, the name of the default model, and every
//!    trained model with its kind, scaler, threshold, weights and metrics.
//!
//! Loading refuses another format or version, a size or CRC-32 mismatch, and
//! weights that do not fit the schema (shapes, non-finite values, tree links).

pub mod dnn;
pub mod forest;
pub mod logistic;
pub mod scaler;

use crate::data::{AMOUNT_MEAN, AMOUNT_STD, FEATURE_NAMES, N_FEATURES};
use crate::metrics::Report;
use rayon::prelude::*;
use scaler::Scaler;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Artifact file name inside the model folder.
pub const ARTIFACT_FILE: &str = "ccfraud-model.json";
/// Value of the header's `format` field.
pub const FORMAT: &str = "ccfraud-model";
/// Artifact format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The kinds of model ccfraud trains; their names in hyperparameters, flags
/// and the artifact are the lowercase variant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Dnn,
    Logistic,
    Forest,
}

impl ModelKind {
    /// Every kind, in training order.
    pub const ALL: [ModelKind; 3] = [ModelKind::Dnn, ModelKind::Logistic, ModelKind::Forest];

    /// The kind's name (`dnn`, `logistic`, `forest`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Dnn => "dnn",
            ModelKind::Logistic => "logistic",
            ModelKind::Forest => "forest",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`ModelKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model '{0}' (expected dnn, logistic or forest)")]
pub struct UnknownKind(pub String);

impl std::str::FromStr for ModelKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<ModelKind, UnknownKind> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// Which data set a model's evaluation report is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvaluatedOn {
    /// The `test` channel.
    Test,
    /// The validation holdout (no test channel was given).
    Validation,
}

impl std::fmt::Display for EvaluatedOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvaluatedOn::Test => "test",
            EvaluatedOn::Validation => "validation",
        })
    }
}

/// Why a model could not be fitted, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `source` comes from `fs_err`, which names the path.
    #[error("{source}")]
    Io {
        #[from]
        source: std::io::Error,
    },
    #[error("{path}: not a ccfraud model artifact: {problem}")]
    Corrupt { path: PathBuf, problem: Corruption },
    #[error("{path}: artifact format version {found}, this build reads version {FORMAT_VERSION}; retrain or use a matching ccfraud")]
    Version { path: PathBuf, found: u32 },
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("fit failed: {0}")]
    Fit(String),
    /// `stop` said stop: how far the fit got.
    #[error("stopped with {done} of {total} {unit}")]
    Interrupted {
        done: usize,
        total: usize,
        unit: &'static str,
    },
    /// The loss blew up or the parameters stopped being finite numbers;
    /// `hint` names the hyperparameter to change.
    #[error("{model} fit diverged{}: its loss blew up or its parameters stopped being finite numbers; {hint}", .epoch.map(|e| format!(" in epoch {e}")).unwrap_or_default())]
    Diverged {
        model: ModelKind,
        epoch: Option<usize>,
        hint: &'static str,
    },
    #[error("no model named '{wanted}' in the artifact (it has: {available})")]
    UnknownModel { wanted: String, available: String },
}

/// What is wrong with an artifact file's bytes.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    #[error("no header line")]
    NoHeader,
    #[error("bad header: {0}")]
    Header(#[source] serde_json::Error),
    #[error("format is '{0}', expected '{FORMAT}'")]
    Format(String),
    #[error("payload is {found} bytes, header says {expected} (truncated or modified)")]
    Size { found: usize, expected: usize },
    #[error("CRC-32 {found} does not match the header's {expected}")]
    Crc { found: String, expected: String },
    #[error("bad payload: {0}")]
    Payload(#[source] serde_json::Error),
}

/// A fitted estimator: fraud probabilities for a batch. Implemented by each
/// estimator (on the inputs it was fitted on) and by [`TrainedModel`] (on
/// raw rows as the lab sends them, scaling included).
pub trait Model: Send + Sync {
    /// Features each row has.
    fn n_features(&self) -> usize;
    /// Fraud probability of each row of `rows` (row-major,
    /// `n_features()` values a row), written to `out` (`out.len()` rows).
    fn predict_proba(&self, rows: &[f32], out: &mut [f32]);
}

/// The fitted estimator of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Estimator {
    Dnn(dnn::Mlp),
    Logistic(logistic::Logistic),
    Forest(forest::Forest),
}

impl Estimator {
    /// The kind of model this estimator is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Estimator::Dnn(_) => ModelKind::Dnn,
            Estimator::Logistic(_) => ModelKind::Logistic,
            Estimator::Forest(_) => ModelKind::Forest,
        }
    }

    fn model(&self) -> &dyn Model {
        match self {
            Estimator::Dnn(m) => m,
            Estimator::Logistic(m) => m,
            Estimator::Forest(m) => m,
        }
    }
}

/// How a model was fitted and how it scored: kept with it in the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Hyperparameters it was trained with.
    pub params: serde_json::Value,
    pub fit_seconds: f64,
    /// Metrics on the validation holdout (used for model choice).
    pub validation: Report,
    /// Metrics on the test channel, or on the holdout when there is none.
    pub evaluation: Report,
    /// Which set `evaluation` is on.
    pub evaluated_on: EvaluatedOn,
}

/// One trained model with everything needed to score it: built only by
/// [`TrainedModel::new`] or by loading a verified artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    #[serde(rename = "name")]
    kind: ModelKind,
    /// Decision threshold on the fraud probability.
    threshold: f64,
    /// Standardization applied before the estimator (none for the forest).
    scaler: Option<Scaler>,
    estimator: Estimator,
    #[serde(flatten)]
    provenance: Provenance,
}

impl TrainedModel {
    /// A checked model: shapes fit the schema, the threshold is in [0, 1].
    pub fn new(
        threshold: f64,
        scaler: Option<Scaler>,
        estimator: Estimator,
        provenance: Provenance,
    ) -> Result<TrainedModel, ModelError> {
        let m = TrainedModel {
            kind: estimator.kind(),
            threshold,
            scaler,
            estimator,
            provenance,
        };
        m.check()?;
        Ok(m)
    }

    /// The same model with its decision threshold and evaluation, checked
    /// again (training scores the model before it knows either).
    pub fn evaluated(
        mut self,
        threshold: f64,
        provenance: Provenance,
    ) -> Result<TrainedModel, ModelError> {
        self.threshold = threshold;
        self.provenance = provenance;
        self.check()?;
        Ok(self)
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn estimator(&self) -> &Estimator {
        &self.estimator
    }

    pub fn scaler(&self) -> Option<&Scaler> {
        self.scaler.as_ref()
    }

    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Fraud probability of one raw row, without allocating.
    #[inline]
    pub fn score_row(&self, row: &[f32]) -> f32 {
        let mut out = [0f32; 1];
        self.predict_serial(row, &mut out);
        out[0]
    }

    fn check(&self) -> Result<(), ModelError> {
        if self.kind != self.estimator.kind() {
            return Err(ModelError::Invalid(format!(
                "model '{}' holds a {} estimator",
                self.kind,
                self.estimator.kind()
            )));
        }
        if let Some(s) = &self.scaler {
            if s.len() != N_FEATURES || s.std().iter().any(|v| !v.is_finite() || *v <= 0.0) {
                return Err(ModelError::Invalid(format!("{}: bad scaler", self.kind)));
            }
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(ModelError::Invalid(format!(
                "{}: threshold {} outside [0, 1]",
                self.kind, self.threshold
            )));
        }
        if let Estimator::Logistic(m) = &self.estimator {
            m.check(N_FEATURES)?;
        }
        let inputs = self.estimator.model().n_features();
        let fits = match &self.estimator {
            Estimator::Forest(_) => inputs <= N_FEATURES,
            _ => inputs == N_FEATURES,
        };
        if !fits {
            return Err(ModelError::Invalid(format!(
                "{}: the estimator takes {inputs} inputs, the schema has {N_FEATURES}",
                self.kind
            )));
        }
        Ok(())
    }

    /// Scales (when the model has a scaler) and scores rows on this thread.
    fn predict_serial(&self, rows: &[f32], out: &mut [f32]) {
        let est = self.estimator.model();
        let Some(s) = &self.scaler else {
            return est.predict_proba(rows, out);
        };
        // One row (the common request) scales on the stack; batches a
        // bounded chunk at a time.
        const CHUNK: usize = 1024;
        let mut one = [0f32; N_FEATURES];
        let mut chunk = Vec::new();
        let buf: &mut [f32] = if out.len() == 1 {
            &mut one
        } else {
            chunk.resize(CHUNK.min(out.len()) * N_FEATURES, 0.0);
            &mut chunk
        };
        for (rc, oc) in rows.chunks(CHUNK * N_FEATURES).zip(out.chunks_mut(CHUNK)) {
            let b = &mut buf[..rc.len()];
            for (r, o) in rc
                .chunks_exact(N_FEATURES)
                .zip(b.chunks_exact_mut(N_FEATURES))
            {
                s.transform_row(r, o);
            }
            est.predict_proba(b, oc);
        }
    }
}

impl Model for TrainedModel {
    fn n_features(&self) -> usize {
        N_FEATURES
    }

    /// Large batches are split over rayon's pool; small ones stay on the
    /// calling thread.
    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        const PARALLEL_ROWS: usize = 4096;
        if out.len() < PARALLEL_ROWS {
            return self.predict_serial(rows, out);
        }
        let per = out.len().div_ceil(rayon::current_num_threads());
        rows.par_chunks(per * N_FEATURES)
            .zip(out.par_chunks_mut(per))
            .for_each(|(rc, oc)| self.predict_serial(rc, oc));
    }
}

/// `Amount` scaling constants the model expects its input to have used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmountScaling {
    pub mean: f64,
    pub std: f64,
}

/// Everything `train` writes for `serve`: the payload of the artifact file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// ccfraud version that wrote it.
    created_by: String,
    /// Model inputs in order.
    feature_names: Vec<String>,
    amount_scaling: AmountScaling,
    /// The model served by default (best validation AUPRC).
    default_model: ModelKind,
    models: Vec<TrainedModel>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    payload_bytes: usize,
    payload_crc32: String,
}

impl Artifact {
    /// A checked artifact over `models` with `default_model` as the default.
    pub fn new(
        models: Vec<TrainedModel>,
        default_model: ModelKind,
    ) -> Result<Artifact, ModelError> {
        let a = Artifact {
            created_by: format!("ccfraud {}", env!("CARGO_PKG_VERSION")),
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            amount_scaling: AmountScaling {
                mean: AMOUNT_MEAN,
                std: AMOUNT_STD,
            },
            default_model,
            models,
        };
        a.check()?;
        Ok(a)
    }

    /// The ccfraud version that wrote it.
    pub fn created_by(&self) -> &str {
        &self.created_by
    }

    /// The model served by default.
    pub fn default_model(&self) -> ModelKind {
        self.default_model
    }

    /// Every model, in training order.
    pub fn models(&self) -> &[TrainedModel] {
        &self.models
    }

    /// The model of kind `kind`, or the default one.
    pub fn model(&self, kind: Option<ModelKind>) -> Result<&TrainedModel, ModelError> {
        let wanted = kind.unwrap_or(self.default_model);
        self.models
            .iter()
            .find(|m| m.kind == wanted)
            .ok_or_else(|| ModelError::UnknownModel {
                wanted: wanted.to_string(),
                available: self
                    .models
                    .iter()
                    .map(|m| m.kind.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Takes the model of kind `kind` (or the default one) out of the artifact.
    pub fn into_model(self, kind: Option<ModelKind>) -> Result<TrainedModel, ModelError> {
        let wanted = kind.unwrap_or(self.default_model);
        let i = self.model(Some(wanted))?;
        let i = self.models.iter().position(|m| std::ptr::eq(m, i));
        let mut models = self.models;
        Ok(models.swap_remove(i.unwrap_or(0)))
    }

    /// Serializes to the file format (header line + payload).
    pub fn to_bytes(&self) -> Vec<u8> {
        let payload =
            serde_json::to_vec(self).expect("artifact serializes: no maps with non-string keys");
        let header = Header {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            payload_bytes: payload.len(),
            payload_crc32: format!("{:08x}", crc32fast::hash(&payload)),
        };
        let mut out = serde_json::to_vec(&header).expect("header serializes");
        out.push(b'\n');
        out.extend_from_slice(&payload);
        out
    }

    /// Parses and verifies file bytes; `path` names the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Artifact, ModelError> {
        let corrupt = |problem| ModelError::Corrupt {
            path: path.to_owned(),
            problem,
        };
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt(Corruption::NoHeader))?;
        let header: Header =
            serde_json::from_slice(&bytes[..nl]).map_err(|e| corrupt(Corruption::Header(e)))?;
        if header.format != FORMAT {
            return Err(corrupt(Corruption::Format(header.format)));
        }
        if header.format_version != FORMAT_VERSION {
            return Err(ModelError::Version {
                path: path.to_owned(),
                found: header.format_version,
            });
        }
        let payload = &bytes[nl + 1..];
        if payload.len() != header.payload_bytes {
            return Err(corrupt(Corruption::Size {
                found: payload.len(),
                expected: header.payload_bytes,
            }));
        }
        let crc = format!("{:08x}", crc32fast::hash(payload));
        if crc != header.payload_crc32 {
            return Err(corrupt(Corruption::Crc {
                found: crc,
                expected: header.payload_crc32,
            }));
        }
        let a: Artifact =
            serde_json::from_slice(payload).map_err(|e| corrupt(Corruption::Payload(e)))?;
        a.check()?;
        Ok(a)
    }

    /// Reads and verifies `dir/ccfraud-model.json`.
    pub fn load(dir: &Path) -> Result<Artifact, ModelError> {
        let path = dir.join(ARTIFACT_FILE);
        let bytes = fs_err::read(&path)?;
        Artifact::from_bytes(&path, &bytes)
    }

    fn check(&self) -> Result<(), ModelError> {
        if self.feature_names != FEATURE_NAMES {
            return Err(ModelError::Invalid(format!(
                "feature names {:?} differ from this build's schema",
                self.feature_names
            )));
        }
        if self.models.is_empty() {
            return Err(ModelError::Invalid("no models".into()));
        }
        for m in &self.models {
            m.check()?;
        }
        self.model(None)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Rng;
    use rand::{Rng as _, SeedableRng};

    pub(crate) fn sample_artifact() -> Artifact {
        let report = Report::new(&[0.9, 0.1], &[1, 0], 0.5);
        let mut rng = Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..N_FEATURES * 4)
            .map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal) as f32)
            .collect();
        let provenance = Provenance {
            params: serde_json::json!({"epochs": 10}),
            fit_seconds: 1.5,
            validation: report.clone(),
            evaluation: report,
            evaluated_on: EvaluatedOn::Test,
        };
        let dnn = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&x, N_FEATURES)),
            Estimator::Dnn(dnn::Mlp::init(N_FEATURES, &[10, 20, 10], &mut rng)),
            provenance.clone(),
        )
        .unwrap();
        let logistic = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&x, N_FEATURES)),
            Estimator::Logistic(logistic::Logistic::new(vec![0.1; N_FEATURES], -3.0).unwrap()),
            provenance,
        )
        .unwrap();
        Artifact::new(vec![dnn, logistic], ModelKind::Dnn).unwrap()
    }

    #[test]
    fn round_trip_is_exact() {
        let a = sample_artifact();
        let back = Artifact::from_bytes(Path::new("m"), &a.to_bytes()).unwrap();
        assert_eq!(back, a);
        let row: Vec<f32> = (0..N_FEATURES).map(|i| i as f32 / 10.0).collect();
        for m in a.models() {
            assert_eq!(
                m.score_row(&row),
                back.model(Some(m.kind())).unwrap().score_row(&row)
            );
        }
        let logistic = back.clone().into_model(Some(ModelKind::Logistic)).unwrap();
        assert_eq!(logistic.kind(), ModelKind::Logistic);
        assert_eq!(back.into_model(None).unwrap().kind(), ModelKind::Dnn);
        for k in ModelKind::ALL {
            assert_eq!(k.name().parse::<ModelKind>().unwrap(), k);
        }
        assert!("Forest".parse::<ModelKind>().is_err());
    }

    #[test]
    fn models_that_do_not_fit_the_schema_are_refused() {
        let a = sample_artifact();
        assert!(a.created_by().starts_with("ccfraud "), "{}", a.created_by());
        let m = a.model(None).unwrap();
        let narrow = Scaler::fit(&[1.0, 2.0, 3.0, 4.0], 2);
        let e = TrainedModel::new(0.5, Some(narrow), m.estimator.clone(), m.provenance.clone());
        assert!(matches!(e, Err(ModelError::Invalid(_))), "{e:?}");
        let e = TrainedModel::new(
            1.5,
            m.scaler.clone(),
            m.estimator.clone(),
            m.provenance.clone(),
        );
        assert!(matches!(e, Err(ModelError::Invalid(_))), "{e:?}");
    }

    #[test]
    fn batch_equals_single() {
        let a = sample_artifact();
        let m = a.model(None).unwrap();
        let mut rng = Rng::seed_from_u64(1);
        let rows: Vec<f32> = (0..N_FEATURES * 100)
            .map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal) as f32)
            .collect();
        let mut out = vec![0f32; 100];
        m.predict_proba(&rows, &mut out);
        for (i, r) in rows.chunks(N_FEATURES).enumerate() {
            assert!((m.score_row(r) - out[i]).abs() < 1e-6);
        }
    }

    #[test]
    fn rejects_wrong_version_truncation_and_corruption() {
        let bytes = sample_artifact().to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let v2 = text.replacen("\"format_version\":1", "\"format_version\":2", 1);
        assert!(matches!(
            Artifact::from_bytes(Path::new("m"), v2.as_bytes()),
            Err(ModelError::Version { found: 2, .. })
        ));
        let cut = &bytes[..bytes.len() - 10];
        let e = Artifact::from_bytes(Path::new("m"), cut)
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut flipped = bytes.clone();
        let at = flipped.len() - 50;
        flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
        let e = Artifact::from_bytes(Path::new("m"), &flipped)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CRC-32"), "{e}");
        assert!(Artifact::from_bytes(Path::new("m"), b"hello").is_err());
        let mut a = sample_artifact();
        a.default_model = ModelKind::Forest;
        let e = Artifact::from_bytes(Path::new("m"), &a.to_bytes()).unwrap_err();
        assert!(matches!(e, ModelError::UnknownModel { .. }), "{e}");
    }
}

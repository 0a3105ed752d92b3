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
use scaler::Scaler;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Artifact file name inside the model folder.
pub const ARTIFACT_FILE: &str = "ccfraud-model.json";
/// Value of the header's `format` field.
pub const FORMAT: &str = "ccfraud-model";
/// Artifact format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Why a model could not be fitted, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a ccfraud model artifact: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{path}: artifact format version {found}, this build reads version {FORMAT_VERSION}; retrain or use a matching ccfraud")]
    Version { path: String, found: u32 },
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("fit failed: {0}")]
    Fit(String),
    #[error("interrupted")]
    Interrupted,
    #[error("no model named '{wanted}' in the artifact (it has: {available})")]
    UnknownModel { wanted: String, available: String },
}

/// What serving needs from a model: fraud probabilities for a batch.
pub trait Model: Send + Sync {
    /// Features each row must have.
    fn n_features(&self) -> usize;
    /// Fraud probability of each row of `rows` (row-major, raw features as
    /// the lab sends them), written to `out` (`out.len()` rows).
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

/// One trained model with everything needed to score and explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// `dnn`, `logistic` or `forest`.
    pub name: String,
    /// Decision threshold on the fraud probability.
    pub threshold: f64,
    /// Standardization applied before the estimator (none for the forest).
    pub scaler: Option<Scaler>,
    pub estimator: Estimator,
    /// Hyperparameters it was trained with.
    pub params: serde_json::Value,
    pub fit_seconds: f64,
    /// Metrics on the validation holdout (used for model choice).
    pub validation: Report,
    /// Metrics on the test channel, or on the holdout when there is none.
    pub evaluation: Report,
    /// `test` or `validation`: which set `evaluation` is on.
    pub evaluated_on: String,
}

impl TrainedModel {
    /// Fraud probability of one raw row, without allocating.
    #[inline]
    pub fn score_row(&self, row: &[f32]) -> f32 {
        let mut buf = [0f32; N_FEATURES];
        let x = match &self.scaler {
            Some(s) => {
                s.transform_row(row, &mut buf);
                &buf[..]
            }
            None => row,
        };
        match &self.estimator {
            Estimator::Dnn(m) => m.predict_row(x),
            Estimator::Logistic(m) => m.predict_row(x),
            Estimator::Forest(m) => m.predict_row(x),
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        if let Some(s) = &self.scaler {
            if s.len() != N_FEATURES || s.std.iter().any(|v| !v.is_finite() || *v <= 0.0) {
                return Err(ModelError::Invalid(format!("{}: bad scaler", self.name)));
            }
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(ModelError::Invalid(format!(
                "{}: threshold {} outside [0, 1]",
                self.name, self.threshold
            )));
        }
        match &self.estimator {
            Estimator::Dnn(m) if m.n_inputs() != N_FEATURES => Err(ModelError::Invalid(format!(
                "{}: network takes {} inputs, not {N_FEATURES}",
                self.name,
                m.n_inputs()
            ))),
            Estimator::Dnn(_) => Ok(()),
            Estimator::Logistic(m) => m.check(N_FEATURES),
            Estimator::Forest(m) => m.check(N_FEATURES),
        }
    }
}

impl Model for TrainedModel {
    fn n_features(&self) -> usize {
        N_FEATURES
    }

    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        // Large batches are split over all cores.
        const PARALLEL_ROWS: usize = 4096;
        let n = out.len();
        let threads = if n >= PARALLEL_ROWS {
            crate::cores()
        } else {
            1
        };
        if threads > 1 {
            let per = n.div_ceil(threads);
            std::thread::scope(|s| {
                for (rc, oc) in rows.chunks(per * N_FEATURES).zip(out.chunks_mut(per)) {
                    s.spawn(move || self.predict_serial(rc, oc));
                }
            });
            return;
        }
        self.predict_serial(rows, out);
    }
}

impl TrainedModel {
    fn predict_serial(&self, rows: &[f32], out: &mut [f32]) {
        let n = out.len();
        match (&self.estimator, &self.scaler) {
            (Estimator::Dnn(m), Some(s)) if n >= 32 => {
                // Batched: scale a chunk, then matrix products.
                const CHUNK: usize = 4096;
                let mut buf = vec![0f32; CHUNK.min(n) * N_FEATURES];
                for (rc, oc) in rows.chunks(CHUNK * N_FEATURES).zip(out.chunks_mut(CHUNK)) {
                    let b = &mut buf[..rc.len()];
                    for (r, o) in rc
                        .chunks_exact(N_FEATURES)
                        .zip(b.chunks_exact_mut(N_FEATURES))
                    {
                        s.transform_row(r, o);
                    }
                    let view = ndarray::ArrayView2::from_shape((oc.len(), N_FEATURES), b)
                        .expect("chunk holds whole rows");
                    m.predict(view, oc);
                }
            }
            (Estimator::Forest(f), None) => f.predict_batch(rows, N_FEATURES, out),
            _ => {
                for (r, o) in rows.chunks_exact(N_FEATURES).zip(out.iter_mut()) {
                    *o = self.score_row(r);
                }
            }
        }
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
    pub created_by: String,
    /// Model inputs in order.
    pub feature_names: Vec<String>,
    pub amount_scaling: AmountScaling,
    /// Name of the model served by default (best validation AUPRC).
    pub default_model: String,
    pub models: Vec<TrainedModel>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    payload_bytes: usize,
    payload_crc32: String,
}

impl Artifact {
    /// A new artifact over `models` with `default_model` as the default.
    pub fn new(models: Vec<TrainedModel>, default_model: String) -> Artifact {
        Artifact {
            created_by: format!("ccfraud {}", env!("CARGO_PKG_VERSION")),
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            amount_scaling: AmountScaling {
                mean: AMOUNT_MEAN,
                std: AMOUNT_STD,
            },
            default_model,
            models,
        }
    }

    /// The model called `name`, or the default one.
    pub fn model(&self, name: Option<&str>) -> Result<&TrainedModel, ModelError> {
        let wanted = name.unwrap_or(&self.default_model);
        self.models
            .iter()
            .find(|m| m.name == wanted)
            .ok_or_else(|| ModelError::UnknownModel {
                wanted: wanted.to_string(),
                available: self
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
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
    pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<Artifact, ModelError> {
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.to_string(),
            reason,
        };
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("no header line".into()))?;
        let header: Header = serde_json::from_slice(&bytes[..nl])
            .map_err(|e| corrupt(format!("bad header: {e}")))?;
        if header.format != FORMAT {
            return Err(corrupt(format!(
                "format is '{}', expected '{FORMAT}'",
                header.format
            )));
        }
        if header.format_version != FORMAT_VERSION {
            return Err(ModelError::Version {
                path: path.to_string(),
                found: header.format_version,
            });
        }
        let payload = &bytes[nl + 1..];
        if payload.len() != header.payload_bytes {
            return Err(corrupt(format!(
                "payload is {} bytes, header says {} (truncated or modified)",
                payload.len(),
                header.payload_bytes
            )));
        }
        let crc = format!("{:08x}", crc32fast::hash(payload));
        if crc != header.payload_crc32 {
            return Err(corrupt(format!(
                "CRC-32 {crc} does not match the header's {}",
                header.payload_crc32
            )));
        }
        let a: Artifact =
            serde_json::from_slice(payload).map_err(|e| corrupt(format!("bad payload: {e}")))?;
        a.check()?;
        Ok(a)
    }

    /// Reads and verifies `dir/ccfraud-model.json`.
    pub fn load(dir: &Path) -> Result<Artifact, ModelError> {
        let path = dir.join(ARTIFACT_FILE);
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: shown.clone(),
            source,
        })?;
        Artifact::from_bytes(&shown, &bytes)
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
        let x: Vec<f32> = (0..N_FEATURES * 4).map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal) as f32).collect();
        let dnn = TrainedModel {
            name: "dnn".into(),
            threshold: 0.5,
            scaler: Some(Scaler::fit(&x, N_FEATURES)),
            estimator: Estimator::Dnn(dnn::Mlp::init(N_FEATURES, &[10, 20, 10], &mut rng)),
            params: serde_json::json!({"epochs": 10}),
            fit_seconds: 1.5,
            validation: report.clone(),
            evaluation: report.clone(),
            evaluated_on: "test".into(),
        };
        let logistic = TrainedModel {
            name: "logistic".into(),
            estimator: Estimator::Logistic(logistic::Logistic {
                weights: vec![0.1; N_FEATURES],
                intercept: -3.0,
            }),
            ..dnn.clone()
        };
        Artifact::new(vec![dnn, logistic], "dnn".into())
    }

    #[test]
    fn round_trip_is_exact() {
        let a = sample_artifact();
        let back = Artifact::from_bytes("m", &a.to_bytes()).unwrap();
        assert_eq!(back, a);
        let row: Vec<f32> = (0..N_FEATURES).map(|i| i as f32 / 10.0).collect();
        for m in &a.models {
            assert_eq!(
                m.score_row(&row),
                back.model(Some(&m.name)).unwrap().score_row(&row)
            );
        }
    }

    #[test]
    fn batch_equals_single() {
        let a = sample_artifact();
        let m = a.model(None).unwrap();
        let mut rng = Rng::seed_from_u64(1);
        let rows: Vec<f32> = (0..N_FEATURES * 100).map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal) as f32).collect();
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
            Artifact::from_bytes("m", v2.as_bytes()),
            Err(ModelError::Version { found: 2, .. })
        ));
        let cut = &bytes[..bytes.len() - 10];
        let e = Artifact::from_bytes("m", cut).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut flipped = bytes.clone();
        let at = flipped.len() - 50;
        flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
        let e = Artifact::from_bytes("m", &flipped).unwrap_err().to_string();
        assert!(e.contains("CRC-32"), "{e}");
        assert!(Artifact::from_bytes("m", b"hello").is_err());
        let mut a = sample_artifact();
        a.default_model = "forest".into();
        let e = Artifact::from_bytes("m", &a.to_bytes()).unwrap_err();
        assert!(matches!(e, ModelError::UnknownModel { .. }), "{e}");
    }
}

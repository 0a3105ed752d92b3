//! Pure math, no HTTP and no AWS: the fitted models, the [`Model`] trait that
//! serving calls, and the model artifact (versioned, checksummed, atomically
//! written by training, verified on load).
//!
//! # Artifact format (`ccfraud-model.json`, format version 2)
//! Two parts separated by the first newline:
//! 1. a header, one JSON line: `{"format":"ccfraud-model","format_version":2,
//!    "payload_bytes":N,"payload_crc32":"8 hex digits"}`;
//! 2. the payload, JSON of [`Artifact`]: the schema (columns, kinds, order,
//!    vocabularies, label, amount column), the lab's `Amount` scaling
//!    constants (lab schema only), the name of the default model, and every
//!    trained model with its kind, scaler, threshold, weights and metrics;
//!    since drift monitoring, optionally also when it was trained
//!    (`trained_at`, RFC 3339 UTC) and the training distribution of every
//!    column (`drift`, a [`drift::Reference`]). Artifacts without them load
//!    and serve (without drift gauges).
//!
//! Version 1 (before schemas: `feature_names`, always the lab's) still
//! loads, as the lab's schema.
//!
//! Loading refuses a file that is not regular or is over
//! [`MAX_ARTIFACT_BYTES`], another format or version, a size or CRC-32
//! mismatch, and, since a checksum is easily recomputed, anything that does
//! not fit the schema: each model's parts are checked as they are built from
//! their stored form (scaler, DNN layers, logistic weights, forest nodes),
//! then the whole (threshold, inputs, scaler present when used, each kind
//! once, the default present). What is wrong is a typed [`Corruption`] /
//! [`Defect`] naming the model and the place. Past that, the core trusts
//! the models.

pub mod blend;
pub mod calibrate;
pub mod dnn;
pub mod drift;
pub mod explain;
pub mod forest;
pub mod gbdt;
pub mod logistic;
pub mod scaler;

use crate::data::{AMOUNT_MEAN, AMOUNT_STD};
use crate::metrics::{Bin, Intervals, Report};
use crate::schema::Schema;
use calibrate::{Calibrator, CalibratorRepr};
use rayon::prelude::*;
use scaler::Scaler;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Artifact file name inside the model folder.
pub const ARTIFACT_FILE: &str = "ccfraud-model.json";
/// Value of the header's `format` field.
pub const FORMAT: &str = "ccfraud-model";
/// Artifact format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest artifact format version this build still reads (version 1:
/// the lab's schema, implied).
pub const OLDEST_VERSION: u32 = 1;

/// The kinds of model ccfraud trains; their names in hyperparameters, flags
/// and the artifact are the lowercase variant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Dnn,
    Logistic,
    Forest,
    Gbdt,
    /// A weighted mean of other models (`model=all` only; never in
    /// [`ModelKind::ALL`], which lists what can be trained alone).
    Blend,
}

impl ModelKind {
    /// Every kind, in training order.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Dnn,
        ModelKind::Logistic,
        ModelKind::Forest,
        ModelKind::Gbdt,
    ];

    /// The kind's name (`dnn`, `logistic`, `forest`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Dnn => "dnn",
            ModelKind::Logistic => "logistic",
            ModelKind::Forest => "forest",
            ModelKind::Gbdt => "gbdt",
            ModelKind::Blend => "blend",
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
#[error("unknown model '{0}' (expected dnn, logistic, forest, gbdt or blend)")]
pub struct UnknownKind(pub String);

impl std::str::FromStr for ModelKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<ModelKind, UnknownKind> {
        ModelKind::ALL
            .into_iter()
            .chain([ModelKind::Blend])
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

impl EvaluatedOn {
    /// The set's name in metric lines and `metrics.json`.
    pub fn name(self) -> &'static str {
        match self {
            EvaluatedOn::Test => "test",
            EvaluatedOn::Validation => "validation",
        }
    }
}

impl std::fmt::Display for EvaluatedOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest artifact file read: it is read whole, then parsed.
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// Why a model could not be fitted, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `source` comes from `fs_err`, which names the path.
    #[error("{source}")]
    Io {
        #[from]
        source: std::io::Error,
    },
    #[error("{path}: corrupt or tampered model artifact: {problem}")]
    Corrupt { path: PathBuf, problem: Corruption },
    #[error("{path}: artifact format version {found}, this build reads versions {OLDEST_VERSION} to {FORMAT_VERSION}; retrain or use a matching ccfraud")]
    Version { path: PathBuf, found: u32 },
    #[error(
        "{path}: {bytes} bytes, more than the {MAX_ARTIFACT_BYTES} bytes a model artifact may have"
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("artifact refused: {0}")]
    Artifact(Corruption),
    #[error("model '{model}' refused: {defect}")]
    Invalid { model: ModelKind, defect: Defect },
    #[error("{model}: fit failed: {source}")]
    Fit {
        model: ModelKind,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
    #[error(
        "no model named '{wanted}' in the artifact (it has: {})",
        names(available)
    )]
    UnknownModel {
        wanted: ModelKind,
        available: Vec<ModelKind>,
    },
}

fn names(kinds: &[ModelKind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is wrong with an artifact: its bytes, or what they hold.
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
    #[error("feature names {0:?} differ from the lab's schema (a version-1 artifact)")]
    Features(Vec<String>),
    #[error("{0} is only for the lab's schema")]
    Stray(&'static str),
    #[error("model '{0}' reads other columns than the artifact's schema")]
    MixedSchemas(ModelKind),
    #[error("a version-{version} artifact without {what}")]
    Missing { version: u32, what: &'static str },
    #[error("Amount scaling (mean {mean}, std {std}) differs from this build's (mean {AMOUNT_MEAN}, std {AMOUNT_STD})")]
    AmountScaling { mean: f64, std: f64 },
    #[error("no models")]
    NoModels,
    #[error("model '{0}' appears more than once")]
    Duplicate(ModelKind),
    #[error("the default model '{0}' is not in it")]
    NoDefault(ModelKind),
    #[error("model '{model}': {defect}")]
    Model { model: ModelKind, defect: Defect },
    #[error(transparent)]
    Drift(#[from] drift::ReferenceError),
}

/// What is wrong with one model: a shape or a value that does not fit the
/// schema. Found once, when the model is built or loaded; a model that
/// exists has none.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Defect {
    #[error("it holds a {0} estimator")]
    Estimator(ModelKind),
    #[error("{}", if *.has { "it has a scaler, which this kind never uses" } else { "it has no scaler, which this kind needs" })]
    Scaler { has: bool },
    #[error("{of} has {found} values, expected {expected}")]
    Length {
        of: Vector,
        found: usize,
        expected: usize,
    },
    #[error("{at} is {value}: {rule}")]
    Value { at: Place, value: f64, rule: Rule },
    #[error("the estimator takes {found} inputs, the schema gives {expected}")]
    Inputs { found: usize, expected: usize },
    #[error("no layers")]
    NoLayers,
    #[error("layer {layer} takes {found} inputs, the layer before gives {expected}")]
    LayerInputs {
        layer: usize,
        found: usize,
        expected: usize,
    },
    #[error(
        "layer {layer} has {outputs} outputs, expected 1 to {}",
        dnn::MAX_WIDTH
    )]
    LayerWidth { layer: usize, outputs: usize },
    #[error("the last layer has {0} outputs, expected 1")]
    Output(usize),
    #[error("the hidden units' leak is {0}, expected a number in [0, 1)")]
    Leak(f32),
    #[error("no trees")]
    NoTrees,
    #[error("tree {tree} has no nodes")]
    EmptyTree { tree: usize },
    #[error("{nodes} nodes in all, more than {}", u32::MAX - 1)]
    TooManyNodes { nodes: usize },
    #[error("tree {tree} node {node}: children {left} and {right} must come after it, side by side, within the tree's {nodes} nodes")]
    Links {
        tree: usize,
        node: usize,
        left: u32,
        right: u32,
        nodes: usize,
    },
    #[error("tree {tree} node {node}: its count must be above 0 and equal its children's sum, and every node or none must have one")]
    Cover { tree: usize, node: usize },
    #[error("a blend needs two members or more, it has {0}")]
    BlendMembers(usize),
    #[error("blend member '{0}' is not a model of the artifact, is a blend, or appears twice")]
    BlendMember(ModelKind),
    #[error("blend weights sum to {0}, not 1")]
    BlendWeights(f64),
    #[error("tree {tree} node {node}: its category set must be ascending codes below {}", 1u32 << 20)]
    CategorySet { tree: usize, node: usize },
    #[error(
        "tree {tree} node {node} splits on feature {feature}, the schema has {columns} columns"
    )]
    Feature {
        tree: usize,
        node: usize,
        feature: u16,
        columns: usize,
    },
    #[error("the isotonic calibration has no breakpoints")]
    NoBreakpoints,
    #[error("{of}[{at}] is not above the value before it: the calibration must be monotone")]
    Unordered { of: Vector, at: usize },
}

/// A list of numbers of a model, named in a [`Defect::Length`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vector {
    ScalerMean,
    ScalerStd,
    LogisticWeights,
    LayerWeights(usize),
    LayerBias(usize),
    IsotonicX,
    IsotonicY,
}

impl std::fmt::Display for Vector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Vector::ScalerMean => f.write_str("scaler mean"),
            Vector::ScalerStd => f.write_str("scaler std"),
            Vector::LogisticWeights => f.write_str("logistic weights"),
            Vector::LayerWeights(l) => write!(f, "layer {l} weights"),
            Vector::LayerBias(l) => write!(f, "layer {l} bias"),
            Vector::IsotonicX => f.write_str("isotonic calibration scores"),
            Vector::IsotonicY => f.write_str("isotonic calibration probabilities"),
        }
    }
}

/// Where one number of a model sits, named in a [`Defect::Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Threshold,
    /// An element of a [`Vector`].
    In(Vector, usize),
    LogisticIntercept,
    Split {
        tree: usize,
        node: usize,
    },
    Leaf {
        tree: usize,
        node: usize,
    },
    LeafValue {
        tree: usize,
        node: usize,
    },
    /// A booster's base score.
    Base,
    /// The weight of a blend's member.
    BlendWeight(usize),
    PlattSlope,
    PlattIntercept,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Threshold => f.write_str("the decision threshold"),
            Place::In(v, i) => write!(f, "{v}[{i}]"),
            Place::LogisticIntercept => f.write_str("the logistic intercept"),
            Place::Split { tree, node } => write!(f, "tree {tree} node {node}'s split threshold"),
            Place::Leaf { tree, node } => write!(f, "tree {tree} node {node}'s leaf probability"),
            Place::LeafValue { tree, node } => write!(f, "tree {tree} node {node}'s leaf value"),
            Place::Base => f.write_str("the booster's base score"),
            Place::BlendWeight(i) => write!(f, "blend member {i}'s weight"),
            Place::PlattSlope => f.write_str("the Platt calibration's slope"),
            Place::PlattIntercept => f.write_str("the Platt calibration's intercept"),
        }
    }
}

/// What a number of a model must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Finite,
    Positive,
    Probability,
    NonNegative,
}

impl Rule {
    /// Whether `v` keeps the rule.
    pub fn holds(self, v: f64) -> bool {
        match self {
            Rule::Finite => v.is_finite(),
            Rule::Positive => v.is_finite() && v > 0.0,
            Rule::Probability => (0.0..=1.0).contains(&v),
            Rule::NonNegative => v.is_finite() && v >= 0.0,
        }
    }

    /// `Ok`, or the first of `values` that breaks the rule, placed by `at`.
    pub fn check<T: Copy + Into<f64>>(
        self,
        values: &[T],
        at: impl Fn(usize) -> Place,
    ) -> Result<(), Defect> {
        match values.iter().position(|&v| !self.holds(v.into())) {
            None => Ok(()),
            Some(i) => Err(Defect::Value {
                at: at(i),
                value: values[i].into(),
                rule: self,
            }),
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rule::Finite => "must be finite",
            Rule::Positive => "must be finite and above 0",
            Rule::Probability => "must be in [0, 1]",
            Rule::NonNegative => "must be finite and not below 0",
        })
    }
}

/// `Ok` when `found == expected`, else a [`Defect::Length`] of `of`.
pub(crate) fn check_len(of: Vector, found: usize, expected: usize) -> Result<(), Defect> {
    if found == expected {
        Ok(())
    } else {
        Err(Defect::Length {
            of,
            found,
            expected,
        })
    }
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

/// The width a tree ensemble needs: the highest feature index any split
/// reads, plus one (0 for an ensemble of leaves). Rows may be wider.
pub(crate) fn split_width(split_features: impl Iterator<Item = u16>) -> usize {
    split_features
        .map(|f| usize::from(f) + 1)
        .max()
        .unwrap_or(0)
}

/// The fitted estimator of a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Estimator {
    Dnn(dnn::Mlp),
    Logistic(logistic::Logistic),
    Forest(forest::Forest),
    Gbdt(gbdt::Gbdt),
    Blend(blend::Blend),
}

/// Stored form of [`Estimator`], checked by [`TrainedModel::from_repr`].
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum EstimatorRepr {
    Dnn(dnn::MlpRepr),
    Logistic(logistic::LogisticRepr),
    Forest(forest::ForestRepr),
    Gbdt(gbdt::GbdtRepr),
    Blend(blend::BlendRepr),
}

impl Estimator {
    /// The kind of model this estimator is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Estimator::Dnn(_) => ModelKind::Dnn,
            Estimator::Logistic(_) => ModelKind::Logistic,
            Estimator::Forest(_) => ModelKind::Forest,
            Estimator::Gbdt(_) => ModelKind::Gbdt,
            Estimator::Blend(_) => ModelKind::Blend,
        }
    }

    /// The estimator's own checks (weights finite); a forest or a booster
    /// is checked whenever it is built.
    fn check(&self) -> Result<(), Defect> {
        match self {
            Estimator::Dnn(m) => m.check(),
            Estimator::Logistic(m) => m.check(),
            Estimator::Forest(_) | Estimator::Gbdt(_) | Estimator::Blend(_) => Ok(()),
        }
    }

    fn model(&self) -> &dyn Model {
        match self {
            Estimator::Dnn(m) => m,
            Estimator::Logistic(m) => m,
            Estimator::Forest(m) => m,
            Estimator::Gbdt(m) => m,
            Estimator::Blend(m) => m,
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
    /// Bootstrap intervals of `evaluation`'s figures (absent in artifacts
    /// written before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
    /// How the calibration was chosen and what it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationReport>,
}

/// Calibration figures of one set of scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub log_loss: f64,
    pub brier: f64,
    pub auc_roc: f64,
    pub auprc: f64,
    /// Ten equal-width bins of `[0, 1]`, empty ones left out.
    pub reliability: Vec<Bin>,
}

impl Calibration {
    pub fn new(scores: &[f32], labels: &[u8]) -> Calibration {
        use crate::metrics as m;
        Calibration {
            log_loss: m::log_loss(scores, labels),
            brier: m::brier(scores, labels),
            auc_roc: m::auc_roc(scores, labels),
            auprc: m::average_precision(scores, labels),
            reliability: m::reliability(scores, labels, 10),
        }
    }
}

/// The calibration of a model: the method used, each candidate's
/// cross-fitted validation log loss, and the figures before (the
/// estimator's scores) and after (validation: the chosen method's
/// out-of-fold probabilities, each half of the holdout calibrated by the
/// map fitted on the other half; evaluation: the stored map's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub method: calibrate::Method,
    /// `calibration` hyperparameter: `auto` or the method it names.
    pub asked: String,
    pub cross_fit_log_loss: std::collections::BTreeMap<String, f64>,
    pub validation_before: Calibration,
    pub validation_after: Calibration,
    pub evaluation_before: Calibration,
    pub evaluation_after: Calibration,
}

/// One trained model with everything needed to score it: built only by
/// [`TrainedModel::new`] or by loading a verified artifact, so every one
/// fits the schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainedModel {
    #[serde(rename = "name")]
    kind: ModelKind,
    /// Decision threshold on the fraud probability.
    threshold: f64,
    /// Standardization applied before the estimator (none for the forest).
    scaler: Option<Scaler>,
    estimator: Estimator,
    /// Applied to the estimator's score (not written when none; the
    /// provenance's `calibration` says how it was chosen).
    #[serde(rename = "calibrator", skip_serializing_if = "Calibrator::is_none")]
    calibration: Calibrator,
    #[serde(flatten)]
    provenance: Provenance,
    /// The columns its rows have (stored once, in the artifact).
    #[serde(skip)]
    schema: Arc<Schema>,
}

/// Stored form of [`TrainedModel`].
#[derive(Deserialize)]
struct TrainedModelRepr {
    name: ModelKind,
    threshold: f64,
    scaler: Option<scaler::ScalerRepr>,
    estimator: EstimatorRepr,
    /// Absent (before calibration, or none): none.
    #[serde(default)]
    calibrator: Option<CalibratorRepr>,
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
        schema: Arc<Schema>,
    ) -> Result<TrainedModel, ModelError> {
        let m = TrainedModel {
            kind: estimator.kind(),
            threshold,
            scaler,
            estimator,
            calibration: Calibrator::None,
            provenance,
            schema,
        };
        m.checked()
    }

    /// The model a stored form describes, every part checked.
    /// `others` are the artifact's models already built (a blend's members).
    fn from_repr(
        r: TrainedModelRepr,
        schema: &Arc<Schema>,
        others: &[TrainedModel],
    ) -> Result<TrainedModel, Defect> {
        let estimator = match r.estimator {
            EstimatorRepr::Dnn(m) => Estimator::Dnn(m.try_into()?),
            EstimatorRepr::Logistic(m) => Estimator::Logistic(m.try_into()?),
            EstimatorRepr::Forest(m) => Estimator::Forest(m.try_into()?),
            EstimatorRepr::Gbdt(m) => Estimator::Gbdt(m.try_into()?),
            EstimatorRepr::Blend(m) => Estimator::Blend(m.resolve(others)?),
        };
        let m = TrainedModel {
            kind: r.name,
            threshold: r.threshold,
            scaler: r.scaler.map(Scaler::try_from).transpose()?,
            estimator,
            calibration: r
                .calibrator
                .map(Calibrator::try_from)
                .transpose()?
                .unwrap_or_default(),
            provenance: r.provenance,
            schema: schema.clone(),
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
        self.checked()
    }

    /// The same model scoring calibrated probabilities (checked again).
    pub fn calibrated(mut self, calibration: Calibrator) -> Result<TrainedModel, ModelError> {
        self.calibration = calibration;
        self.checked()
    }

    /// The map from the estimator's score to the probability served.
    pub fn calibration(&self) -> &Calibrator {
        &self.calibration
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

    /// The columns of the rows it scores.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The schema, shared.
    pub fn schema_arc(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Fraud probability of one raw row, without allocating.
    #[inline]
    pub fn score_row(&self, row: &[f32]) -> f32 {
        let mut out = [0f32; 1];
        self.predict_serial(row, &mut out);
        out[0]
    }

    /// The model, once its estimator (fitted, so not checked yet) and the
    /// whole are checked.
    fn checked(self) -> Result<TrainedModel, ModelError> {
        let parts = (self.scaler.as_ref().map_or(Ok(()), Scaler::check))
            .and_then(|()| self.estimator.check())
            .and_then(|()| self.calibration.check());
        match parts.and_then(|()| self.check()) {
            Ok(()) => Ok(self),
            Err(defect) => Err(ModelError::Invalid {
                model: self.kind,
                defect,
            }),
        }
    }

    /// What the parts cannot check alone: the estimator is of the model's
    /// kind and has a scaler exactly when its kind uses one (every kind but
    /// the trees — forest and gbdt — which split the schema's columns as
    /// they are); a scaled estimator takes the schema's design row (scaler
    /// included), trees split only the schema's columns; the threshold is a
    /// probability.
    fn check(&self) -> Result<(), Defect> {
        let estimator = self.estimator.kind();
        if self.kind != estimator {
            return Err(Defect::Estimator(estimator));
        }
        Rule::Probability.check(&[self.threshold], |_| Place::Threshold)?;
        let scaled = !matches!(
            estimator,
            ModelKind::Forest | ModelKind::Gbdt | ModelKind::Blend
        );
        let width = self.schema.design_width();
        if let Some(s) = &self.scaler {
            check_len(Vector::ScalerMean, s.len(), width)?;
        }
        if self.scaler.is_some() != scaled {
            return Err(Defect::Scaler { has: !scaled });
        }
        let found = self.estimator.model().n_features();
        if scaled && found != width {
            return Err(Defect::Inputs {
                found,
                expected: width,
            });
        }
        match &self.estimator {
            Estimator::Forest(f) => f.check_features(self.schema.n_columns())?,
            Estimator::Gbdt(g) => g.check_features(self.schema.n_columns())?,
            Estimator::Dnn(_) | Estimator::Logistic(_) | Estimator::Blend(_) => {}
        }
        Ok(())
    }

    /// Scores rows under the schema on this thread: the forest splits them
    /// as they are; the other kinds see each row's design row (categories
    /// one-hot), standardized, a missing value at the training mean.
    fn predict_serial(&self, rows: &[f32], out: &mut [f32]) {
        self.predict_uncalibrated(rows, out);
        self.calibration.apply_all(out);
    }

    /// The estimator's scores, before the calibration.
    fn predict_uncalibrated(&self, rows: &[f32], out: &mut [f32]) {
        let est = self.estimator.model();
        let Some(s) = &self.scaler else {
            return est.predict_proba(rows, out);
        };
        let d = self.schema.n_columns();
        let w = self.schema.design_width();
        let expand = !self.schema.all_numeric();
        // One row (the common request) scales on the stack when it fits;
        // batches a bounded chunk at a time.
        const CHUNK: usize = 1024;
        const STACK: usize = 64;
        let mut one = [0f32; STACK];
        let mut chunk = Vec::new();
        let buf: &mut [f32] = if out.len() == 1 && w <= STACK {
            &mut one[..w]
        } else {
            chunk.resize(CHUNK.min(out.len()) * w, 0.0);
            &mut chunk
        };
        let mut design = vec![0f32; if expand { w } else { 0 }];
        for (rc, oc) in rows.chunks(CHUNK * d).zip(out.chunks_mut(CHUNK)) {
            let b = &mut buf[..oc.len() * w];
            for (r, o) in rc.chunks_exact(d).zip(b.chunks_exact_mut(w)) {
                if expand {
                    self.schema.expand(r, &mut design);
                    s.transform_row(&design, o);
                } else {
                    s.transform_row(r, o);
                }
            }
            est.predict_proba(b, oc);
        }
    }
}

impl Model for TrainedModel {
    /// Values a row has: the schema's columns.
    fn n_features(&self) -> usize {
        self.schema.n_columns()
    }

    /// Large batches are split over rayon's pool; small ones stay on the
    /// calling thread.
    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        const PARALLEL_ROWS: usize = 4096;
        if out.len() < PARALLEL_ROWS {
            return self.predict_serial(rows, out);
        }
        let per = out.len().div_ceil(rayon::current_num_threads());
        rows.par_chunks(per * self.schema.n_columns())
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
/// Built only by [`Artifact::new`] or [`Artifact::from_bytes`], both checked.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// ccfraud version that wrote it.
    created_by: String,
    /// The columns every model reads (the lab's for a version-1 file).
    schema: Arc<Schema>,
    /// The lab's `Amount` constants, for the lab's schema only.
    amount_scaling: Option<AmountScaling>,
    /// The model served by default (best validation AUPRC).
    default_model: ModelKind,
    models: Vec<TrainedModel>,
    /// When training wrote it (RFC 3339, UTC); absent in older artifacts.
    trained_at: Option<String>,
    /// The training rows' distribution, for drift; absent in older artifacts.
    drift: Option<drift::Reference>,
    /// The format version it was read from ([`FORMAT_VERSION`] when built).
    format_version: u32,
}

/// Equal when they hold the same: the version a file was read from is not
/// part of it (a version-1 file written again is the same artifact).
impl PartialEq for Artifact {
    fn eq(&self, other: &Artifact) -> bool {
        self.created_by == other.created_by
            && self.schema == other.schema
            && self.amount_scaling == other.amount_scaling
            && self.default_model == other.default_model
            && self.models == other.models
            && self.trained_at == other.trained_at
            && self.drift == other.drift
    }
}

impl Serialize for Artifact {
    /// The payload as written (format version 2).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ArtifactOut {
            created_by: &self.created_by,
            schema: &self.schema,
            amount_scaling: self.amount_scaling.as_ref(),
            default_model: self.default_model,
            models: &self.models,
            trained_at: self.trained_at.as_deref(),
            drift: self.drift.as_ref(),
        }
        .serialize(s)
    }
}

/// The payload as written (format version 2).
#[derive(Serialize)]
struct ArtifactOut<'a> {
    created_by: &'a str,
    schema: &'a Schema,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_scaling: Option<&'a AmountScaling>,
    default_model: ModelKind,
    models: &'a [TrainedModel],
    #[serde(skip_serializing_if = "Option::is_none")]
    trained_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drift: Option<&'a drift::Reference>,
}

/// Stored form of [`Artifact`], either version: version 1 has
/// `feature_names` (the lab's) and no schema; version 2 has a schema.
#[derive(Deserialize)]
struct ArtifactRepr {
    created_by: String,
    #[serde(default)]
    feature_names: Option<Vec<String>>,
    #[serde(default)]
    schema: Option<Schema>,
    #[serde(default)]
    amount_scaling: Option<AmountScaling>,
    default_model: ModelKind,
    models: Vec<TrainedModelRepr>,
    #[serde(default)]
    trained_at: Option<String>,
    #[serde(default)]
    drift: Option<drift::Reference>,
}

impl ArtifactRepr {
    /// The artifact a stored form of `version` describes, checked.
    fn into_artifact(self, version: u32) -> Result<Artifact, Corruption> {
        let missing = |what| Corruption::Missing { version, what };
        let schema = if version == 1 {
            let names = self.feature_names.ok_or(missing("feature_names"))?;
            if names != crate::schema::LAB_NAMES {
                return Err(Corruption::Features(names));
            }
            Schema::lab()
        } else {
            self.schema.ok_or(missing("a schema"))?
        };
        let schema = Arc::new(schema);
        // Blends last: their members are the other models.
        let (blends, singles): (Vec<_>, Vec<_>) = self
            .models
            .into_iter()
            .partition(|m| matches!(m.estimator, EstimatorRepr::Blend(_)));
        let mut models: Vec<TrainedModel> = Vec::new();
        for m in singles.into_iter().chain(blends) {
            let model = m.name;
            let built = TrainedModel::from_repr(m, &schema, &models)
                .map_err(|defect| Corruption::Model { model, defect })?;
            models.push(built);
        }
        let a = Artifact {
            created_by: self.created_by,
            schema,
            amount_scaling: self.amount_scaling,
            default_model: self.default_model,
            models,
            trained_at: self.trained_at,
            drift: self.drift,
            format_version: version,
        };
        a.check()?;
        Ok(a)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    payload_bytes: usize,
    payload_crc32: String,
}

impl Artifact {
    /// A checked artifact over `models` (which share one schema) with
    /// `default_model` as the default.
    pub fn new(
        models: Vec<TrainedModel>,
        default_model: ModelKind,
    ) -> Result<Artifact, ModelError> {
        let schema = models
            .first()
            .map(|m| m.schema.clone())
            .ok_or(ModelError::Artifact(Corruption::NoModels))?;
        let a = Artifact {
            created_by: format!("ccfraud {}", env!("CARGO_PKG_VERSION")),
            amount_scaling: schema.is_lab().then_some(AmountScaling {
                mean: AMOUNT_MEAN,
                std: AMOUNT_STD,
            }),
            schema,
            default_model,
            models,
            trained_at: None,
            drift: None,
            format_version: FORMAT_VERSION,
        };
        a.check().map_err(ModelError::Artifact)?;
        Ok(a)
    }

    /// The same artifact stamped with what training knows beside the
    /// models: when it ran (`trained_at`, RFC 3339) and the distribution of
    /// the rows it fitted on (checked against the schema).
    pub fn with_training(
        mut self,
        trained_at: String,
        drift: drift::Reference,
    ) -> Result<Artifact, ModelError> {
        self.trained_at = Some(trained_at);
        self.drift = Some(drift);
        self.check().map_err(ModelError::Artifact)?;
        Ok(self)
    }

    /// When training wrote it (RFC 3339, UTC), if the artifact says.
    pub fn trained_at(&self) -> Option<&str> {
        self.trained_at.as_deref()
    }

    /// The format version of the file it was read from.
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// The training distribution for drift, if the artifact has one.
    pub fn drift(&self) -> Option<&drift::Reference> {
        self.drift.as_ref()
    }

    /// The ccfraud version that wrote it.
    pub fn created_by(&self) -> &str {
        &self.created_by
    }

    /// The columns every model reads.
    pub fn schema(&self) -> &Schema {
        &self.schema
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
                wanted,
                available: self.models.iter().map(|m| m.kind).collect(),
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
        if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&header.format_version) {
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
        let stored: ArtifactRepr =
            serde_json::from_slice(payload).map_err(|e| corrupt(Corruption::Payload(e)))?;
        stored.into_artifact(header.format_version).map_err(corrupt)
    }

    /// Reads and verifies `dir/ccfraud-model.json`: a regular file (a FIFO
    /// would block) of at most [`MAX_ARTIFACT_BYTES`].
    pub fn load(dir: &Path) -> Result<Artifact, ModelError> {
        use std::io::Read;
        let path = dir.join(ARTIFACT_FILE);
        let (file, len) = crate::open_regular(&path)?;
        let mut bytes = Vec::new();
        if len <= MAX_ARTIFACT_BYTES {
            bytes.reserve_exact(len as usize);
            // `take`: the file may grow while it is read.
            file.take(MAX_ARTIFACT_BYTES + 1).read_to_end(&mut bytes)?;
        }
        let bytes_seen = len.max(bytes.len() as u64);
        if bytes_seen > MAX_ARTIFACT_BYTES {
            return Err(ModelError::TooLarge {
                path,
                bytes: bytes_seen,
            });
        }
        Artifact::from_bytes(&path, &bytes)
    }

    /// What the models cannot check alone (each is checked when built):
    /// one schema for all, the lab's `Amount` constants exactly for the
    /// lab's schema, each kind at most once, the default present.
    fn check(&self) -> Result<(), Corruption> {
        match (&self.amount_scaling, self.schema.is_lab()) {
            (Some(a), true) => {
                let (mean, std) = (a.mean, a.std);
                if (mean, std) != (AMOUNT_MEAN, AMOUNT_STD) {
                    return Err(Corruption::AmountScaling { mean, std });
                }
            }
            (None, false) => {}
            (Some(_), false) => return Err(Corruption::Stray("amount_scaling")),
            (None, true) => {
                return Err(Corruption::Missing {
                    version: FORMAT_VERSION,
                    what: "amount_scaling",
                })
            }
        }
        if self.models.is_empty() {
            return Err(Corruption::NoModels);
        }
        if let Some(m) = self.models.iter().find(|m| *m.schema != *self.schema) {
            return Err(Corruption::MixedSchemas(m.kind));
        }
        for (i, m) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|o| o.kind == m.kind) {
                return Err(Corruption::Duplicate(m.kind));
            }
        }
        if self.model(None).is_err() {
            return Err(Corruption::NoDefault(self.default_model));
        }
        if let Some(d) = &self.drift {
            d.check(self.schema.n_columns())?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::N_FEATURES;
    use crate::Rng;

    /// The lab's schema, shared.
    pub(crate) fn lab() -> Arc<Schema> {
        Arc::new(Schema::lab())
    }
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
            intervals: None,
            calibration: None,
        };
        let dnn = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&x, N_FEATURES)),
            Estimator::Dnn(dnn::Mlp::init(N_FEATURES, &[10, 20, 10], &mut rng)),
            provenance.clone(),
            lab(),
        )
        .unwrap();
        let logistic = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&x, N_FEATURES)),
            Estimator::Logistic(logistic::Logistic::new(vec![0.1; N_FEATURES], -3.0).unwrap()),
            provenance,
            lab(),
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
    fn training_facts_round_trip_and_are_optional() {
        let a = sample_artifact();
        assert_eq!((a.trained_at(), a.drift()), (None, None));
        let rows: Vec<f32> = (0..N_FEATURES * 20).map(|i| (i % 7) as f32).collect();
        let reference = drift::Reference::fit(&rows, N_FEATURES, &[None; N_FEATURES]);
        let stamped = a
            .clone()
            .with_training("2026-12-03T16:00:00Z".into(), reference.clone())
            .unwrap();
        let back = Artifact::from_bytes(Path::new("m"), &stamped.to_bytes()).unwrap();
        assert_eq!(back.trained_at(), Some("2026-12-03T16:00:00Z"));
        assert_eq!(back.drift(), Some(&reference));
        // without them the payload has neither key (older readers, older files)
        let plain = String::from_utf8(a.to_bytes()).unwrap();
        assert!(!plain.contains("\"trained_at\"") && !plain.contains("\"drift\""));
        let narrow = drift::Reference::fit(&rows, 1, &[None]);
        let e = a.with_training("t".into(), narrow).unwrap_err();
        assert!(
            e.to_string().contains("drift reference has 1 columns"),
            "{e}"
        );
    }

    #[test]
    fn models_that_do_not_fit_the_schema_are_refused() {
        let a = sample_artifact();
        assert!(a.created_by().starts_with("ccfraud "), "{}", a.created_by());
        let m = a.model(None).unwrap();
        let (est, prov) = (m.estimator.clone(), m.provenance.clone());
        let narrow = Scaler::fit(&[1.0, 2.0, 3.0, 4.0], 2);
        let e = TrainedModel::new(0.5, Some(narrow), est.clone(), prov.clone(), lab()).unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Invalid {
                    model: ModelKind::Dnn,
                    defect: Defect::Length {
                        of: Vector::ScalerMean,
                        found: 2,
                        expected: 29
                    }
                }
            ),
            "{e}"
        );
        let e =
            TrainedModel::new(1.5, m.scaler.clone(), est.clone(), prov.clone(), lab()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "model 'dnn' refused: the decision threshold is 1.5: must be in [0, 1]"
        );
        let e = TrainedModel::new(0.5, None, est, prov, lab()).unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Invalid {
                    defect: Defect::Scaler { has: false },
                    ..
                }
            ),
            "{e}"
        );
    }

    /// The payload of `a`'s file as JSON, changed by `tamper`, re-signed
    /// (size and CRC-32 recomputed as [`Artifact::to_bytes`] does) and
    /// loaded: what a forger gets past the checksum.
    fn resigned(
        a: &Artifact,
        tamper: impl FnOnce(&mut serde_json::Value),
    ) -> Result<Artifact, ModelError> {
        resigned_as(a, FORMAT_VERSION, tamper)
    }

    /// The payload of a resigned artifact did not parse as one.
    fn assert_unreadable(p: Result<Artifact, ModelError>) {
        assert!(
            matches!(
                p,
                Err(ModelError::Corrupt {
                    problem: Corruption::Payload(_),
                    ..
                })
            ),
            "{p:?}"
        );
    }

    /// [`resigned`] under the header's format version `version`.
    fn resigned_as(
        a: &Artifact,
        version: u32,
        tamper: impl FnOnce(&mut serde_json::Value),
    ) -> Result<Artifact, ModelError> {
        let mut v = serde_json::to_value(a).unwrap();
        tamper(&mut v);
        let payload = serde_json::to_vec(&v).unwrap();
        let header = Header {
            format: FORMAT.into(),
            format_version: version,
            payload_bytes: payload.len(),
            payload_crc32: format!("{:08x}", crc32fast::hash(&payload)),
        };
        let mut bytes = serde_json::to_vec(&header).unwrap();
        bytes.push(b'\n');
        bytes.extend_from_slice(&payload);
        Artifact::from_bytes(Path::new("m/ccfraud-model.json"), &bytes)
    }

    #[test]
    fn version_1_artifacts_load_as_the_lab_schema() {
        let a = sample_artifact();
        let v1 = |v: &mut serde_json::Value| {
            let o = v.as_object_mut().unwrap();
            o.remove("schema");
            o.insert(
                "feature_names".into(),
                serde_json::json!(crate::schema::LAB_NAMES),
            );
        };
        let back = resigned_as(&a, 1, v1).unwrap();
        assert_eq!(back, a);
        assert_eq!(
            (back.format_version(), a.format_version()),
            (1, FORMAT_VERSION)
        );
        assert!(back.schema().is_lab());
        let row: Vec<f32> = (0..N_FEATURES).map(|i| i as f32 / 7.0).collect();
        for m in a.models() {
            let b = back.model(Some(m.kind())).unwrap();
            assert_eq!(m.score_row(&row), b.score_row(&row));
        }
        // version 1 names the lab's features, in order, or nothing loads
        let p = resigned_as(&a, 1, |v| {
            v1(v);
            v["feature_names"][0] = serde_json::json!("Time");
        });
        assert!(
            matches!(
                p,
                Err(ModelError::Corrupt {
                    problem: Corruption::Features(_),
                    ..
                })
            ),
            "{p:?}"
        );
        let p = resigned_as(&a, 1, |v| {
            v.as_object_mut().unwrap().remove("schema");
        });
        assert!(
            matches!(
                p,
                Err(ModelError::Corrupt {
                    problem: Corruption::Missing { version: 1, .. },
                    ..
                })
            ),
            "{p:?}"
        );
    }

    /// A version-1 artifact written by ccfraud before schemas (commit
    /// 27576c7: dnn, logistic and a small forest on synthetic lab rows) and
    /// the fraud scores that build served for six rows: this build loads it
    /// as the lab's schema and gives the same scores.
    #[test]
    fn a_real_version_1_artifact_serves_as_before() {
        let bytes = include_bytes!("../../tests/fixtures/artifact-v1/ccfraud-model.json");
        let expected: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/artifact-v1/expected.json"
        ))
        .unwrap();
        assert!(bytes.starts_with(br#"{"format":"ccfraud-model","format_version":1,"#));
        let a = Artifact::from_bytes(Path::new("v1"), bytes).unwrap();
        assert!(a.schema().is_lab());
        let rows: Vec<f32> = expected["rows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        assert_eq!(a.models().len(), 3, "dnn, logistic and forest");
        for m in a.models() {
            let kind = m.kind();
            let mut out = vec![0f32; rows.len() / N_FEATURES];
            m.predict_proba(&rows, &mut out);
            let want = expected[kind.name()].as_array().unwrap();
            assert_eq!(out.len(), want.len());
            for (got, want) in out.iter().zip(want) {
                let want = want.as_f64().unwrap() as f32;
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1e-30),
                    "{kind}: {got} vs {want}"
                );
            }
        }
        // and written again, it is version 2 with the lab's schema
        let again = Artifact::from_bytes(Path::new("v2"), &a.to_bytes()).unwrap();
        assert_eq!(again, a);
    }

    #[test]
    fn user_schemas_travel_in_the_artifact_and_drive_the_design() {
        use crate::schema::{Column, Form};
        let schema = Arc::new(
            Schema::new(
                Form::Header,
                vec![
                    Column::numeric("amt"),
                    Column::categorical("mcc", vec!["5411".into(), "5812".into()]),
                ],
                "y".into(),
                Some("amt".into()),
            )
            .unwrap(),
        );
        // design rows: amt, mcc=5411, mcc=5812, mcc=(other)
        let x = [1.0f32, 1.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0];
        let weights = vec![0.5, 1.0, -1.0, 2.0];
        let prov = sample_artifact().models()[0].provenance.clone();
        let m = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&x, 4)),
            Estimator::Logistic(logistic::Logistic::new(weights.clone(), 0.0).unwrap()),
            prov.clone(),
            schema.clone(),
        )
        .unwrap();
        let a = Artifact::new(vec![m], ModelKind::Logistic).unwrap();
        let back = Artifact::from_bytes(Path::new("m"), &a.to_bytes()).unwrap();
        assert_eq!(back, a);
        assert_eq!(*back.schema(), *schema);
        assert!(serde_json::to_value(&a)
            .unwrap()
            .get("amount_scaling")
            .is_none());
        let m = back.model(None).unwrap();
        // by hand: standardize the design row (missing at the mean: 0), dot
        let s = m.scaler().unwrap();
        let by_hand = |design: [f32; 4]| {
            let z: f32 = design
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let t = (v - s.mean()[j]) / s.std()[j];
                    weights[j] * if t.is_nan() { 0.0 } else { t }
                })
                .sum();
            1.0 / (1.0 + (-z).exp())
        };
        let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        close(m.score_row(&[2.0, 1.0]), by_hand([2.0, 0.0, 1.0, 0.0]));
        close(m.score_row(&[2.0, 2.0]), by_hand([2.0, 0.0, 0.0, 1.0]));
        close(
            m.score_row(&[f32::NAN, f32::NAN]),
            by_hand([f32::NAN, 0.0, 0.0, 0.0]),
        );
        assert_eq!(m.n_features(), 2);
        // a design wider than the one-row stack buffer: one row alone and
        // in a batch score the same
        let many: Vec<String> = (0..80).map(|i| format!("c{i}")).collect();
        let wide = Arc::new(
            Schema::new(
                Form::Header,
                vec![Column::numeric("amt"), Column::categorical("shop", many)],
                "y".into(),
                None,
            )
            .unwrap(),
        );
        let w = wide.design_width();
        let xw: Vec<f32> = (0..w * 3).map(|i| (i % 7) as f32).collect();
        let m = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&xw, w)),
            Estimator::Logistic(logistic::Logistic::new(vec![0.01; w], 0.0).unwrap()),
            prov.clone(),
            wide,
        )
        .unwrap();
        let rows = [3.0f32, 5.0, 1.0, 80.0];
        let mut batch = [0f32; 2];
        m.predict_proba(&rows, &mut batch);
        assert_eq!(m.score_row(&rows[..2]), batch[0]);
        assert_eq!(m.score_row(&rows[2..]), batch[1]);
        assert_ne!(batch[0], batch[1]);
        // a scaler over the encoded row (2 values), not the design (4), is refused
        let e = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&[1.0, 2.0], 2)),
            Estimator::Logistic(logistic::Logistic::new(weights, 0.0).unwrap()),
            prov,
            schema,
        )
        .unwrap_err();
        assert!(e.to_string().contains("expected 4"), "{e}");
    }

    /// The defect found in the model `model` of a re-signed artifact.
    fn defect(a: &Artifact, tamper: impl FnOnce(&mut serde_json::Value)) -> (ModelKind, Defect) {
        match resigned(a, tamper) {
            Err(ModelError::Corrupt {
                problem: Corruption::Model { model, defect },
                ..
            }) => (model, defect),
            other => panic!("expected a defect, got {other:?}"),
        }
    }

    #[test]
    fn resigned_scalers_that_do_not_fit_are_refused() {
        use serde_json::json;
        let a = sample_artifact();
        // issue 10's reproduction: std cut to one element
        let e = resigned(&a, |v| v["models"][0]["scaler"]["std"] = json!([1.0])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m/ccfraud-model.json: corrupt or tampered model artifact: model 'dnn': scaler std has 1 values, expected 29"
        );
        let short = |v: &mut serde_json::Value| {
            for f in ["mean", "std"] {
                v["models"][1]["scaler"][f].as_array_mut().unwrap().pop();
            }
        };
        assert_eq!(
            defect(&a, short),
            (
                ModelKind::Logistic,
                Defect::Length {
                    of: Vector::ScalerMean,
                    found: 28,
                    expected: 29
                }
            )
        );
        for std in [0.0, -2.0] {
            let (_, d) = defect(&a, |v| v["models"][0]["scaler"]["std"][3] = json!(std));
            assert_eq!(
                d,
                Defect::Value {
                    at: Place::In(Vector::ScalerStd, 3),
                    value: std,
                    rule: Rule::Positive
                }
            );
        }
        let (_, d) = defect(&a, |v| v["models"][0]["scaler"] = json!(null));
        assert_eq!(d, Defect::Scaler { has: false });
    }

    #[test]
    fn resigned_weights_that_do_not_fit_are_refused() {
        use serde_json::json;
        let a = sample_artifact();
        let dnn = |v: &mut serde_json::Value| v["models"][0]["estimator"]["layers"].clone();
        let (m, d) = defect(&a, |v| {
            v["models"][0]["estimator"]["layers"][1]["weights"]
                .as_array_mut()
                .unwrap()
                .pop();
        });
        assert_eq!(
            (m, d),
            (
                ModelKind::Dnn,
                Defect::Length {
                    of: Vector::LayerWeights(1),
                    found: 199,
                    expected: 200
                }
            )
        );
        let (_, d) = defect(&a, |v| {
            v["models"][0]["estimator"]["layers"][2]["bias"] = json!([0.0])
        });
        assert_eq!(
            d,
            Defect::Length {
                of: Vector::LayerBias(2),
                found: 1,
                expected: 10
            }
        );
        let (_, d) = defect(&a, |v| {
            v["models"][0]["estimator"]["layers"][1]["inputs"] = json!(20)
        });
        assert_eq!(
            d,
            Defect::LayerInputs {
                layer: 1,
                found: 20,
                expected: 10
            }
        );
        let (_, d) = defect(&a, |v| v["models"][0]["estimator"]["layers"] = json!([]));
        assert_eq!(d, Defect::NoLayers);
        // drop the output layer: the network ends 10 wide
        let (_, d) = defect(&a, |v| {
            let mut l = dnn(v);
            l.as_array_mut().unwrap().pop();
            v["models"][0]["estimator"]["layers"] = l;
        });
        assert_eq!(d, Defect::Output(10));
        // a consistent network over 28 inputs
        let (_, d) = defect(&a, |v| {
            let mut l = dnn(v);
            l[0]["inputs"] = json!(28);
            l[0]["weights"].as_array_mut().unwrap().truncate(28 * 10);
            v["models"][0]["estimator"]["layers"] = l;
        });
        assert_eq!(
            d,
            Defect::Inputs {
                found: 28,
                expected: 29
            }
        );
        let (m, d) = defect(&a, |v| {
            v["models"][1]["estimator"]["weights"]
                .as_array_mut()
                .unwrap()
                .pop();
        });
        assert_eq!(
            (m, d),
            (
                ModelKind::Logistic,
                Defect::Inputs {
                    found: 28,
                    expected: 29
                }
            )
        );
        // JSON holds no infinity; serde_json refuses one past f32's range
        assert_unreadable(resigned(&a, |v| {
            v["models"][1]["scaler"]["mean"][5] = json!(-1e39)
        }));
    }

    #[test]
    fn resigned_artifacts_that_do_not_fit_are_refused() {
        use serde_json::json;
        let a = sample_artifact();
        let problem = |tamper: &dyn Fn(&mut serde_json::Value)| match resigned(&a, tamper) {
            Err(ModelError::Corrupt { problem, .. }) => problem,
            other => panic!("expected a corruption, got {other:?}"),
        };
        let p = problem(&|v| v["models"][0]["threshold"] = json!(-0.1));
        assert!(
            matches!(
                p,
                Corruption::Model {
                    model: ModelKind::Dnn,
                    defect: Defect::Value {
                        at: Place::Threshold,
                        ..
                    }
                }
            ),
            "{p}"
        );
        let p = problem(&|v| v["models"][1]["name"] = json!("dnn"));
        assert!(
            matches!(
                p,
                Corruption::Model {
                    model: ModelKind::Dnn,
                    defect: Defect::Estimator(ModelKind::Logistic)
                }
            ),
            "{p}"
        );
        let p = problem(&|v| {
            let m = v["models"][0].clone();
            v["models"].as_array_mut().unwrap().push(m);
        });
        assert!(matches!(p, Corruption::Duplicate(ModelKind::Dnn)), "{p}");
        let p = problem(&|v| v["default_model"] = json!("forest"));
        assert!(matches!(p, Corruption::NoDefault(ModelKind::Forest)), "{p}");
        let p = problem(&|v| v["models"] = json!([]));
        assert!(matches!(p, Corruption::NoModels), "{p}");
        let p = problem(&|v| v["schema"]["columns"][0]["name"] = json!("Time"));
        assert!(matches!(p, Corruption::Payload(_)), "{p}");
        assert!(p.to_string().contains("lab's schema"), "{p}");
        let p = problem(&|v| v["amount_scaling"]["std"] = json!(1.0));
        assert!(matches!(p, Corruption::AmountScaling { .. }), "{p}");
        let p = problem(&|v| {
            v.as_object_mut().unwrap().remove("amount_scaling");
        });
        assert!(matches!(p, Corruption::Missing { .. }), "{p}");
        let p = problem(&|v| {
            v.as_object_mut().unwrap().remove("schema");
        });
        assert!(matches!(p, Corruption::Missing { version: 2, .. }), "{p}");
        let p = problem(&|v| v["models"][0]["estimator"]["layers"][0]["weights"] = json!("x"));
        assert!(matches!(p, Corruption::Payload(_)), "{p}");
        // unchanged, it loads
        assert_eq!(resigned(&a, |_| {}).unwrap(), a);
    }

    /// A version-2 artifact written before calibration has none and serves
    /// as before; a stored map applies after the estimator and is checked.
    #[test]
    fn calibration_is_stored_applied_and_checked() {
        use serde_json::json;
        let a = sample_artifact();
        assert!(a.models().iter().all(|m| m.calibration().is_none()));
        let text = String::from_utf8(a.to_bytes()).unwrap();
        assert!(!text.contains("calibrator"), "none is not written");
        let row = vec![0.3f32; N_FEATURES];
        let raw = a.model(Some(ModelKind::Logistic)).unwrap().score_row(&row);
        let platt = resigned(&a, |v| {
            v["models"][1]["calibrator"] =
                json!({"method": "platt", "slope": 2.0, "intercept": -1.0})
        })
        .unwrap();
        let m = platt.model(Some(ModelKind::Logistic)).unwrap();
        let z = (f64::from(raw) / (1.0 - f64::from(raw))).ln();
        let want = 1.0 / (1.0 + (-(2.0 * z - 1.0)).exp());
        assert!((f64::from(m.score_row(&row)) - want).abs() < 1e-5);
        let mut batch = vec![0f32; 5000];
        m.predict_proba(&row.repeat(5000), &mut batch);
        assert!(batch.iter().all(|&s| (s - m.score_row(&row)).abs() < 1e-6));
        assert_eq!(
            Artifact::from_bytes(Path::new("p"), &platt.to_bytes()).unwrap(),
            platt
        );
        let (model, d) = defect(&a, |v| {
            v["models"][0]["calibrator"] =
                json!({"method": "isotonic", "x": [0.2, 0.1], "y": [0.1, 0.2]})
        });
        assert_eq!(
            (model, d),
            (
                ModelKind::Dnn,
                Defect::Unordered {
                    of: Vector::IsotonicX,
                    at: 1
                }
            )
        );
        let (_, d) = defect(&a, |v| {
            v["models"][1]["calibrator"] =
                json!({"method": "platt", "slope": -0.5, "intercept": 0.0})
        });
        assert!(
            d.to_string().contains("Platt calibration's slope is -0.5"),
            "{d}"
        );
        assert_unreadable(resigned(&a, |v| {
            v["models"][0]["calibrator"] = json!({"method": "beta"})
        }));
    }

    #[test]
    fn batch_equals_single() {
        let a = sample_artifact();
        let m = a.model(None).unwrap();
        let mut rng = Rng::seed_from_u64(1);
        // 5,000 rows: above the size split over rayon's pool
        let rows: Vec<f32> = (0..N_FEATURES * 5000)
            .map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal) as f32)
            .collect();
        let mut out = vec![0f32; 5000];
        m.predict_proba(&rows, &mut out);
        for (i, r) in rows.chunks(N_FEATURES).enumerate() {
            assert!((m.score_row(r) - out[i]).abs() < 1e-6);
        }
    }

    #[test]
    fn rejects_wrong_version_truncation_and_corruption() {
        let bytes = sample_artifact().to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let v3 = text.replacen("\"format_version\":2", "\"format_version\":3", 1);
        assert!(matches!(
            Artifact::from_bytes(Path::new("m"), v3.as_bytes()),
            Err(ModelError::Version { found: 3, .. })
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
    }
}

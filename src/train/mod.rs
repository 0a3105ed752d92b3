//! `ccfraud train`: read channels, fit each requested model, evaluate, choose
//! the default model, and write the artifact and metrics — atomically, so a
//! failed or stopped run leaves nothing in the model folder.
//!
//! [`run`] takes a typed [`Config`] and a cancellation token (cancelled by
//! `main` on SIGTERM/SIGINT, or by a test); the fitting loops poll it, and
//! nothing is committed once it is cancelled.
//!
//! In a job of several hosts (`resourceconfig.json`) only the first host
//! trains; the others write nothing and wait for it
//! ([`crate::sagemaker::hosts`]).
//!
//! Model choice, DNN early stopping and `threshold=auto` use a validation
//! holdout (the `validation` channel, else a seeded stratified slice of
//! `train`); the `test` channel only reports.

mod card;
pub mod params;
mod pricing;
mod report;

use crate::data::{self, split::stratified_holdout, DataError, Dataset};
use crate::metrics::{bootstrap, Report, RESAMPLES};
use crate::model::blend::{self, Blend, Member};
use crate::model::calibrate;
use crate::model::dnn::{self, DnnParams};
use crate::model::forest::Forest;
use crate::model::gbdt;
use crate::model::logistic::{Logistic, LogisticParams};
use crate::model::scaler::Scaler;
use crate::model::{
    Artifact, Calibration, CalibrationReport, Estimator, EvaluatedOn, Model, ModelError, ModelKind,
    Provenance, TrainedModel, ARTIFACT_FILE,
};
use crate::s3::{S3Uri, S3};
use crate::sagemaker::archive::{self, ArchiveError};
use crate::sagemaker::hosts::{self, Beacon, ResourceConfig, Role, Waited};
use crate::sagemaker::{
    input_modes, label_first, metric_line, sharded_channels, ConfigError, Exit, InputMode, MlRoot,
};
use crate::schema::Schema;
use params::{Evaluation, ModelChoice, ParamError, TrainParams};
use pricing::Priced;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
pub use tokio_util::sync::CancellationToken;

/// Why training failed. `main` maps each to an exit code and writes it to
/// the failure file.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("channel '{channel}' uses Pipe input mode; ccfraud reads File mode only (set input_mode='File')")]
    PipeMode { channel: String },
    #[error("channel(s) {} use S3DistributionType ShardedByS3Key in a job of {hosts} hosts: each host gets only its share of the files, and ccfraud trains on the first host alone, so it would silently fit and evaluate on part of the data; use FullyReplicated (the SDK's default; TrainingInput(..., distribution='FullyReplicated')) or instance_count=1", channels.join(", "))]
    Sharded { channels: Vec<String>, hosts: usize },
    #[error("no training data: channel 'train' (or 'training') not found at {0}")]
    NoTrainChannel(PathBuf),
    #[error("the training data has {frauds} fraud(s) among {rows} transactions: the validation holdout needs both classes, so each needs two rows or more (or give a 'validation' channel)")]
    OneClassHoldout { rows: usize, frauds: usize },
    #[error("evaluation=rolling: fold {fold}'s test block has {frauds} fraud(s) among {rows} transactions; each block needs both classes (use evaluation=holdout, or more data)")]
    OneClassFold {
        fold: usize,
        rows: usize,
        frauds: usize,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A check of the artifact about to be written failed: serve would
    /// refuse it, so it is not written.
    #[error("the trained artifact would not load back, so nothing was written: {source}")]
    Unusable {
        #[source]
        source: ModelError,
    },
    /// `source` comes from `fs_err`, which names the path.
    #[error("writing the output: {source}")]
    Output {
        #[source]
        source: std::io::Error,
    },
    #[error("training stopped by a signal (SIGTERM/SIGINT) before a model was written")]
    Interrupted,
    #[error("training stopped by a signal (SIGTERM/SIGINT) while fitting {model} ({source}); nothing was written")]
    StoppedFitting {
        model: ModelKind,
        #[source]
        source: ModelError,
    },
    #[error(transparent)]
    S3(#[from] crate::s3::S3Error),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl TrainError {
    /// The exit code under the one policy of [`Exit`]: what the user's
    /// data or hyperparameters cause (a refused channel, a diverged or
    /// unusable fit) is bad input; only our own I/O failing is `Failed`.
    pub fn exit(&self) -> Exit {
        match self {
            TrainError::Params(_)
            | TrainError::Data(_)
            | TrainError::Config(_)
            | TrainError::PipeMode { .. }
            | TrainError::Sharded { .. }
            | TrainError::NoTrainChannel(_)
            | TrainError::OneClassHoldout { .. }
            | TrainError::OneClassFold { .. }
            | TrainError::Unusable { .. } => Exit::BadInput,
            TrainError::Model(e) => match e {
                ModelError::Diverged { .. }
                | ModelError::Fit { .. }
                | ModelError::Invalid { .. }
                | ModelError::Artifact(_) => Exit::BadInput,
                ModelError::Interrupted { .. } => Exit::Stopped,
                ModelError::Io { .. }
                | ModelError::Corrupt { .. }
                | ModelError::Version { .. }
                | ModelError::TooLarge { .. }
                | ModelError::UnknownModel { .. } => Exit::Failed,
            },
            TrainError::Interrupted | TrainError::StoppedFitting { .. } => Exit::Stopped,
            TrainError::Output { .. } => Exit::Failed,
            TrainError::S3(_) | TrainError::Archive(_) => Exit::Transfer,
        }
    }
}

/// Where a run reads its data and writes its model.
#[derive(Debug, Clone)]
pub enum Config {
    /// SageMaker's contract: channels, config and outputs under an ml-root;
    /// in a job of several hosts, how they find each other.
    Local {
        root: MlRoot,
        hosts: hosts::Settings,
    },
    /// Channels on S3 (downloaded into a temporary ml-root; hyperparameters
    /// from `config_root` when it has them); `model.tar.gz` and
    /// `metrics.json` uploaded under `output`.
    Remote {
        config_root: MlRoot,
        /// (channel name, location)
        channels: Vec<(String, S3Uri)>,
        output: S3Uri,
    },
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub artifact: Artifact,
    pub metrics: serde_json::Value,
    /// `thresholds.csv` of the default model, when errors have a price
    /// (see [`pricing`]).
    pub thresholds: Option<String>,
    /// `report.html` (see [`report`]).
    pub report: String,
}

/// Runs training as `config` says until done or `cancel` is cancelled.
/// `None`: this host is a follower in a job of several hosts; it wrote
/// nothing.
pub fn run(config: &Config, cancel: &CancellationToken) -> Result<Option<Outcome>, TrainError> {
    match config {
        Config::Local { root, hosts } => {
            let resources = ResourceConfig::read(root)?;
            let role = resources
                .as_ref()
                .map_or(Role::Single, ResourceConfig::role);
            // Held until training ends, however it ends: followers wait on it.
            let _beacon = match (role, &resources) {
                (Role::Follower { leader }, Some(r)) => {
                    follow(r, leader, *hosts, cancel);
                    return Ok(None);
                }
                (Role::Leader { followers }, _) => lead(root, followers, *hosts)?,
                _ => None,
            };
            let outcome = train_on(root, cancel)?;
            commit(root, &outcome, cancel)?;
            tracing::info!(
                "wrote {} (default model: {})",
                root.model_dir().join(ARTIFACT_FILE).display(),
                outcome.artifact.default_model()
            );
            Ok(Some(outcome))
        }
        Config::Remote {
            config_root,
            channels,
            output,
        } => run_remote(config_root, channels, output, cancel).map(Some),
    }
}

/// The leader of several hosts: refuses sharded channels (it would see only
/// its share), then opens the beacon followers wait on. A beacon that cannot
/// bind is only a warning: training is what matters, and followers then
/// stop waiting after `--leader-wait`.
fn lead(
    root: &MlRoot,
    followers: usize,
    settings: hosts::Settings,
) -> Result<Option<Beacon>, TrainError> {
    let sharded = sharded_channels(root)?;
    if !sharded.is_empty() {
        return Err(TrainError::Sharded {
            channels: sharded,
            hosts: followers + 1,
        });
    }
    let hosts = followers + 1;
    match Beacon::bind(settings.port) {
        Ok(b) => {
            tracing::info!(
                "this host leads a job of {hosts} hosts: it trains and writes the model; the other {followers} write nothing and wait on port {} until it is done",
                b.port()
            );
            Ok(Some(b))
        }
        Err(e) => {
            tracing::warn!(
                "this host leads a job of {hosts} hosts but cannot listen on port {} for the others ({e}): it trains anyway; they stop waiting after {} s",
                settings.port,
                settings.wait.as_secs()
            );
            Ok(None)
        }
    }
}

/// A follower: one line saying why it writes nothing, then waits for the
/// leader to finish (see [`hosts`]). Never an error: the leader's own exit
/// decides the job, and a failure file here would be a second one.
fn follow(r: &ResourceConfig, leader: &str, settings: hosts::Settings, cancel: &CancellationToken) {
    tracing::info!(
        "host {} is not the first of hosts {:?}: {leader} trains and writes the model; this host writes nothing (no two hosts may write the same file into model.tar.gz) and waits for {leader} to finish (port {})",
        r.current_host(),
        r.hosts(),
        settings.port
    );
    match hosts::wait_for_leader(leader, settings.port, settings.wait, hosts::LINGER, cancel) {
        Waited::LeaderDone => tracing::info!("{leader} has finished; this host exits 0, having written nothing"),
        Waited::Unreachable { last_error } => tracing::warn!(
            "could not reach {leader}:{} for {} s ({last_error}); it may have finished or failed already: this host exits 0, having written nothing",
            settings.port,
            settings.wait.as_secs()
        ),
        Waited::Stopped => tracing::info!("stopped by a signal while waiting for {leader}; this host wrote nothing"),
    }
}

/// Hyperparameters from the ml-root (defaults when the file is absent).
pub fn load_params(root: &MlRoot) -> Result<TrainParams, TrainError> {
    match root.read_hyperparameters()? {
        Some(text) => Ok(TrainParams::from_json(&text)?),
        None => Ok(TrainParams::default()),
    }
}

/// The folder of a channel, honouring `training` as an alias of `train`.
fn channel_dir(root: &MlRoot, names: &[&str]) -> Option<(String, PathBuf)> {
    names
        .iter()
        .map(|n| (n.to_string(), root.channel(n)))
        .find(|(_, p)| p.is_dir())
}

fn load_channel(name: &str, dir: &Path, schema: &Arc<Schema>) -> Result<Dataset, TrainError> {
    let t = Instant::now();
    let d = data::csv::read_channel(name, dir, schema)?;
    log_channel(name, &d, t);
    Ok(d)
}

fn log_channel(name: &str, d: &Dataset, t: Instant) {
    tracing::info!(
        "channel {name}: {} transactions, {} frauds, read in {:.2} s",
        d.len(),
        d.n_fraud(),
        t.elapsed().as_secs_f64()
    );
}

/// Reads config and channels of an ml-root and fits; writes nothing.
/// Metric lines go to stdout; progress to the log.
fn train_on(root: &MlRoot, cancel: &CancellationToken) -> Result<Outcome, TrainError> {
    let mut params = load_params(root)?;
    for (channel, mode) in input_modes(root)? {
        if mode == InputMode::Pipe {
            return Err(TrainError::PipeMode { channel });
        }
    }
    let (train_name, train_dir) = channel_dir(root, &["train", "training"])
        .ok_or_else(|| TrainError::NoTrainChannel(root.channel("train")))?;
    if label_first(root, &train_name)? {
        params = params.with_label_first();
    }
    let t = Instant::now();
    let (train, schema) = data::csv::read_train_channel(&train_name, &train_dir, params.schema())?;
    log_channel(&train_name, &train, t);
    tracing::info!("schema: {}", describe(&schema));
    let optional = |name: &str| -> Result<Option<Dataset>, TrainError> {
        channel_dir(root, &[name])
            .map(|(n, d)| load_channel(&n, &d, &schema))
            .transpose()
    };
    let test = optional("test")?;
    let validation = optional("validation")?;
    fit_all(&params, &schema, train, validation, test, cancel)
}

/// Trains with channels on S3: downloads them into a temporary ml-root,
/// trains, then packs the result in memory into `model.tar.gz` (SageMaker's
/// layout) and uploads it with `metrics.json` under the output prefix. A
/// failure before the upload leaves nothing remote; the temporary ml-root
/// is removed either way.
fn run_remote(
    config_root: &MlRoot,
    channels: &[(String, S3Uri)],
    output: &S3Uri,
    cancel: &CancellationToken,
) -> Result<Outcome, TrainError> {
    let output_err = |source| TrainError::Output { source };
    let tmp = tempfile::Builder::new()
        .prefix("ccfraud-train")
        .tempdir()
        .map_err(output_err)?;
    let root = MlRoot::new(tmp.path());
    if let Some(text) = config_root.read_hyperparameters()? {
        let dest = root.hyperparameters();
        if let Some(dir) = dest.parent() {
            fs_err::create_dir_all(dir).map_err(output_err)?;
        }
        fs_err::write(&dest, text).map_err(output_err)?;
    }
    let s3 = S3::connect()?;
    s3.check_bucket(output)?;
    for (name, uri) in channels {
        let n = s3.download_prefix(uri, &root.channel(name))?;
        tracing::info!("channel {name}: downloaded {n} file(s) from {uri}");
    }
    let outcome = train_on(&root, cancel)?;
    if cancel.is_cancelled() {
        return Err(TrainError::Interrupted);
    }
    let (artifact, metrics) = serialized(&outcome)?;
    let archive = archive::pack(&[
        (ARTIFACT_FILE, &artifact),
        ("metrics.json", &metrics),
        ("report.html", outcome.report.as_bytes()),
    ])
    .map_err(output_err)?;
    let model_uri = output.join("model.tar.gz");
    s3.put(archive, &model_uri)?;
    let mut side = vec![
        (metrics, output.join("metrics.json")),
        (
            outcome.report.as_bytes().to_vec(),
            output.join("report.html"),
        ),
    ];
    if let Some(t) = &outcome.thresholds {
        side.push((t.as_bytes().to_vec(), output.join("thresholds.csv")));
    }
    for (bytes, uri) in side {
        if let Err(e) = s3.put(bytes, &uri) {
            let _ = s3.delete(&model_uri);
            return Err(e.into());
        }
    }
    tracing::info!("uploaded {model_uri} and metrics.json");
    Ok(outcome)
}

/// The artifact file's bytes and `metrics.json`'s, once the artifact's bytes
/// are known to load back as serve loads them (every check of
/// [`Artifact::from_bytes`]: shapes, finite weights and scalers, no `null`).
fn serialized(o: &Outcome) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
    let artifact = o.artifact.to_bytes();
    Artifact::from_bytes(Path::new(ARTIFACT_FILE), &artifact)
        .map_err(|source| TrainError::Unusable { source })?;
    let metrics = serde_json::to_vec_pretty(&o.metrics).expect("metrics serialize");
    Ok((artifact, metrics))
}

/// One log line on a schema: its layout, columns and label.
fn describe(s: &Schema) -> String {
    let cats = s
        .columns()
        .iter()
        .filter_map(|c| {
            c.categories()
                .map(|v| format!("{} ({} categories)", c.name, v.len()))
        })
        .collect::<Vec<_>>();
    format!(
        "{:?} layout, {} columns ({} categorical{}{}), label '{}'{}",
        s.form(),
        s.n_columns(),
        cats.len(),
        if cats.is_empty() { "" } else { ": " },
        cats.join(", "),
        s.label(),
        s.amount()
            .map(|a| format!(", amount '{a}'"))
            .unwrap_or_default()
    )
}

/// The design rows of encoded rows (see [`Schema::expand`]): the rows
/// themselves when every column is numeric.
fn design<'a>(schema: &Schema, rows: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
    if schema.all_numeric() {
        return std::borrow::Cow::Borrowed(rows);
    }
    let (d, w) = (schema.n_columns(), schema.design_width());
    let mut out = vec![0f32; rows.len() / d * w];
    for (r, o) in rows.chunks_exact(d).zip(out.chunks_exact_mut(w)) {
        schema.expand(r, o);
    }
    std::borrow::Cow::Owned(out)
}

/// The fit rows and the validation holdout: the `validation` channel, else
/// a seeded, stratified slice of `train` (which must hold both classes).
fn holdout(
    params: &TrainParams,
    train: Dataset,
    validation: Option<Dataset>,
) -> Result<(Dataset, Dataset), TrainError> {
    match validation {
        Some(v) => Ok((train, v)),
        None => {
            let (keep, hold) =
                stratified_holdout(&train.labels, params.validation_fraction(), params.seed());
            let v = train.select(&hold);
            if v.n_fraud() == 0 || v.n_fraud() == v.len() {
                return Err(TrainError::OneClassHoldout {
                    rows: train.len(),
                    frauds: train.n_fraud(),
                });
            }
            Ok((train.select(&keep), v))
        }
    }
}

/// What every kind's fit reads: the fit rows and the holdout, and both as
/// standardized design rows (scaler fitted on the fit rows).
struct Prepared {
    fit_set: Dataset,
    valid: Dataset,
    scaler: Scaler,
    x_fit: Vec<f32>,
    x_val: Vec<f32>,
    width: usize,
}

impl Prepared {
    fn new(schema: &Schema, fit_set: Dataset, valid: Dataset) -> Prepared {
        let width = schema.design_width();
        let (d_fit, d_val) = (
            design(schema, &fit_set.features),
            design(schema, &valid.features),
        );
        let scaler = Scaler::fit(&d_fit, width);
        let x_fit = scaler.transform(&d_fit);
        let x_val = scaler.transform(&d_val);
        Prepared {
            fit_set,
            valid,
            scaler,
            x_fit,
            x_val,
            width,
        }
    }
}

/// Fits one kind of model on prepared rows: its estimator and the scaler
/// it needs. `epoch_lines` prints the DNN's per-epoch metric lines.
fn fit_kind(
    kind: ModelKind,
    params: &TrainParams,
    schema: &Schema,
    p: &Prepared,
    epoch_lines: bool,
    cancel: &CancellationToken,
) -> Result<(Estimator, Option<Scaler>), TrainError> {
    let stopped = || cancel.is_cancelled();
    let stopped_in = |e| match e {
        ModelError::Interrupted { .. } => TrainError::StoppedFitting {
            model: kind,
            source: e,
        },
        e => e.into(),
    };
    let (fit_set, valid, width) = (&p.fit_set, &p.valid, p.width);
    let (x_fit, x_val, scaler) = (&p.x_fit, &p.x_val, &p.scaler);
    Ok(match kind {
        ModelKind::Dnn => {
            let pos_weight = params
                .class_weight()
                .fraud_weight(fit_set.len(), fit_set.n_fraud()) as f32;
            let dp = DnnParams {
                pos_weight,
                ..params.dnn().clone()
            };
            let mut on_epoch = |e: &dnn::Epoch| {
                if !epoch_lines {
                    return;
                }
                println!("{}", metric_line("dnn_epoch", e.epoch as f64));
                println!("{}", metric_line("dnn_train_loss", e.train_loss));
                if let Some(ap) = e.val_auprc {
                    println!("{}", metric_line("dnn_validation_auprc", ap));
                }
            };
            let net = dnn::fit(
                &dp,
                x_fit,
                &fit_set.labels,
                width,
                Some((x_val, &valid.labels)),
                &mut on_epoch,
                &stopped,
            )
            .map_err(stopped_in)?;
            (Estimator::Dnn(net), Some(scaler.clone()))
        }
        ModelKind::Logistic => {
            let lp = LogisticParams {
                pos_weight: params
                    .class_weight()
                    .fraud_weight(fit_set.len(), fit_set.n_fraud()),
                ..params.logistic().clone()
            };
            let fitted =
                Logistic::fit(&lp, x_fit, &fit_set.labels, width, &stopped).map_err(stopped_in)?;
            (Estimator::Logistic(fitted), Some(scaler.clone()))
        }
        ModelKind::Forest => (
            Estimator::Forest(
                Forest::fit(
                    params.forest(),
                    &fit_set.features,
                    &fit_set.labels,
                    schema.n_columns(),
                    &stopped,
                )
                .map_err(stopped_in)?,
            ),
            None,
        ),
        ModelKind::Gbdt => {
            let categories: Vec<Option<usize>> = schema
                .columns()
                .iter()
                .map(|c| c.categories().map(|v| v.len() + 1))
                .collect();
            let mut on_round = |r: &gbdt::Round| {
                if let Some(l) = r.val_loss {
                    tracing::debug!("gbdt round {}: validation log loss {l:.6}", r.round);
                }
            };
            let g = gbdt::fit(
                params.gbdt(),
                &fit_set.features,
                &fit_set.labels,
                schema.n_columns(),
                &categories,
                Some((&valid.features, &valid.labels)),
                &mut on_round,
                &stopped,
            )
            .map_err(stopped_in)?;
            tracing::info!(
                "gbdt: {} trees kept (best validation log loss)",
                g.trees().len()
            );
            if epoch_lines {
                println!("{}", metric_line("gbdt_trees", g.trees().len() as f64));
            }
            (Estimator::Gbdt(g), None)
        }
        // `model` never names it: a blend is made of fitted models
        // (consider_blend), not fitted from rows.
        ModelKind::Blend => {
            return Err(TrainError::Model(ModelError::Fit {
                model: kind,
                source: "a blend is made of fitted models, not fitted from rows".into(),
            }))
        }
    })
}

/// A model fitted (not yet calibrated), its calibration's choice (the
/// out-of-fold validation probabilities among it), the time taken, and the
/// estimator's validation scores.
fn fit_calibrated(
    kind: ModelKind,
    params: &TrainParams,
    schema: &Arc<Schema>,
    p: &Prepared,
    evaluated_on: EvaluatedOn,
    epoch_lines: bool,
    cancel: &CancellationToken,
) -> Result<(TrainedModel, calibrate::Choice, Timing, Vec<f32>), TrainError> {
    let t = Instant::now();
    let (estimator, model_scaler) = fit_kind(kind, params, schema, p, epoch_lines, cancel)?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let model = TrainedModel::new(
        0.5,
        model_scaler,
        estimator,
        provenance_stub(params, kind, evaluated_on),
        schema.clone(),
    )?;
    let t = Instant::now();
    let raw_val = scores(&model, &p.valid);
    let choice = calibrate::choose(
        &params.calibration().candidates(),
        &raw_val,
        &p.valid.labels,
        params.seed(),
    );
    let calibration_seconds = t.elapsed().as_secs_f64();
    let timing = Timing {
        fit_seconds,
        calibration_seconds,
        bootstrap_seconds: 0.0,
    };
    Ok((model, choice, timing, raw_val))
}

/// Seconds spent on one model beyond reading data.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Timing {
    fit_seconds: f64,
    /// Scoring the holdout and choosing and fitting the calibration.
    calibration_seconds: f64,
    /// The bootstrap intervals of its evaluation.
    bootstrap_seconds: f64,
}

/// Fits and evaluates every requested model; pure computation, no files.
pub fn fit_all(
    params: &TrainParams,
    schema: &Arc<Schema>,
    train: Dataset,
    validation: Option<Dataset>,
    test: Option<Dataset>,
    cancel: &CancellationToken,
) -> Result<Outcome, TrainError> {
    // rolling folds need the rows in time order, before the holdout
    let all_rows = (params.evaluation() == Evaluation::Rolling).then(|| {
        let mut all = train.clone();
        if let Some(t) = &test {
            all.extend(t.clone());
        }
        all
    });
    pricing::check(params, schema)?;
    let (fit_set, valid) = holdout(params, train, validation)?;
    tracing::info!(
        "fitting on {} rows ({} frauds), validating on {} rows ({} frauds)",
        fit_set.len(),
        fit_set.n_fraud(),
        valid.len(),
        valid.n_fraud()
    );
    let evaluated_on = match &test {
        Some(_) => EvaluatedOn::Test,
        None => EvaluatedOn::Validation,
    };
    let prep = Prepared::new(schema, fit_set, valid);
    let valid = &prep.valid;
    let eval_rows = test.as_ref().unwrap_or(valid);
    let tariff = pricing::Tariff::new(params.costs(), schema, valid, eval_rows);
    let eval_labels = match &test {
        Some(t) => &t.labels,
        None => &valid.labels,
    };

    let mut models = Vec::new();
    let mut timings = Vec::new();
    let mut priced = Vec::new();
    // each model's calibrated scores of the evaluation set, for the report
    let mut curves: Vec<(ModelKind, Vec<f32>)> = Vec::new();
    for kind in params.model().kinds() {
        if cancel.is_cancelled() {
            return Err(TrainError::Interrupted);
        }
        tracing::info!("{kind}: fitting");
        let (model, choice, mut timing, raw_val) =
            fit_calibrated(kind, params, schema, &prep, evaluated_on, true, cancel)?;
        // The estimator's scores, then the calibrated ones (what the model
        // serves): the validation report (model choice) and the threshold
        // use the served map's validation scores. The out-of-fold
        // probabilities chose the method and are reported beside: mixing
        // two maps, their ranking figures are not the served model's.
        let t = Instant::now();
        let raw_eval = match &test {
            Some(t) => scores(&model, t),
            None => raw_val.clone(),
        };
        let model = model.calibrated(choice.calibrator.clone())?;
        let calibrated = |raw: &[f32]| {
            let mut s = raw.to_vec();
            model.calibration().apply_all(&mut s);
            s
        };
        let val_scores = calibrated(&raw_val);
        let eval_scores = calibrated(&raw_eval);
        timing.calibration_seconds += t.elapsed().as_secs_f64();
        let threshold = pricing::threshold(params, tariff.as_ref(), &val_scores, valid);
        priced.push((
            kind,
            tariff.as_ref().map(|tf| {
                pricing::price(
                    tf,
                    threshold,
                    ("validation", &val_scores, valid),
                    (evaluated_on.name(), &eval_scores, eval_rows),
                )
            }),
        ));
        let t = Instant::now();
        let intervals = bootstrap(
            &eval_scores,
            eval_labels,
            threshold,
            RESAMPLES,
            params.seed(),
        );
        timing.bootstrap_seconds = t.elapsed().as_secs_f64();
        let calibration = CalibrationReport {
            method: model.calibration().method(),
            asked: params.calibration().to_string(),
            cross_fit_log_loss: choice
                .cross_fit
                .iter()
                .map(|(m, l)| (m.to_string(), *l))
                .collect(),
            validation_before: Calibration::new(&raw_val, &valid.labels),
            validation_after: Calibration::new(&choice.out_of_fold, &valid.labels),
            evaluation_before: Calibration::new(&raw_eval, eval_labels),
            evaluation_after: Calibration::new(&eval_scores, eval_labels),
        };
        let provenance = Provenance {
            params: params.summary(kind),
            fit_seconds: timing.fit_seconds,
            validation: Report::new(&val_scores, &valid.labels, threshold),
            evaluation: Report::new(&eval_scores, eval_labels, threshold),
            evaluated_on,
            intervals,
            calibration: Some(calibration),
        };
        tracing::info!(
            "{kind}: fit in {:.2} s; calibration {} ({:.3} s); validation AUPRC {:.4}; {evaluated_on} AUC-ROC {:.4} AUPRC {:.4} (bootstrap {:.3} s)",
            timing.fit_seconds,
            model.calibration().method(),
            timing.calibration_seconds,
            provenance.validation.auprc,
            provenance.evaluation.auc_roc,
            provenance.evaluation.auprc,
            timing.bootstrap_seconds,
        );
        models.push(model.evaluated(threshold, provenance)?);
        timings.push((kind, timing));
        curves.push((kind, eval_scores));
    }
    if params.model() == ModelChoice::All && models.len() >= 2 {
        let test_set = test.as_ref();
        let blended = consider_blend(
            params,
            schema,
            &models,
            valid,
            test_set,
            evaluated_on,
            tariff.as_ref(),
        )?;
        if let Some(b) = blended {
            models.push(b.model);
            priced.push((ModelKind::Blend, b.priced));
            curves.push((ModelKind::Blend, b.eval_scores));
        }
    }
    let best = models
        .iter()
        .max_by(|a, b| {
            let ap = |m: &TrainedModel| nan_low(m.provenance().validation.auprc);
            ap(a).total_cmp(&ap(b))
        })
        .map(TrainedModel::kind)
        .ok_or(ModelError::Artifact(crate::model::Corruption::NoModels))?;
    let reason = default_reason(&models, best);
    tracing::info!("default model: {reason}");
    let artifact = Artifact::new(models, best)?
        .with_training(trained_at(), drift_reference(schema, &prep.fit_set))?;
    print_metrics(&artifact);
    for (kind, p) in &priced {
        if let Some(p) = p {
            let set = evaluated_on.name();
            println!(
                "{}",
                metric_line(&format!("{kind}_{set}_cost"), p.evaluation.total_cost)
            );
            println!(
                "{}",
                metric_line(&format!("{kind}_{set}_savings"), p.evaluation.savings)
            );
        }
    }
    let rolling = match all_rows {
        Some(all) => {
            let r = rolling(params, schema, &all, cancel)?;
            print_rolling(&r);
            Some(r)
        }
        None => None,
    };
    let mut metrics = metrics_json(&artifact);
    let extra = metrics
        .as_object_mut()
        .expect("metrics_json gives an object");
    extra.insert(
        "seconds".into(),
        serde_json::json!(timings
            .iter()
            .map(|(k, t)| (k.to_string(), t))
            .collect::<std::collections::BTreeMap<_, _>>()),
    );
    if let Some(r) = rolling {
        extra.insert("rolling".into(), serde_json::json!(r));
    }
    let t = Instant::now();
    let importance: Vec<card::Importance> = artifact
        .models()
        .iter()
        .map(|m| {
            let i = card::importance(m, &valid.features);
            card::log(m, &i);
            i
        })
        .collect();
    tracing::info!("feature importance in {:.2} s", t.elapsed().as_secs_f64());
    extra.insert(
        "importance".into(),
        serde_json::Value::Object(
            artifact
                .models()
                .iter()
                .zip(&importance)
                .map(|(m, i)| (m.kind().to_string(), serde_json::json!(i)))
                .collect(),
        ),
    );
    let report = report::render(&report::Input {
        set: evaluated_on.name(),
        labels: eval_labels,
        models: artifact
            .models()
            .iter()
            .zip(&importance)
            .filter_map(|(m, i)| {
                let (_, scores) = curves.iter().find(|(k, _)| *k == m.kind())?;
                let e = &m.provenance().evaluation;
                Some(report::Curves {
                    kind: m.kind(),
                    scores,
                    threshold: m.threshold(),
                    auc_roc: e.auc_roc,
                    auprc: e.auprc,
                    importance: Some(i),
                })
            })
            .collect(),
        default_model: best,
        costs: tariff
            .as_ref()
            .map(|tf| (&tf.eval[..], tf.costs.false_alert)),
    });
    extra.insert("default_reason".into(), serde_json::json!(reason));
    let costs: serde_json::Map<String, serde_json::Value> = priced
        .iter()
        .filter_map(|(k, p)| Some((k.to_string(), p.as_ref()?.json.clone())))
        .collect();
    if !costs.is_empty() {
        extra.insert("costs".into(), serde_json::Value::Object(costs));
    }
    let thresholds = priced
        .into_iter()
        .find(|(k, _)| *k == best)
        .and_then(|(_, p)| p.map(|p| p.csv));
    Ok(Outcome {
        artifact,
        metrics,
        thresholds,
        report,
    })
}

/// Why `best` serves by default: every model's validation AUPRC, best
/// first.
/// Now, in RFC 3339 UTC (whole seconds), for the artifact's `trained_at`.
fn trained_at() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// The distribution of the rows the models were fitted on (encoded under
/// `schema`), which serving compares recent traffic with.
fn drift_reference(schema: &Schema, fit_set: &Dataset) -> crate::model::drift::Reference {
    let categories: Vec<Option<usize>> = schema
        .columns()
        .iter()
        .map(|c| c.categories().map(<[String]>::len))
        .collect();
    crate::model::drift::Reference::fit(&fit_set.features, fit_set.width, &categories)
}

fn default_reason(models: &[TrainedModel], best: ModelKind) -> String {
    let mut ranked: Vec<(ModelKind, f64)> = models
        .iter()
        .map(|m| (m.kind(), m.provenance().validation.auprc))
        .collect();
    ranked.sort_by(|a, b| nan_low(b.1).total_cmp(&nan_low(a.1)));
    let all = ranked
        .iter()
        .map(|(k, ap)| format!("{k} {ap:.4}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{best}: the best validation AUPRC ({all})")
}

/// The blend `model=all` kept, with its prices and its calibrated scores
/// of the evaluation set.
struct Blended {
    model: TrainedModel,
    priced: Option<Priced>,
    eval_scores: Vec<f32>,
}

/// The blend `model=all` considers (see [`blend`]): the best three models
/// by validation AUPRC, weights chosen on the validation holdout; `None`
/// when no mix beats the best model alone there.
fn consider_blend(
    params: &TrainParams,
    schema: &Arc<Schema>,
    models: &[TrainedModel],
    valid: &Dataset,
    test: Option<&Dataset>,
    evaluated_on: EvaluatedOn,
    tariff: Option<&pricing::Tariff>,
) -> Result<Option<Blended>, TrainError> {
    let t = Instant::now();
    let mut ranked: Vec<&TrainedModel> = models.iter().collect();
    ranked.sort_by(|a, b| {
        let ap = |m: &TrainedModel| nan_low(m.provenance().validation.auprc);
        ap(b).total_cmp(&ap(a))
    });
    ranked.truncate(3);
    let val: Vec<Vec<f32>> = ranked.iter().map(|m| scores(m, valid)).collect();
    let (weights, ap) = blend::choose_weights(&val, &valid.labels);
    let members: Vec<Member> = ranked
        .iter()
        .zip(&weights)
        .filter(|(_, &w)| w > 0.0)
        .map(|(m, &weight)| Member {
            model: m.kind(),
            weight,
        })
        .collect();
    if members.len() < 2 {
        tracing::info!(
            "blend: no mix of the best {} beats {} alone on validation AUPRC ({ap:.4})",
            ranked.len(),
            ranked[0].kind()
        );
        return Ok(None);
    }
    let b = Blend::new(members, models).map_err(|defect| ModelError::Invalid {
        model: ModelKind::Blend,
        defect,
    })?;
    let model = TrainedModel::new(
        0.5,
        None,
        Estimator::Blend(b),
        provenance_stub(params, ModelKind::Blend, evaluated_on),
        schema.clone(),
    )?;
    let val_scores = scores(&model, valid);
    let eval_scores = match test {
        Some(t) => scores(&model, t),
        None => val_scores.clone(),
    };
    let eval_labels = test.map_or(&valid.labels, |t| &t.labels);
    let threshold = pricing::threshold(params, tariff, &val_scores, valid);
    let priced = tariff.map(|tf| {
        pricing::price(
            tf,
            threshold,
            ("validation", &val_scores, valid),
            (evaluated_on.name(), &eval_scores, test.unwrap_or(valid)),
        )
    });
    let intervals = bootstrap(
        &eval_scores,
        eval_labels,
        threshold,
        RESAMPLES,
        params.seed(),
    );
    let mut summary = params.summary(ModelKind::Blend);
    if let Estimator::Blend(b) = model.estimator() {
        summary["members"] = serde_json::json!(b.members());
    }
    let provenance = Provenance {
        params: summary,
        fit_seconds: t.elapsed().as_secs_f64(),
        validation: Report::new(&val_scores, &valid.labels, threshold),
        evaluation: Report::new(&eval_scores, eval_labels, threshold),
        evaluated_on,
        intervals,
        calibration: None,
    };
    tracing::info!(
        "blend of {}: validation AUPRC {:.4}; {evaluated_on} AUC-ROC {:.4} AUPRC {:.4}",
        provenance.params["members"],
        provenance.validation.auprc,
        provenance.evaluation.auc_roc,
        provenance.evaluation.auprc,
    );
    Ok(Some(Blended {
        model: model.evaluated(threshold, provenance)?,
        priced,
        eval_scores,
    }))
}

/// Folds of `evaluation=rolling`.
pub const ROLLING_FOLDS: usize = 4;

/// Mean and sample standard deviation of one figure over the folds, and
/// each fold's value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Spread {
    pub mean: f64,
    pub sd: f64,
    pub folds: Vec<f64>,
}

impl Spread {
    fn new(folds: Vec<f64>) -> Spread {
        let n = folds.len() as f64;
        let mean = folds.iter().sum::<f64>() / n;
        let var = folds.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Spread {
            mean,
            sd: var.sqrt(),
            folds,
        }
    }
}

/// What `evaluation=rolling` found: the folds' test blocks (first row,
/// rows, frauds) and, per model, the spread of its test-block AUC-ROC and
/// AUPRC.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rolling {
    pub blocks: Vec<serde_json::Value>,
    pub models: std::collections::BTreeMap<String, RollingModel>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RollingModel {
    pub auc_roc: Spread,
    pub auprc: Spread,
}

/// Time-ordered rolling-origin evaluation: `all` (train then test rows, in
/// file order) is cut into `ROLLING_FOLDS + 1` equal blocks; fold `k`
/// fits on blocks `0..k` (its holdout carved as training carves it) and
/// scores block `k`, with the same hyperparameters and calibration rule.
fn rolling(
    params: &TrainParams,
    schema: &Arc<Schema>,
    all: &Dataset,
    cancel: &CancellationToken,
) -> Result<Rolling, TrainError> {
    let n = all.len();
    let block = n / (ROLLING_FOLDS + 1);
    let mut blocks = Vec::new();
    let mut per_kind: std::collections::BTreeMap<ModelKind, (Vec<f64>, Vec<f64>)> =
        Default::default();
    for k in 1..=ROLLING_FOLDS {
        let (start, end) = (
            k * block,
            if k == ROLLING_FOLDS {
                n
            } else {
                (k + 1) * block
            },
        );
        let past = all.select(&(0..start).collect::<Vec<_>>());
        let next = all.select(&(start..end).collect::<Vec<_>>());
        if next.n_fraud() == 0 || next.n_fraud() == next.len() {
            return Err(TrainError::OneClassFold {
                fold: k,
                rows: next.len(),
                frauds: next.n_fraud(),
            });
        }
        tracing::info!(
            "rolling fold {k}/{ROLLING_FOLDS}: fitting on rows 0..{start}, scoring rows {start}..{end} ({} frauds)",
            next.n_fraud()
        );
        blocks.push(serde_json::json!({"fold": k, "fit_rows": start, "first_row": start, "rows": next.len(), "frauds": next.n_fraud()}));
        let (fit_set, valid) = holdout(params, past, None)?;
        let prep = Prepared::new(schema, fit_set, valid);
        for kind in params.model().kinds() {
            if cancel.is_cancelled() {
                return Err(TrainError::Interrupted);
            }
            let (model, choice, _, _) = fit_calibrated(
                kind,
                params,
                schema,
                &prep,
                EvaluatedOn::Test,
                false,
                cancel,
            )?;
            let model = model.calibrated(choice.calibrator)?;
            let s = scores(&model, &next);
            let e = per_kind.entry(kind).or_default();
            e.0.push(crate::metrics::auc_roc(&s, &next.labels));
            e.1.push(crate::metrics::average_precision(&s, &next.labels));
        }
    }
    Ok(Rolling {
        blocks,
        models: per_kind
            .into_iter()
            .map(|(k, (auc, ap))| {
                (
                    k.to_string(),
                    RollingModel {
                        auc_roc: Spread::new(auc),
                        auprc: Spread::new(ap),
                    },
                )
            })
            .collect(),
    })
}

fn print_rolling(r: &Rolling) {
    for (kind, m) in &r.models {
        for (metric, s) in [("auc", &m.auc_roc), ("auprc", &m.auprc)] {
            println!(
                "{}",
                metric_line(&format!("{kind}_rolling_{metric}_mean"), s.mean)
            );
            println!(
                "{}",
                metric_line(&format!("{kind}_rolling_{metric}_sd"), s.sd)
            );
        }
    }
}

/// Provenance of a model not yet evaluated.
fn provenance_stub(params: &TrainParams, kind: ModelKind, evaluated_on: EvaluatedOn) -> Provenance {
    let empty = Report::new(&[], &[], 0.5);
    Provenance {
        params: params.summary(kind),
        fit_seconds: 0.0,
        validation: empty.clone(),
        evaluation: empty,
        evaluated_on,
        intervals: None,
        calibration: None,
    }
}

fn nan_low(v: f64) -> f64 {
    if v.is_nan() {
        f64::NEG_INFINITY
    } else {
        v
    }
}

fn scores(model: &TrainedModel, d: &Dataset) -> Vec<f32> {
    let mut out = vec![0f32; d.len()];
    model.predict_proba(&d.features, &mut out);
    out
}

/// `metrics.json`: per model its validation and evaluation reports.
pub fn metrics_json(a: &Artifact) -> serde_json::Value {
    let models: serde_json::Map<String, serde_json::Value> = a
        .models()
        .iter()
        .map(|m| {
            let p = m.provenance();
            (
                m.kind().to_string(),
                serde_json::json!({
                    "evaluated_on": p.evaluated_on,
                    "evaluation": p.evaluation,
                    "validation": p.validation,
                    "threshold": m.threshold(),
                    "fit_seconds": p.fit_seconds,
                    "params": p.params,
                    "intervals": p.intervals,
                    "calibration": p.calibration,
                }),
            )
        })
        .collect();
    serde_json::json!({ "default_model": a.default_model(), "models": models })
}

/// `<name>_lo` and `<name>_hi` lines of the interval of `metric` (the
/// metric lines' names: `auc` is the AUC-ROC), when there is one.
fn print_interval(name: &str, p: &Provenance, metric: &str) {
    let wanted = if metric == "auc" { "auc_roc" } else { metric };
    let found = p
        .intervals
        .as_ref()
        .and_then(|i| i.named().into_iter().find(|(m, _)| *m == wanted));
    if let Some((_, i)) = found {
        println!("{}", metric_line(&format!("{name}_lo"), i.lo));
        println!("{}", metric_line(&format!("{name}_hi"), i.hi));
    }
}

fn print_metrics(a: &Artifact) {
    for m in a.models() {
        let p = m.provenance();
        let r = &p.evaluation;
        let set = p.evaluated_on;
        let n = m.kind();
        for (metric, v) in [
            ("accuracy", r.accuracy),
            ("auc", r.auc_roc),
            ("auprc", r.auprc),
            ("log_loss", r.log_loss),
            ("brier", r.brier.unwrap_or(f64::NAN)),
            ("precision", r.precision),
            ("recall", r.recall),
            ("f1", r.f1),
        ] {
            println!("{}", metric_line(&format!("{n}_{set}_{metric}"), v));
            print_interval(&format!("{n}_{set}_{metric}"), p, metric);
        }
        println!(
            "{}",
            metric_line(&format!("{n}_validation_auprc"), p.validation.auprc)
        );
        println!(
            "{}",
            metric_line(&format!("{n}_fit_seconds"), p.fit_seconds)
        );
    }
    if let Ok(best) = a.model(None) {
        let p = best.provenance();
        let e = &p.evaluation;
        println!("{}", metric_line("best_auprc", e.auprc));
        print_interval("best_auprc", p, "auprc");
        println!("{}", metric_line("best_auc", e.auc_roc));
        print_interval("best_auc", p, "auc");
    }
}

/// Writes the artifact and metrics: everything is serialized first, each file
/// is written under a hidden temporary name, and only when all are written
/// (and the run was not cancelled) are they renamed into place, the artifact
/// last. On error the temporaries are removed.
fn commit(root: &MlRoot, o: &Outcome, cancel: &CancellationToken) -> Result<(), TrainError> {
    let (artifact, metrics) = serialized(o)?;
    let model_dir = root.model_dir();
    let thresholds = o.thresholds.as_ref().map(|t| t.as_bytes().to_vec());
    let mut files = vec![
        (root.output_data_dir().join("metrics.json"), &metrics),
        (model_dir.join("metrics.json"), &metrics),
    ];
    if let Some(t) = &thresholds {
        files.push((root.output_data_dir().join("thresholds.csv"), t));
    }
    // beside the model too, so it travels in model.tar.gz (the demo links it)
    let report = o.report.as_bytes().to_vec();
    files.push((root.output_data_dir().join("report.html"), &report));
    files.push((model_dir.join("report.html"), &report));
    files.push((model_dir.join(ARTIFACT_FILE), &artifact));
    let mut written = Vec::new();
    let result = files.iter().try_for_each(|(path, bytes)| {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let tmp = crate::partial_path(path);
        written.push(tmp.clone());
        fs_err::write(&tmp, bytes)?;
        fs_err::File::open(&tmp)?.sync_all()
    });
    let result = match result {
        Ok(()) if cancel.is_cancelled() => Err(TrainError::Interrupted),
        Ok(()) => files
            .iter()
            .zip(&written)
            .try_for_each(|((path, _), tmp)| fs_err::rename(tmp, path))
            .map_err(|source| TrainError::Output { source }),
        Err(source) => Err(TrainError::Output { source }),
    };
    if result.is_err() {
        for t in written {
            let _ = fs_err::remove_file(t);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::N_FEATURES;
    use crate::Rng;

    fn lab() -> Arc<Schema> {
        Arc::new(Schema::lab())
    }

    /// `fit_all` on the lab's schema without a validation file or a
    /// cancellation: what most tests here need.
    fn fit(p: &TrainParams, train: Dataset, test: Option<Dataset>) -> Outcome {
        fit_all(p, &lab(), train, None, test, &CancellationToken::new()).unwrap()
    }
    use rand::{Rng as _, SeedableRng};

    /// Synthetic transactions: frauds shifted on a few features.
    pub(crate) fn synthetic(n: usize, seed: u64) -> Dataset {
        let mut rng = Rng::seed_from_u64(seed);
        let mut d = Dataset::new(N_FEATURES);
        for _ in 0..n {
            let fraud = rng.random::<f64>() < 0.03;
            for j in 0..N_FEATURES {
                let shift = if fraud && j % 7 == 0 { 2.0 } else { 0.0 };
                d.features
                    .push((rng.sample::<f64, _>(rand_distr::StandardNormal) + shift) as f32);
            }
            d.labels.push(u8::from(fraud));
        }
        d
    }

    #[test]
    fn fits_all_models_and_picks_one() {
        let p = TrainParams::from_pairs(&[
            ("n_trees", "6"),
            ("threshold", "auto"),
            ("learning_rate", "0.01"),
            ("batch_size", "64"),
        ])
        .unwrap();
        let o = fit(&p, synthetic(4000, 1), Some(synthetic(1000, 2)));
        let models = o.artifact.models();
        // every kind, and a blend when a mix beat them on validation
        let n = models.len();
        assert!(
            n == ModelKind::ALL.len() || n == ModelKind::ALL.len() + 1,
            "{n}"
        );
        for m in models {
            let p = m.provenance();
            assert!(
                p.evaluation.auc_roc > 0.9,
                "{}: {:?}",
                m.kind(),
                p.evaluation
            );
            assert_eq!(p.evaluated_on, EvaluatedOn::Test);
            assert_eq!(p.evaluation.rows, 1000);
        }
        // threshold=auto: the F1-best cut on the holdout, never 0 or 1
        assert!(models
            .iter()
            .all(|m| m.threshold() > 0.0 && m.threshold() < 1.0));
        let best = o.artifact.model(None).unwrap();
        let ap = |m: &TrainedModel| m.provenance().validation.auprc;
        assert!(models.iter().all(|m| ap(m) <= ap(best)));
        assert_eq!(o.metrics["default_model"], best.kind().name());
        // every model: intervals around its figures, a calibration report
        for m in models {
            let p = m.provenance();
            let i = p.intervals.as_ref().expect("intervals");
            assert_eq!(i.resamples, RESAMPLES);
            assert!(i.auprc.lo <= p.evaluation.auprc && p.evaluation.auprc <= i.auprc.hi);
            if m.kind() == ModelKind::Blend {
                // a mean of calibrated members: no map of its own
                assert!(p.calibration.is_none());
                continue;
            }
            let c = p.calibration.as_ref().expect("calibration");
            assert_eq!(c.method, m.calibration().method());
            assert_eq!(c.cross_fit_log_loss.len(), 3);
            let j = &o.metrics["models"][m.kind().name()];
            assert_eq!(j["intervals"]["auprc"]["lo"], i.auprc.lo);
            assert!(j["calibration"]["validation_before"]["reliability"].is_array());
            assert!(o.metrics["seconds"][m.kind().name()]["bootstrap_seconds"].is_number());
        }
        assert!(o.metrics.get("rolling").is_none());
    }

    #[test]
    fn rolling_folds_fit_on_the_past_and_score_the_next_block() {
        let p =
            TrainParams::from_pairs(&[("model", "logistic"), ("evaluation", "rolling")]).unwrap();
        let o = fit(&p, synthetic(4000, 1), Some(synthetic(1000, 2)));
        let r = &o.metrics["rolling"];
        let blocks = r["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), ROLLING_FOLDS);
        // 5,000 rows in 5 blocks: fold k fits on the first k * 1000
        for (k, b) in blocks.iter().enumerate() {
            assert_eq!(b["fit_rows"], (k + 1) * 1000);
            assert_eq!(b["rows"], 1000);
        }
        let auc = &r["models"]["logistic"]["auc_roc"];
        let folds: Vec<f64> = auc["folds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(folds.len(), ROLLING_FOLDS);
        assert!(folds.iter().all(|&a| a > 0.9), "{folds:?}");
        let mean = folds.iter().sum::<f64>() / 4.0;
        assert!((auc["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
        let sd = (folds.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        assert!((auc["sd"].as_f64().unwrap() - sd).abs() < 1e-12);
        // a block without frauds is refused, naming the fold
        let mut d = synthetic(4000, 3);
        for y in &mut d.labels[2400..3200] {
            *y = 0;
        }
        let e = fit_all(&p, &lab(), d, None, None, &CancellationToken::new()).unwrap_err();
        assert!(
            matches!(
                e,
                TrainError::OneClassFold {
                    fold: 3,
                    frauds: 0,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.exit(), Exit::BadInput);
    }

    /// `class_weight` reaches the DNN's and the logistic fit. On features
    /// that carry no signal (every 25th row a fraud) a model can only learn
    /// the weighted fraud rate: 1/25 unweighted, 1/2 when each fraud weighs
    /// as much as all the normal rows together. (The DNN gets the epochs
    /// and step size to learn its output bias from zero.)
    #[test]
    fn class_weight_reaches_the_dnn_and_logistic_fits() {
        let mean_score = |model: &str, weight: &str| {
            let p = TrainParams::from_pairs(&[
                ("model", model),
                ("class_weight", weight),
                ("calibration", "none"),
                ("learning_rate", "0.01"),
                ("epochs", "20"),
            ])
            .unwrap();
            let mut d = synthetic(3000, 3);
            for (i, y) in d.labels.iter_mut().enumerate() {
                *y = u8::from(i % 25 == 0);
            }
            let o = fit(&p, d, None);
            let m = &o.artifact.models()[0];
            let rows = synthetic(500, 9).features;
            let total: f64 = rows
                .chunks(N_FEATURES)
                .map(|r| f64::from(m.score_row(r)))
                .sum();
            total / 500.0
        };
        for model in ["logistic", "dnn"] {
            let (none, balanced) = (mean_score(model, "none"), mean_score(model, "balanced"));
            assert!((0.0..0.12).contains(&none), "{model}: {none}");
            assert!((0.3..0.7).contains(&balanced), "{model}: {balanced}");
        }
    }

    #[test]
    fn calibration_none_serves_the_estimators_scores() {
        let p = TrainParams::from_pairs(&[("model", "logistic"), ("calibration", "none")]).unwrap();
        let o = fit(&p, synthetic(3000, 3), Some(synthetic(500, 4)));
        let m = &o.artifact.models()[0];
        assert!(m.calibration().is_none());
        let c = m.provenance().calibration.as_ref().unwrap();
        assert_eq!(c.evaluation_before, c.evaluation_after);
        assert_eq!(c.validation_before, c.validation_after);
        let p =
            TrainParams::from_pairs(&[("model", "logistic"), ("calibration", "platt")]).unwrap();
        let o = fit(&p, synthetic(3000, 3), Some(synthetic(500, 4)));
        let m = &o.artifact.models()[0];
        assert_eq!(m.calibration().method(), calibrate::Method::Platt);
        // stored and loaded back with its map
        let back = Artifact::from_bytes(Path::new("m"), &o.artifact.to_bytes()).unwrap();
        assert_eq!(back, o.artifact);
    }

    #[test]
    fn a_cancelled_run_fits_nothing_and_commits_nothing() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let p = TrainParams::default();
        let e = fit_all(&p, &lab(), synthetic(500, 4), None, None, &cancel).unwrap_err();
        assert!(matches!(e, TrainError::Interrupted), "{e}");
        assert_eq!(e.exit(), Exit::Stopped);

        // A run cancelled between fitting and committing leaves no file.
        let dir = tempfile::tempdir().unwrap();
        let root = MlRoot::new(dir.path());
        let p = TrainParams::from_pairs(&[("model", "logistic")]).unwrap();
        let o = fit(&p, synthetic(500, 5), None);
        assert!(matches!(
            commit(&root, &o, &cancel),
            Err(TrainError::Interrupted)
        ));
        let left: Vec<_> = walk(dir.path());
        assert!(left.is_empty(), "{left:?}");
        commit(&root, &o, &CancellationToken::new()).unwrap();
        assert_eq!(Artifact::load(&root.model_dir()).unwrap(), o.artifact);
        let metrics = fs_err::read(root.output_data_dir().join("metrics.json")).unwrap();
        let metrics: serde_json::Value = serde_json::from_slice(&metrics).unwrap();
        assert_eq!(metrics, o.metrics);
        // the lab's rows have amounts: errors have a price
        let csv = fs_err::read_to_string(root.output_data_dir().join("thresholds.csv")).unwrap();
        assert_eq!(Some(csv.as_str()), o.thresholds.as_deref());
        assert!(csv.starts_with("set,threshold,chosen,alerts,"), "{csv}");
        assert!(o.metrics["costs"]["logistic"]["validation"]["total_cost"].is_number());
        let html = fs_err::read_to_string(root.output_data_dir().join("report.html")).unwrap();
        assert!(html.contains("ROC on validation"), "{html}");
        assert_eq!(walk(dir.path()).len(), 6);
    }

    #[test]
    fn channels_are_found_by_name_and_training_is_train() {
        let dir = tempfile::tempdir().unwrap();
        let root = MlRoot::new(dir.path());
        assert_eq!(channel_dir(&root, &["train", "training"]), None);
        fs_err::create_dir_all(root.channel("training")).unwrap();
        assert_eq!(
            channel_dir(&root, &["train", "training"]),
            Some(("training".to_string(), root.channel("training")))
        );
        let e = train_on(&root, &CancellationToken::new()).unwrap_err();
        assert!(matches!(e, TrainError::Data(_)), "{e}");
        fs_err::remove_dir(root.channel("training")).unwrap();
        let e = train_on(&root, &CancellationToken::new()).unwrap_err();
        assert!(matches!(e, TrainError::NoTrainChannel(_)), "{e}");
    }

    /// Every regular file below `dir`.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    /// A holdout of one class gave `best_auc=NaN` and exit 0 (issue 10,
    /// item 8).
    #[test]
    fn a_holdout_without_both_classes_is_refused() {
        let mut d = synthetic(300, 6);
        d.labels.fill(1);
        d.labels[0] = 0;
        let p = TrainParams::from_pairs(&[("model", "logistic")]).unwrap();
        let e = fit_all(&p, &lab(), d, None, None, &CancellationToken::new()).unwrap_err();
        assert!(
            matches!(
                e,
                TrainError::OneClassHoldout {
                    rows: 300,
                    frauds: 299
                }
            ),
            "{e}"
        );
        assert_eq!(e.exit(), Exit::BadInput);
    }

    /// What serve would refuse is never written (issue 10, item 8: `null`
    /// weights reached the artifact); here a scaler fitted on an infinite
    /// value.
    #[test]
    fn an_artifact_that_would_not_load_is_not_written() {
        let p = TrainParams::from_pairs(&[("model", "logistic")]).unwrap();
        let o = fit(&p, synthetic(500, 5), None);
        let m = &o.artifact.models()[0];
        let mut x = synthetic(10, 1).features;
        x[3] = f32::INFINITY;
        let bad = TrainedModel::new(
            0.5,
            Some(Scaler::fit(&x, N_FEATURES)),
            m.estimator().clone(),
            m.provenance().clone(),
            lab(),
        );
        let bad = match bad.and_then(|b| Artifact::new(vec![b], ModelKind::Logistic)) {
            Ok(a) => a,
            // refused even earlier, as bad input too
            Err(e) => return assert_eq!(TrainError::from(e).exit(), Exit::BadInput),
        };
        let dir = tempfile::tempdir().unwrap();
        let bad = Outcome {
            artifact: bad,
            metrics: o.metrics.clone(),
            thresholds: None,
            report: String::new(),
        };
        let e = commit(&MlRoot::new(dir.path()), &bad, &CancellationToken::new()).unwrap_err();
        assert!(matches!(e, TrainError::Unusable { .. }), "{e}");
        assert_eq!(e.exit(), Exit::BadInput);
        assert!(walk(dir.path()).is_empty());
    }

    /// What the user's data or hyperparameters cause exits 1, not 3
    /// (issue 10, item 12).
    #[test]
    fn exit_codes_blame_input_for_what_input_causes() {
        let diverged = ModelError::Diverged {
            model: ModelKind::Dnn,
            epoch: Some(1),
            hint: dnn::DIVERGED_HINT,
        };
        assert_eq!(TrainError::from(diverged).exit(), Exit::BadInput);
        assert_eq!(
            TrainError::from(ModelError::Fit {
                model: ModelKind::Logistic,
                source: "x".into()
            })
            .exit(),
            Exit::BadInput
        );
        let stopped = TrainError::StoppedFitting {
            model: ModelKind::Forest,
            source: ModelError::Interrupted {
                done: 40,
                total: 100,
                unit: "trees grown",
            },
        };
        assert_eq!(stopped.exit(), Exit::Stopped);
        assert!(
            stopped.to_string().contains(
                "signal (SIGTERM/SIGINT) while fitting forest (stopped with 40 of 100 trees grown)"
            ),
            "{stopped}"
        );
        let disk = TrainError::Output {
            source: std::io::Error::other("disk"),
        };
        assert_eq!(disk.exit(), Exit::Failed);
    }

    #[test]
    fn without_test_reports_on_validation() {
        let p = TrainParams::from_pairs(&[("model", "logistic")]).unwrap();
        let o = fit(&p, synthetic(3000, 3), None);
        let p = o.artifact.models()[0].provenance();
        assert_eq!(p.evaluated_on, EvaluatedOn::Validation);
        assert_eq!(p.evaluation, p.validation);
    }
}

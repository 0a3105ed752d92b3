//! `ccfraud train`: read channels, fit each requested model, evaluate, choose
//! the default model, and write the artifact and metrics — atomically, so a
//! failed or stopped run leaves nothing in the model folder.
//!
//! Model choice, DNN early stopping and `threshold=auto` use a validation
//! holdout (the `validation` channel, else a seeded stratified slice of
//! `train`); the `test` channel only reports.

pub mod params;

use crate::data::{self, split::stratified_holdout, DataError, Dataset, N_FEATURES};
use crate::metrics::{best_f1_threshold, Report};
use crate::model::dnn::{self, DnnParams};
use crate::model::forest::Forest;
use crate::model::logistic::Logistic;
use crate::model::scaler::Scaler;
use crate::model::{Artifact, Estimator, Model, ModelError, TrainedModel, ARTIFACT_FILE};
use crate::sagemaker::{input_modes, metric_line, InputMode, MlRoot};
use params::{ClassWeight, ModelChoice, ParamError, Threshold, TrainParams};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Why training failed. `main` maps each to an exit code and writes it to
/// the failure file.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("training stopped by a signal (SIGTERM/SIGINT) before a model was written")]
    Interrupted,
    #[error(transparent)]
    S3(#[from] crate::s3::S3Error),
}

impl TrainError {
    /// Process exit code: 1 bad input, 2 reserved for usage errors, 3 model
    /// or output failure, 4 S3 transfer failure, 143 stopped by SIGTERM.
    pub fn exit_code(&self) -> u8 {
        match self {
            TrainError::Params(_) | TrainError::Data(_) | TrainError::Config(_) => 1,
            TrainError::Model(ModelError::Interrupted) | TrainError::Interrupted => 143,
            TrainError::Model(_) | TrainError::Output { .. } => 3,
            TrainError::S3(_) => 4,
        }
    }
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub artifact: Artifact,
    pub metrics: serde_json::Value,
}

/// Set by the signal handler; polled by the fitting loops.
pub static STOP: AtomicBool = AtomicBool::new(false);
/// Held while outputs are being committed, so a signal never cuts a commit
/// in half.
pub static COMMIT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Hyperparameters from the ml-root (defaults when the file is absent).
pub fn load_params(root: &MlRoot) -> Result<TrainParams, TrainError> {
    let path = root.hyperparameters();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(TrainParams::from_json(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrainParams::default()),
        Err(e) => Err(TrainError::Config(format!("{}: {e}", path.display()))),
    }
}

/// The folder of a channel, honouring `training` as an alias of `train`.
fn channel_dir(root: &MlRoot, names: &[&str]) -> Option<(String, std::path::PathBuf)> {
    names
        .iter()
        .map(|n| (n.to_string(), root.channel(n)))
        .find(|(_, p)| p.is_dir())
}

fn load_channel(name: &str, dir: &Path) -> Result<Dataset, TrainError> {
    let t = Instant::now();
    let d = data::csv::read_channel(name, dir)?;
    tracing::info!(
        "channel {name}: {} transactions, {} frauds, read in {:.2} s",
        d.len(),
        d.n_fraud(),
        t.elapsed().as_secs_f64()
    );
    Ok(d)
}

/// Runs training on an ml-root: reads config and channels, fits, writes.
/// Metric lines go to stdout; progress to the log.
pub fn run(root: &MlRoot) -> Result<Outcome, TrainError> {
    let params = load_params(root)?;
    for (name, mode) in input_modes(root).map_err(TrainError::Config)? {
        if mode == InputMode::Pipe {
            return Err(TrainError::Config(format!(
                "channel '{name}' uses Pipe input mode; ccfraud reads File mode only (set input_mode='File')"
            )));
        }
    }
    let (train_name, train_dir) = channel_dir(root, &["train", "training"]).ok_or_else(|| {
        TrainError::Config(format!(
            "no training data: channel 'train' (or 'training') not found at {}",
            root.channel("train").display()
        ))
    })?;
    let train = load_channel(&train_name, &train_dir)?;
    let test = match channel_dir(root, &["test"]) {
        Some((n, d)) => Some(load_channel(&n, &d)?),
        None => None,
    };
    let validation = match channel_dir(root, &["validation"]) {
        Some((n, d)) => Some(load_channel(&n, &d)?),
        None => None,
    };
    let outcome = fit_all(&params, train, validation, test)?;
    commit(root, &outcome)?;
    Ok(outcome)
}

/// S3 locations of a training run outside SageMaker.
#[derive(Debug, Clone)]
pub struct RemoteChannels {
    /// (channel name, s3:// URI)
    pub channels: Vec<(String, String)>,
    /// s3:// prefix for `model.tar.gz` and `metrics.json`.
    pub output: String,
}

/// Trains with channels on S3: downloads them into a temporary ml-root
/// (hyperparameters from `config_root`, if it has them), trains, then
/// uploads `model.tar.gz` (SageMaker's layout) and `metrics.json` under the
/// output prefix. A failure before the upload leaves nothing remote; the
/// temporary ml-root is removed either way.
pub fn run_remote(config_root: &MlRoot, remote: &RemoteChannels) -> Result<Outcome, TrainError> {
    use crate::s3::{pack_model, S3Uri, TempDir, S3};
    let output = S3Uri::parse(&remote.output)?;
    let uris = remote
        .channels
        .iter()
        .map(|(name, uri)| Ok((name.clone(), S3Uri::parse(uri)?)))
        .collect::<Result<Vec<_>, crate::s3::S3Error>>()?;
    let tmp = TempDir::new("ccfraud-train")?;
    let root = MlRoot::new(tmp.path());
    let hp = config_root.hyperparameters();
    if hp.is_file() {
        let dest = root.hyperparameters();
        std::fs::create_dir_all(dest.parent().expect("config folder")).map_err(|source| {
            TrainError::Output {
                path: dest.display().to_string(),
                source,
            }
        })?;
        std::fs::copy(&hp, &dest).map_err(|source| TrainError::Output {
            path: hp.display().to_string(),
            source,
        })?;
    }
    let s3 = S3::connect()?;
    s3.check_bucket(&output)?;
    for (name, uri) in &uris {
        let n = s3.download_prefix(uri, &root.channel(name))?;
        tracing::info!("channel {name}: downloaded {n} file(s) from {uri}");
    }
    let outcome = run(&root)?;
    if stopped() {
        return Err(TrainError::Interrupted);
    }
    let archive = pack_model(&root.model_dir())?;
    let model_uri = output.join("model.tar.gz");
    s3.put(archive, &model_uri)?;
    let metrics = serde_json::to_vec_pretty(&outcome.metrics).expect("metrics serialize");
    if let Err(e) = s3.put(metrics, &output.join("metrics.json")) {
        let _ = s3.delete(&model_uri);
        return Err(e.into());
    }
    tracing::info!("uploaded {model_uri} and metrics.json");
    Ok(outcome)
}

/// Fits and evaluates every requested model; pure computation, no files.
pub fn fit_all(
    params: &TrainParams,
    train: Dataset,
    validation: Option<Dataset>,
    test: Option<Dataset>,
) -> Result<Outcome, TrainError> {
    let (fit_set, valid) = match validation {
        Some(v) => (train, v),
        None => {
            let (keep, hold) =
                stratified_holdout(&train.labels, params.validation_fraction, params.seed);
            let v = train.select(&hold);
            if v.n_fraud() == 0 {
                return Err(TrainError::Config(format!(
                    "the training data has {} fraud(s): too few to hold some out for validation",
                    train.n_fraud()
                )));
            }
            (train.select(&keep), v)
        }
    };
    tracing::info!(
        "fitting on {} rows ({} frauds), validating on {} rows ({} frauds)",
        fit_set.len(),
        fit_set.n_fraud(),
        valid.len(),
        valid.n_fraud()
    );
    let (eval_set, eval_name) = match &test {
        Some(t) => (t, "test"),
        None => (&valid, "validation"),
    };
    let names: &[&str] = match params.model {
        ModelChoice::All => &["dnn", "logistic", "forest"],
        ModelChoice::Dnn => &["dnn"],
        ModelChoice::Logistic => &["logistic"],
        ModelChoice::Forest => &["forest"],
    };
    let scaler = Scaler::fit(&fit_set.features, N_FEATURES);
    let x_fit = scaler.transform(&fit_set.features);
    let x_val = scaler.transform(&valid.features);

    let mut models = Vec::new();
    for &name in names {
        if stopped() {
            return Err(TrainError::Interrupted);
        }
        let t = Instant::now();
        let (estimator, model_scaler) = match name {
            "dnn" => {
                let pos_weight = match params.class_weight {
                    ClassWeight::None => 1.0,
                    ClassWeight::Fixed(w) => w,
                    ClassWeight::Balanced => {
                        let f = fit_set.n_fraud().max(1) as f32;
                        (fit_set.len() as f32 - f) / f
                    }
                };
                let p = DnnParams {
                    pos_weight,
                    ..params.dnn.clone()
                };
                let mut on_epoch = |e: &dnn::Epoch| {
                    println!("{}", metric_line("dnn_epoch", e.epoch as f64));
                    println!("{}", metric_line("dnn_train_loss", e.train_loss));
                    if let Some(ap) = e.val_auprc {
                        println!("{}", metric_line("dnn_validation_auprc", ap));
                    }
                };
                let net = dnn::fit(
                    &p,
                    &x_fit,
                    &fit_set.labels,
                    N_FEATURES,
                    Some((&x_val, &valid.labels)),
                    &mut on_epoch,
                    &stopped,
                )
                .map_err(|_| TrainError::Interrupted)?;
                (Estimator::Dnn(net), Some(scaler.clone()))
            }
            "logistic" => (
                Estimator::Logistic(Logistic::fit(
                    &params.logistic,
                    &x_fit,
                    &fit_set.labels,
                    N_FEATURES,
                )?),
                Some(scaler.clone()),
            ),
            _ => (
                Estimator::Forest(Forest::fit(
                    &params.forest,
                    &fit_set.features,
                    &fit_set.labels,
                    N_FEATURES,
                    &stopped,
                )?),
                None,
            ),
        };
        let fit_seconds = t.elapsed().as_secs_f64();
        let mut model = TrainedModel {
            name: name.to_string(),
            threshold: 0.5,
            scaler: model_scaler,
            estimator,
            params: params.summary(name),
            fit_seconds,
            validation: Report::new(&[], &[], 0.5),
            evaluation: Report::new(&[], &[], 0.5),
            evaluated_on: eval_name.to_string(),
        };
        let val_scores = scores(&model, &valid);
        model.threshold = match params.threshold {
            Threshold::Fixed(t) => t,
            Threshold::Auto => best_f1_threshold(&val_scores, &valid.labels),
        };
        model.validation = Report::new(&val_scores, &valid.labels, model.threshold);
        model.evaluation =
            Report::new(&scores(&model, eval_set), &eval_set.labels, model.threshold);
        tracing::info!(
            "{name}: fit in {fit_seconds:.2} s; validation AUPRC {:.4}; {eval_name} AUC-ROC {:.4} AUPRC {:.4}",
            model.validation.auprc,
            model.evaluation.auc_roc,
            model.evaluation.auprc
        );
        models.push(model);
    }
    let best = models
        .iter()
        .max_by(|a, b| nan_low(a.validation.auprc).total_cmp(&nan_low(b.validation.auprc)))
        .map(|m| m.name.clone())
        .ok_or_else(|| TrainError::Config("no model requested".into()))?;
    let artifact = Artifact::new(models, best);
    let metrics = metrics_json(&artifact);
    print_metrics(&artifact);
    Ok(Outcome { artifact, metrics })
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
        .models
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                serde_json::json!({
                    "evaluated_on": m.evaluated_on,
                    "evaluation": m.evaluation,
                    "validation": m.validation,
                    "threshold": m.threshold,
                    "fit_seconds": m.fit_seconds,
                    "params": m.params,
                }),
            )
        })
        .collect();
    serde_json::json!({ "default_model": a.default_model, "models": models })
}

fn print_metrics(a: &Artifact) {
    for m in &a.models {
        let r = &m.evaluation;
        let set = &m.evaluated_on;
        let n = &m.name;
        for (metric, v) in [
            ("accuracy", r.accuracy),
            ("auc", r.auc_roc),
            ("auprc", r.auprc),
            ("log_loss", r.log_loss),
            ("precision", r.precision),
            ("recall", r.recall),
            ("f1", r.f1),
        ] {
            println!("{}", metric_line(&format!("{n}_{set}_{metric}"), v));
        }
        println!(
            "{}",
            metric_line(&format!("{n}_validation_auprc"), m.validation.auprc)
        );
        println!(
            "{}",
            metric_line(&format!("{n}_fit_seconds"), m.fit_seconds)
        );
    }
    if let Ok(best) = a.model(None) {
        println!("{}", metric_line("best_auprc", best.evaluation.auprc));
        println!("{}", metric_line("best_auc", best.evaluation.auc_roc));
    }
}

/// Writes the artifact and metrics: everything is serialized first, each file
/// is written under a hidden temporary name and renamed into place, the
/// artifact last.
fn commit(root: &MlRoot, o: &Outcome) -> Result<(), TrainError> {
    let mut committed = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    if stopped() {
        return Err(TrainError::Interrupted);
    }
    let artifact = o.artifact.to_bytes();
    let metrics = serde_json::to_vec_pretty(&o.metrics).expect("metrics serialize");
    let model_dir = root.model_dir();
    let out_dir = root.output_data_dir();
    let files = [
        (out_dir.join("metrics.json"), &metrics),
        (model_dir.join("metrics.json"), &metrics),
        (model_dir.join(ARTIFACT_FILE), &artifact),
    ];
    let mut written = Vec::new();
    let result = (|| {
        for (path, bytes) in &files {
            let io = |source| TrainError::Output {
                path: path.display().to_string(),
                source,
            };
            let dir = path.parent().expect("files live in folders");
            std::fs::create_dir_all(dir).map_err(io)?;
            let tmp = crate::partial_path(path);
            std::fs::write(&tmp, bytes).map_err(io)?;
            written.push(tmp.clone());
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for t in written {
            let _ = std::fs::remove_file(t);
        }
        return Err(e);
    }
    for ((path, _), tmp) in files.iter().zip(&written) {
        std::fs::rename(tmp, path).map_err(|source| TrainError::Output {
            path: path.display().to_string(),
            source,
        })?;
    }
    *committed = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use rand::{Rng as _, SeedableRng};

    /// Synthetic transactions: frauds shifted on a few features.
    pub(crate) fn synthetic(n: usize, seed: u64) -> Dataset {
        let mut rng = Rng::seed_from_u64(seed);
        let mut d = Dataset::default();
        for _ in 0..n {
            let fraud = rng.random::<f64>() < 0.03;
            for j in 0..N_FEATURES {
                let shift = if fraud && j % 7 == 0 { 2.0 } else { 0.0 };
                d.features.push((rng.sample::<f64, _>(rand_distr::StandardNormal) + shift) as f32);
            }
            d.labels.push(u8::from(fraud));
        }
        d
    }

    #[test]
    fn fits_all_models_and_picks_one() {
        let mut p = TrainParams::default();
        p.forest.n_trees = 6;
        p.threshold = Threshold::Auto;
        p.dnn.learning_rate = 0.01;
        p.dnn.batch_size = 64;
        let o = fit_all(&p, synthetic(4000, 1), None, Some(synthetic(1000, 2))).unwrap();
        assert_eq!(o.artifact.models.len(), 3);
        for m in &o.artifact.models {
            assert!(m.evaluation.auc_roc > 0.9, "{}: {:?}", m.name, m.evaluation);
            assert_eq!(m.evaluated_on, "test");
            assert_eq!(m.evaluation.rows, 1000);
        }
        let best = o.artifact.model(None).unwrap();
        assert!(o
            .artifact
            .models
            .iter()
            .all(|m| m.validation.auprc <= best.validation.auprc));
        assert_eq!(o.metrics["default_model"], best.name.as_str());
    }

    #[test]
    fn without_test_reports_on_validation() {
        let p = TrainParams {
            model: ModelChoice::Logistic,
            ..Default::default()
        };
        let o = fit_all(&p, synthetic(3000, 3), None, None).unwrap();
        assert_eq!(o.artifact.models[0].evaluated_on, "validation");
        assert_eq!(
            o.artifact.models[0].evaluation,
            o.artifact.models[0].validation
        );
    }
}

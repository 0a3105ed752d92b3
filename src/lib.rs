//! ccfraud: credit-card fraud detection as one small Rust binary that is also
//! an Amazon SageMaker bring-your-own-container image.
//!
//! # Layout
//! Data flows one way — bytes in, validated arrays, a fitted model, bytes out —
//! and each edge (files, HTTP) is parsed once into types the core trusts.
//!
//! - [`cli`]: every flag (long + env), converted once into typed configs
//!   (`train::Config`, `serve::Config`, `demo::Config`); the `tracing` logger.
//! - [`sagemaker`]: the `/opt/ml` contract, all of it: paths, config files,
//!   who writes in a job of several hosts ([`sagemaker::hosts`]), the
//!   failure file, the exit-code policy ([`sagemaker::Exit`]), metric lines,
//!   `model.tar.gz` ([`sagemaker::archive`]).
//! - [`s3`]: S3 transport only (get, put, multipart, download a prefix).
//! - [`schema`]: the columns a model reads (names, kinds, vocabularies,
//!   label, amount), derived from the data and hyperparameters; the lab's
//!   29 columns are one value of it.
//! - [`data`]: transactions in, rows out under a schema: the one CSV reader
//!   for files, `prepare` and request bodies, splits.
//! - [`model`]: pure math: [`model::ModelKind`], the [`model::Model`] trait
//!   (every estimator implements it), the DNN, logistic regression, random
//!   forest, the versioned artifact; [`model::explain`]: exact per-row
//!   attributions of every kind (TreeSHAP, linear SHAP, Integrated
//!   Gradients, blends), additive in the model's own output space;
//!   [`model::drift`]: the training distribution stored in the artifact
//!   and the population stability index of recent rows against it.
//! - [`metrics`]: AUC-ROC, AUPRC, log loss, confusion matrix, threshold choice.
//! - [`decide`]: decisions with a price: the cost of alerts and of frauds
//!   let through, the threshold of least cost, a row's decision.
//! - [`train`]: `run(config, cancel)`: hyperparameters → checked params,
//!   fit, evaluate, choose, commit.
//! - [`serve`]: `run(config, listener)`: the hosting contract over actix-web;
//!   [`serve::protocols`]: TF Serving REST and the Open Inference Protocol
//!   v2, thin adapters over the same parse, predict and render;
//!   [`serve::metrics`]: `GET /metrics` (Prometheus), drift gauges, the
//!   request log (not [`metrics`], which evaluates models).
//! - [`demo`]: the lab's web app, embedded: page, examples, alert sink.
//! - [`Rng`]: the seeded generator behind every random choice.

pub mod cli;
pub mod data;
pub mod decide;
pub mod demo;
pub mod metrics;
pub mod model;
pub mod s3;
pub mod sagemaker;
pub mod schema;
pub mod serve;
pub mod train;

/// The generator behind every random choice (weight initialisation,
/// shuffles, holdouts, forest sampling): xoshiro256++, always built with
/// `Rng::seed_from_u64(seed)` (SplitMix64 expansion), never from the OS, so a
/// seed fixes a training run.
pub type Rng = rand_xoshiro::Xoshiro256PlusPlus;

/// The hidden temporary name (`.NAME.partial`, beside `dest`) under which
/// every atomic write puts its bytes before renaming them into place.
pub fn partial_path(dest: &std::path::Path) -> std::path::PathBuf {
    let name = dest.file_name().and_then(|s| s.to_str()).unwrap_or("out");
    dest.with_file_name(format!(".{name}.partial"))
}

/// A relative path made only of normal components (no root, no `..`), or
/// None: where an archive entry or an S3 key may be written.
pub fn safe_relative(p: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// A path refused by [`open_regular`] (carried inside its `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{path}: a {kind}, not a regular file: refused (reading it could block forever or never end)", path = .path.display())]
pub struct NotRegular {
    pub path: std::path::PathBuf,
    /// `FIFO`, `socket`, `directory`, `device`.
    pub kind: &'static str,
}

/// Opens `path` for reading only if it is a regular file (after following
/// symlinks), and returns it with its size. The open uses `O_NONBLOCK`, so
/// a FIFO cannot block it, and the type is checked on the opened file, so
/// the path cannot be swapped in between.
pub fn open_regular(path: &std::path::Path) -> std::io::Result<(fs_err::File, u64)> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    let file = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let Some(kind) = special_kind(meta.file_type()) else {
        return Ok((file, meta.len()));
    };
    let path = path.to_owned();
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        NotRegular { path, kind },
    ))
}

/// What a file that is not a regular file is (`FIFO`, `socket`, `directory`,
/// `device`), or None for a regular file.
pub fn special_kind(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    match () {
        _ if t.is_file() => None,
        _ if t.is_fifo() => Some("FIFO"),
        _ if t.is_socket() => Some("socket"),
        _ if t.is_dir() => Some("directory"),
        _ => Some("device"),
    }
}

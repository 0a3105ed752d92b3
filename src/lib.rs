//! ccfraud: credit-card fraud detection as one small Rust binary that is also
//! an Amazon SageMaker bring-your-own-container image.
//!
//! # Layout
//! Data flows one way — bytes in, validated arrays, a fitted model, bytes out —
//! and each edge (files, HTTP) is parsed once into types the core trusts.
//!
//! - [`sagemaker`]: the `/opt/ml` contract: paths under an ml-root, config
//!   files, the failure file, metric lines.
//! - [`data`]: transactions in, arrays out: the 29-feature schema, fast CSV
//!   readers (lab and Kaggle formats, `.csv.gz`), `prepare`, splits.
//! - [`model`]: pure math: the DNN, logistic regression, random forest, the
//!   [`model::Model`] trait, the versioned artifact.
//! - [`metrics`]: AUC-ROC, AUPRC, log loss, confusion matrix, threshold choice.
//! - [`train`]: hyperparameters → checked params, fit, evaluate, choose, write.
//! - [`serve`]: the hosting contract over actix-web.
//! - [`demo`]: the lab's web app, embedded: page, examples, alert sink.
//! - [`s3`]: S3 transfers and `model.tar.gz` packing for runs outside SageMaker.
//! - [`Rng`]: the seeded generator behind every random choice.
//! - [`cli`]: every flag (long + env), converted once into typed configs; the logger.

pub mod cli;
pub mod data;
pub mod demo;
pub mod metrics;
pub mod model;
pub mod s3;
pub mod sagemaker;
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

/// Cores this process may use, read once: the lookup reads cgroup files,
/// far too slow to repeat on a request path.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

//! The command line: every flag `long` + `env`, its doc comment the help
//! text; parsed once in `main` into the typed configs of each command. Also
//! the stderr logger (level from `CCFRAUD_LOG`, default `info`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Credit-card fraud detection: SageMaker training and hosting in one binary.
#[derive(Debug, Parser)]
#[command(name = "ccfraud", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the SageMaker `/opt/ml` tree lives.
#[derive(Debug, Clone, clap::Args)]
pub struct MlRootArg {
    /// Root of the SageMaker tree (input/, model/, output/).
    #[arg(long, env = "CCFRAUD_ML_ROOT", default_value = crate::sagemaker::DEFAULT_ML_ROOT)]
    pub ml_root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train on <ml-root>/input/data/{train,validation,test}; write <ml-root>/model.
    Train {
        #[command(flatten)]
        root: MlRootArg,
    },
    /// Convert Kaggle's creditcard.csv into the lab's train_data.csv and
    /// test_data.csv (standard time-ordered split).
    Prepare {
        /// Kaggle-format CSV (header, Time..Amount,Class), may be gzip-compressed.
        #[arg(long, env = "CCFRAUD_PREPARE_INPUT")]
        input: PathBuf,
        /// Folder for train_data.csv and test_data.csv.
        #[arg(long, env = "CCFRAUD_PREPARE_OUT")]
        out: PathBuf,
    },
    /// Serve <ml-root>/model over HTTP: GET /ping, POST /invocations.
    Serve(ServeArgs),
}

/// Flags of `ccfraud serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub root: MlRootArg,
    /// Port to listen on (SageMaker sets SAGEMAKER_BIND_TO_PORT; default 8080).
    #[arg(long, env = "SAGEMAKER_BIND_TO_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "CCFRAUD_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// HTTP worker threads (default: number of cores).
    #[arg(long, env = "SAGEMAKER_MODEL_SERVER_WORKERS")]
    pub workers: Option<usize>,
    /// Which trained model to serve: dnn, logistic or forest (default: the one
    /// training marked best).
    #[arg(long, env = "CCFRAUD_MODEL")]
    pub model: Option<String>,
    /// Largest request body accepted, in bytes (SageMaker's limit is 6 MB).
    #[arg(long, env = "CCFRAUD_MAX_BODY_BYTES", default_value_t = 6 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

/// A minimal logger: `LEVEL target: message` lines on stderr.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("{:<5} {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

/// Installs the logger; `CCFRAUD_LOG` = error | warn | info | debug | trace | off.
pub fn init_logging() {
    let level = std::env::var("CCFRAUD_LOG")
        .ok()
        .and_then(|v| v.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Info);
    if log::set_logger(&StderrLogger).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_defaults_hold() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["ccfraud", "serve"]).unwrap();
        match c.command {
            Command::Serve(a) => {
                // env may be set by a caller; defaults apply when it is not
                if std::env::var_os("SAGEMAKER_BIND_TO_PORT").is_none() {
                    assert_eq!(a.port, 8080);
                }
                if std::env::var_os("CCFRAUD_ML_ROOT").is_none() {
                    assert_eq!(a.root.ml_root, PathBuf::from("/opt/ml"));
                }
                assert_eq!(a.max_body_bytes, 6 * 1024 * 1024);
            }
            other => panic!("{other:?}"),
        }
    }
}

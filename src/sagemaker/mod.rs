//! The `/opt/ml` contract of SageMaker training and hosting, all of it:
//! where config, channels, the model, output data and the failure file live
//! under an ml-root (default `/opt/ml`); reading `hyperparameters.json` and
//! `inputdataconfig.json`; which host of a multi-instance job this is
//! (`resourceconfig.json`, [`hosts`]: the first host trains and writes, the
//! others write nothing); the failure file and the exit-code policy; the
//! `name=value;` metric lines SageMaker's `metric_definitions` scrape; and
//! `model.tar.gz` ([`archive`]).

pub mod archive;
pub mod hosts;

use std::path::{Path, PathBuf};

/// Exit codes of every command, one policy: SageMaker reads only zero or
/// not, people and scripts read the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Bad input: data, hyperparameters, model artifact.
    BadInput = 1,
    /// Bad flags or settings; cannot bind.
    Usage = 2,
    /// Writing output or running the server failed.
    Failed = 3,
    /// An S3 transfer failed.
    Transfer = 4,
    /// Stopped by SIGTERM/SIGINT (128 + 15).
    Stopped = 143,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(e as u8)
    }
}

/// Why a config file of the contract could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `source` comes from `fs_err`, which names the path.
    #[error("{source}")]
    Io {
        #[from]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `resourceconfig.json` parsed but is not a usable list of hosts.
    #[error("{path}: {why}")]
    Hosts {
        path: PathBuf,
        why: hosts::HostsError,
    },
}

/// Default ml-root inside a SageMaker container.
pub const DEFAULT_ML_ROOT: &str = "/opt/ml";

/// Paths of the contract under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlRoot {
    root: PathBuf,
}

impl MlRoot {
    pub fn new(root: impl Into<PathBuf>) -> MlRoot {
        MlRoot { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `input/config/hyperparameters.json`
    pub fn hyperparameters(&self) -> PathBuf {
        self.root.join("input/config/hyperparameters.json")
    }

    /// `input/config/inputdataconfig.json`
    pub fn input_data_config(&self) -> PathBuf {
        self.root.join("input/config/inputdataconfig.json")
    }

    /// `input/config/resourceconfig.json`: this host and every host of the job.
    pub fn resource_config(&self) -> PathBuf {
        self.root.join("input/config/resourceconfig.json")
    }

    /// `input/data/<channel>`
    pub fn channel(&self, name: &str) -> PathBuf {
        self.root.join("input/data").join(name)
    }

    /// `model`: what SageMaker packs into `model.tar.gz`, and what serving reads.
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    /// `output/data`: packed into `output.tar.gz`.
    pub fn output_data_dir(&self) -> PathBuf {
        self.root.join("output/data")
    }

    /// `output/failure`: its first 1024 characters become the job's FailureReason.
    pub fn failure_file(&self) -> PathBuf {
        self.root.join("output/failure")
    }

    /// Writes the failure reason (best effort: the exit code still reports it).
    pub fn write_failure(&self, reason: &str) {
        let path = self.failure_file();
        let written = path
            .parent()
            .map_or(Ok(()), fs_err::create_dir_all)
            .and_then(|()| fs_err::write(&path, reason));
        if let Err(e) = written {
            tracing::warn!("could not write the failure file: {e}");
        }
    }

    /// The text of `hyperparameters.json`, or None when there is none.
    pub fn read_hyperparameters(&self) -> Result<Option<String>, ConfigError> {
        match fs_err::read_to_string(self.hyperparameters()) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Input mode of a channel in `inputdataconfig.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    File,
    Pipe,
}

#[derive(serde::Deserialize)]
struct ChannelConfig {
    #[serde(rename = "TrainingInputMode", default)]
    mode: Option<String>,
    #[serde(rename = "ContentType", default)]
    content_type: Option<String>,
    #[serde(rename = "S3DistributionType", default)]
    distribution: Option<String>,
}

/// `inputdataconfig.json`'s channels by name, `None` when the file is
/// absent (local runs).
fn channel_configs(
    root: &MlRoot,
) -> Result<Option<std::collections::BTreeMap<String, ChannelConfig>>, ConfigError> {
    let path = root.input_data_config();
    let text = match fs_err::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ConfigError::Json { path, source })
}

/// The channels of `inputdataconfig.json` whose `S3DistributionType` is
/// `ShardedByS3Key`: in a job of several hosts each host gets only its share
/// of their files. None when the file is absent.
pub fn sharded_channels(root: &MlRoot) -> Result<Vec<String>, ConfigError> {
    let Some(channels) = channel_configs(root)? else {
        return Ok(Vec::new());
    };
    Ok(channels
        .into_iter()
        .filter(|(_, c)| c.distribution.as_deref() == Some("ShardedByS3Key"))
        .map(|(name, _)| name)
        .collect())
}

/// True when `inputdataconfig.json` gives `channel` the content type of the
/// built-in algorithms' label-first CSV: `text/csv;label_size=1`.
pub fn label_first(root: &MlRoot, channel: &str) -> Result<bool, ConfigError> {
    let Some(channels) = channel_configs(root)? else {
        return Ok(false);
    };
    let Some(ct) = channels
        .get(channel)
        .and_then(|c| c.content_type.as_deref())
    else {
        return Ok(false);
    };
    let mut parts = ct.split(';').map(|p| p.trim().to_ascii_lowercase());
    let csv = parts.next().is_some_and(|m| m == "text/csv");
    Ok(csv && parts.any(|p| p.replace(' ', "") == "label_size=1"))
}

/// Reads `inputdataconfig.json` when present: channel name → input mode.
/// A missing file means "whatever folders exist" (local runs).
pub fn input_modes(root: &MlRoot) -> Result<Vec<(String, InputMode)>, ConfigError> {
    let Some(channels) = channel_configs(root)? else {
        return Ok(Vec::new());
    };
    Ok(channels
        .into_iter()
        .map(|(name, cfg)| {
            let mode = match cfg.mode.as_deref() {
                Some("Pipe") => InputMode::Pipe,
                _ => InputMode::File,
            };
            (name, mode)
        })
        .collect())
}

/// One metric in the form SageMaker's `metric_definitions` regexes read:
/// `name=value;` (e.g. `dnn_test_auprc=0.8012;`).
pub fn metric_line(name: &str, value: f64) -> String {
    format!("{name}={value:.6};")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_contract() {
        let r = MlRoot::new("/opt/ml");
        assert_eq!(
            r.hyperparameters(),
            Path::new("/opt/ml/input/config/hyperparameters.json")
        );
        assert_eq!(r.channel("train"), Path::new("/opt/ml/input/data/train"));
        assert_eq!(r.model_dir(), Path::new("/opt/ml/model"));
        assert_eq!(r.failure_file(), Path::new("/opt/ml/output/failure"));
        assert_eq!(
            metric_line("dnn_test_auprc", 0.5),
            "dnn_test_auprc=0.500000;"
        );
    }

    #[test]
    fn reads_input_modes() {
        let dir = tempfile::tempdir().unwrap();
        let r = MlRoot::new(dir.path());
        assert_eq!(input_modes(&r).unwrap(), vec![]);
        std::fs::create_dir_all(dir.path().join("input/config")).unwrap();
        std::fs::write(
            r.input_data_config(),
            r#"{"train": {"TrainingInputMode": "Pipe"}, "test": {"TrainingInputMode": "File"}}"#,
        )
        .unwrap();
        let modes = input_modes(&r).unwrap();
        assert!(modes.contains(&("train".into(), InputMode::Pipe)));
        assert!(modes.contains(&("test".into(), InputMode::File)));
        assert!(!label_first(&r, "train").unwrap());
        assert_eq!(sharded_channels(&r).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn finds_sharded_channels() {
        let dir = tempfile::tempdir().unwrap();
        let r = MlRoot::new(dir.path());
        assert_eq!(sharded_channels(&r).unwrap(), Vec::<String>::new());
        std::fs::create_dir_all(dir.path().join("input/config")).unwrap();
        std::fs::write(
            r.input_data_config(),
            r#"{"train": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "None"},
                "test": {"S3DistributionType": "FullyReplicated"}, "validation": {}}"#,
        )
        .unwrap();
        assert_eq!(sharded_channels(&r).unwrap(), vec!["train".to_string()]);
        assert_eq!(
            r.resource_config(),
            dir.path().join("input/config/resourceconfig.json")
        );
    }

    #[test]
    fn a_label_size_of_one_means_label_first_csv() {
        let dir = tempfile::tempdir().unwrap();
        let r = MlRoot::new(dir.path());
        assert!(!label_first(&r, "train").unwrap());
        std::fs::create_dir_all(dir.path().join("input/config")).unwrap();
        std::fs::write(
            r.input_data_config(),
            r#"{"train": {"ContentType": "text/csv; label_size=1"}, "test": {"ContentType": "text/csv"}, "v": {"ContentType": "application/x-parquet;label_size=1"}}"#,
        )
        .unwrap();
        assert!(label_first(&r, "train").unwrap());
        assert!(!label_first(&r, "test").unwrap());
        assert!(!label_first(&r, "v").unwrap());
        assert!(!label_first(&r, "none").unwrap());
        // a config that cannot be read is an error, not "no"
        std::fs::remove_file(r.input_data_config()).unwrap();
        std::fs::create_dir(r.input_data_config()).unwrap();
        assert!(label_first(&r, "train").is_err());
    }
}

//! The `/opt/ml` contract of SageMaker training and hosting: where config,
//! channels, the model, output data and the failure file live under an
//! ml-root (default `/opt/ml`), how channels are declared, and the
//! `name=value;` metric lines SageMaker's `metric_definitions` scrape.

use std::path::{Path, PathBuf};

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
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(&path, reason) {
            eprintln!("warning: could not write {}: {e}", path.display());
        }
    }
}

/// Input mode of a channel in `inputdataconfig.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    File,
    Pipe,
}

/// Reads `inputdataconfig.json` when present: channel name → input mode.
/// A missing file means "whatever folders exist" (local runs).
pub fn input_modes(root: &MlRoot) -> Result<Vec<(String, InputMode)>, String> {
    let path = root.input_data_config();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{}: expected a JSON object of channels", path.display()))?;
    Ok(obj
        .iter()
        .map(|(name, cfg)| {
            let mode = match cfg.get("TrainingInputMode").and_then(|m| m.as_str()) {
                Some("Pipe") => InputMode::Pipe,
                _ => InputMode::File,
            };
            (name.clone(), mode)
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
    }
}

//! Hyperparameters: `hyperparameters.json` (all values strings, maybe
//! JSON-quoted, as SageMaker sends them) → [`TrainParams`], validated once.
//! Keys starting with `_` or `sagemaker_` are SageMaker's and ignored; any
//! other unknown key is an error that names it.

use crate::decide::{Costs, FraudCost};
use crate::model::calibrate::Method;
use crate::model::dnn::{DnnParams, Optimizer, MAX_WIDTH};
use crate::model::forest::ForestParams;
use crate::model::gbdt::GbdtParams;
use crate::model::logistic::LogisticParams;
use crate::model::ModelKind;
use crate::schema::{FormChoice, Spec};
use std::collections::BTreeMap;

/// Which models to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    One(ModelKind),
    All,
}

impl ModelChoice {
    /// The kinds to fit, in training order.
    pub fn kinds(self) -> Vec<ModelKind> {
        match self {
            ModelChoice::One(k) => vec![k],
            ModelChoice::All => ModelKind::ALL.to_vec(),
        }
    }
}

/// How fraud rows are weighted in the DNN's and logistic regression's loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClassWeight {
    None,
    /// `n_normal / n_fraud` on the training rows.
    Balanced,
    Fixed(f32),
}

impl ClassWeight {
    /// Loss weight of one fraud row when fitting on `rows` rows of which
    /// `frauds` are frauds (a normal row weighs 1).
    pub fn fraud_weight(self, rows: usize, frauds: usize) -> f64 {
        match self {
            ClassWeight::None => 1.0,
            ClassWeight::Fixed(w) => f64::from(w),
            ClassWeight::Balanced => {
                let f = frauds.max(1) as f64;
                (rows as f64 - f) / f
            }
        }
    }
}

/// Decision threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Fixed(f64),
    /// Maximise F1 on the validation holdout.
    Auto,
    /// Least total cost on the validation holdout (see [`crate::decide`]).
    Cost,
}

/// Which calibration each model gets, fitted on the validation holdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationChoice {
    /// The method with the lowest 2-fold cross-fitted validation log loss.
    Auto,
    Fixed(Method),
}

impl CalibrationChoice {
    /// The methods to try.
    pub fn candidates(self) -> Vec<Method> {
        match self {
            CalibrationChoice::Auto => Method::ALL.to_vec(),
            CalibrationChoice::Fixed(m) => vec![m],
        }
    }
}

impl std::fmt::Display for CalibrationChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalibrationChoice::Auto => f.write_str("auto"),
            CalibrationChoice::Fixed(m) => m.fmt(f),
        }
    }
}

/// How models are evaluated beyond the test channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// The test channel (or the holdout) only.
    Holdout,
    /// Also time-ordered rolling-origin folds over train + test.
    Rolling,
}

/// Every training setting, checked. Built only by [`TrainParams::from_map`]
/// (or [`Default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    model: ModelChoice,
    dnn: DnnParams,
    class_weight: ClassWeight,
    logistic: LogisticParams,
    forest: ForestParams,
    gbdt: GbdtParams,
    threshold: Threshold,
    costs: Costs,
    validation_fraction: f64,
    seed: u64,
    schema: Spec,
    calibration: CalibrationChoice,
    evaluation: Evaluation,
}

/// One hyperparameter: key, default, what is allowed. The README table is
/// this list.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("model", "all", "dnn | logistic | forest | gbdt | all"),
    ("hidden_units", "10,20,10", "comma-separated layer widths, 1..=1024 each (JSON list also accepted)"),
    ("epochs", "10", "whole number 1..=10000"),
    ("batch_size", "256", "whole number 1..=1000000"),
    ("learning_rate", "0.001", "number > 0"),
    ("optimizer", "adam", "adam | adagrad | sgd"),
    ("class_weight", "none", "none | balanced | a number > 0 (loss weight of a fraud row in the DNN and logistic regression)"),
    ("l2", "0", "number >= 0 (DNN weight decay; logistic-regression penalty alpha)"),
    ("relu_leak", "0.3", "number in [0, 1): slope of the DNN's hidden units below zero (0 = plain ReLU)"),
    ("early_stopping_patience", "3", "whole number >= 1: DNN epochs without a better validation AUPRC before stopping"),
    ("logistic_max_iterations", "100", "whole number 1..=100000"),
    ("n_trees", "100", "whole number 1..=5000"),
    ("max_depth", "12", "whole number 1..=64"),
    ("min_samples_leaf", "1", "whole number >= 1"),
    ("forest_normal_fraction", "0.25", "number in (0, 1]: share of normal rows each group of trees sees"),
    ("gbdt_rounds", "1000", "whole number 1..=100000: most boosting rounds (early stopping usually ends sooner)"),
    ("gbdt_learning_rate", "0.05", "number in (0, 1]: shrinkage of each tree"),
    ("gbdt_num_leaves", "31", "whole number 2..=4096: leaves per tree (grown leaf-wise)"),
    ("gbdt_max_depth", "0", "whole number 0..=64: deepest split level, 0 = no limit"),
    ("gbdt_min_data_in_leaf", "20", "whole number >= 1: rows each leaf keeps"),
    ("gbdt_min_child_weight", "0.001", "number >= 0: hessian each leaf keeps"),
    ("gbdt_lambda", "1", "number >= 0: L2 penalty on leaf values"),
    ("gbdt_min_split_gain", "0", "number >= 0: smallest loss reduction a split must bring"),
    ("gbdt_subsample", "0.8", "number in (0, 1]: share of rows each round sees"),
    ("gbdt_colsample", "0.8", "number in (0, 1]: share of columns each tree may split on"),
    ("gbdt_scale_pos_weight", "1", "number > 0: loss weight of a fraud row"),
    ("gbdt_early_stopping_rounds", "30", "whole number >= 0: rounds without a better validation log loss before stopping (the best round is kept); 0 = off"),
    ("gbdt_max_bin", "255", "whole number 2..=255: bins per column (missing values get one more)"),
    ("seed", "42", "whole number >= 0"),
    ("threshold", "0.5", "number in [0, 1], auto (maximise F1 on the validation holdout) or cost (least total cost on the validation holdout)"),
    ("cost_false_alert", "5", "number >= 0: cost of reviewing one alert, in amount units"),
    ("fraud_cost", "amount", "amount | a number >= 0: cost of a fraud let through (amount: its own amount, from the schema's amount column)"),
    ("validation_fraction", "0.2", "number in (0, 0.5]: stratified holdout carved from train when there is no validation channel"),
    ("calibration", "auto", "auto | isotonic | platt | none: map from score to probability fitted on the validation holdout (auto: lowest 2-fold cross-fitted validation log loss)"),
    ("evaluation", "holdout", "holdout | rolling: rolling adds 4 time-ordered rolling-origin folds over train + test (mean and sd of AUC-ROC and AUPRC per model)"),
    ("label", "Class", "name of the 0/1 label column (files with a header)"),
    ("label_column", "auto", "auto | first: first = SageMaker's built-in algorithms' CSV, no header and the label first (also chosen by the channel's content type text/csv;label_size=1)"),
    ("ignore", "", "comma-separated columns to drop (an id, Time)"),
    ("categorical", "", "comma-separated columns holding categories (strings allowed; a vocabulary is learned)"),
    ("amount", "", "the column holding the transaction amount"),
    ("max_categories", "1000", "whole number 1..=100000: more distinct values in a categorical column is an error"),
    ("min_category_count", "10", "whole number >= 1: categories seen fewer times in training go to the other bucket"),
];

/// A bad hyperparameter: names the key, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown hyperparameter '{key}' (known: {known})")]
    Unknown { key: String, known: String },
    #[error("hyperparameter '{key}' = '{value}' is invalid: expected {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("hyperparameters.json: {0}")]
    File(String),
}

/// Strips one level of JSON string quoting (`"\"adam\""` → `adam`) and
/// surrounding spaces.
fn unquote(v: &str) -> String {
    let t = v.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(t) {
            return s.trim().to_string();
        }
    }
    t.to_string()
}

impl Default for TrainParams {
    fn default() -> TrainParams {
        TrainParams::from_map(&BTreeMap::new()).expect("defaults are valid")
    }
}

impl TrainParams {
    /// Which models to train.
    pub fn model(&self) -> ModelChoice {
        self.model
    }

    pub fn dnn(&self) -> &DnnParams {
        &self.dnn
    }

    /// Loss weight of fraud rows in the DNN and logistic regression.
    pub fn class_weight(&self) -> ClassWeight {
        self.class_weight
    }

    pub fn logistic(&self) -> &LogisticParams {
        &self.logistic
    }

    pub fn forest(&self) -> &ForestParams {
        &self.forest
    }

    pub fn gbdt(&self) -> &GbdtParams {
        &self.gbdt
    }

    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// The price of an alert and of a fraud let through.
    pub fn costs(&self) -> Costs {
        self.costs
    }

    /// Share of `train` held out for validation when there is no channel.
    pub fn validation_fraction(&self) -> f64 {
        self.validation_fraction
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Which calibration to fit.
    pub fn calibration(&self) -> CalibrationChoice {
        self.calibration
    }

    /// Whether to add rolling-origin folds.
    pub fn evaluation(&self) -> Evaluation {
        self.evaluation
    }

    /// What the hyperparameters say about the columns.
    pub fn schema(&self) -> &Spec {
        &self.schema
    }

    /// The same parameters reading label-first files (the channel's content
    /// type said `label_size=1`).
    pub fn with_label_first(mut self) -> TrainParams {
        self.schema.form = FormChoice::LabelFirst;
        self
    }

    /// Parses `key=value` pairs (tests and examples; SageMaker sends JSON).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<TrainParams, ParamError> {
        TrainParams::from_map(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Parses `hyperparameters.json` text: a JSON object whose values are
    /// strings (numbers and booleans are accepted too).
    pub fn from_json(text: &str) -> Result<TrainParams, ParamError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ParamError::File(format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ParamError::File("expected a JSON object".into()))?;
        let mut map = BTreeMap::new();
        for (k, v) in obj {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Array(_) => v.to_string(),
                other => {
                    return Err(ParamError::Invalid {
                        key: k.clone(),
                        value: other.to_string(),
                        allowed: "a string".into(),
                    })
                }
            };
            map.insert(k.clone(), s);
        }
        TrainParams::from_map(&map)
    }

    /// Validates a key → string map into checked parameters.
    pub fn from_map(raw: &BTreeMap<String, String>) -> Result<TrainParams, ParamError> {
        for key in raw.keys() {
            if key.starts_with('_') || key.starts_with("sagemaker_") {
                continue;
            }
            if !KEYS.iter().any(|(k, _, _)| k == key) {
                return Err(ParamError::Unknown {
                    key: key.clone(),
                    known: KEYS
                        .iter()
                        .map(|(k, _, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let get = |key: &str| -> (String, String, &'static str) {
            let (_, default, allowed) = KEYS
                .iter()
                .find(|(k, _, _)| *k == key)
                .expect("key is listed in KEYS");
            let value = raw
                .get(key)
                .map(|v| unquote(v))
                .unwrap_or_else(|| default.to_string());
            (key.to_string(), value, allowed)
        };
        let invalid = |(key, value, allowed): (String, String, &str)| ParamError::Invalid {
            key,
            value,
            allowed: allowed.to_string(),
        };
        let uint = |key: &str, lo: u64, hi: u64| -> Result<u64, ParamError> {
            let g = get(key);
            match g.1.parse::<u64>() {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(invalid(g)),
            }
        };
        let float = |key: &str, ok: &dyn Fn(f64) -> bool| -> Result<f64, ParamError> {
            let g = get(key);
            match g.1.parse::<f64>() {
                Ok(v) if v.is_finite() && ok(v) => Ok(v),
                _ => Err(invalid(g)),
            }
        };
        let word = |key: &str, words: &[&str]| -> Result<String, ParamError> {
            let g = get(key);
            let w = g.1.to_ascii_lowercase();
            if words.contains(&w.as_str()) {
                Ok(w)
            } else {
                Err(invalid(g))
            }
        };

        let model = match word("model", &["dnn", "logistic", "forest", "gbdt", "all"])?.parse() {
            Ok(kind) => ModelChoice::One(kind),
            Err(_) => ModelChoice::All,
        };
        let hidden_units = {
            let g = get("hidden_units");
            let inner =
                g.1.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
            let parts: Result<Vec<usize>, _> = inner
                .split([',', ' '])
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse::<usize>())
                .collect();
            match parts {
                Ok(v)
                    if !v.is_empty()
                        && v.len() <= 16
                        && v.iter().all(|&w| (1..=MAX_WIDTH).contains(&w)) =>
                {
                    v
                }
                _ => return Err(invalid(g)),
            }
        };
        let optimizer = match word("optimizer", &["adam", "adagrad", "sgd"])?.as_str() {
            "adam" => Optimizer::Adam,
            "adagrad" => Optimizer::Adagrad,
            _ => Optimizer::Sgd,
        };
        let class_weight = {
            let g = get("class_weight");
            match g.1.to_ascii_lowercase().as_str() {
                "none" => ClassWeight::None,
                "balanced" => ClassWeight::Balanced,
                s => match s.parse::<f32>() {
                    Ok(v) if v.is_finite() && v > 0.0 => ClassWeight::Fixed(v),
                    _ => return Err(invalid(g)),
                },
            }
        };
        let threshold = {
            let g = get("threshold");
            if g.1.eq_ignore_ascii_case("auto") {
                Threshold::Auto
            } else if g.1.eq_ignore_ascii_case("cost") {
                Threshold::Cost
            } else {
                match g.1.parse::<f64>() {
                    Ok(v) if (0.0..=1.0).contains(&v) => Threshold::Fixed(v),
                    _ => return Err(invalid(g)),
                }
            }
        };
        let costs = Costs {
            false_alert: float("cost_false_alert", &|v| v >= 0.0)?,
            fraud: {
                let g = get("fraud_cost");
                if g.1.eq_ignore_ascii_case("amount") {
                    FraudCost::Amount
                } else {
                    match g.1.parse::<f64>() {
                        Ok(v) if v.is_finite() && v >= 0.0 => FraudCost::Fixed(v),
                        _ => return Err(invalid(g)),
                    }
                }
            },
        };
        let seed = uint("seed", 0, u64::MAX)?;
        let calibration =
            match word("calibration", &["auto", "isotonic", "platt", "none"])?.as_str() {
                "isotonic" => CalibrationChoice::Fixed(Method::Isotonic),
                "platt" => CalibrationChoice::Fixed(Method::Platt),
                "none" => CalibrationChoice::Fixed(Method::None),
                _ => CalibrationChoice::Auto,
            };
        let evaluation = match word("evaluation", &["holdout", "rolling"])?.as_str() {
            "rolling" => Evaluation::Rolling,
            _ => Evaluation::Holdout,
        };
        let l2 = float("l2", &|v| v >= 0.0)?;
        let names = |key: &str| -> Result<Vec<String>, ParamError> {
            let g = get(key);
            let t = g.1.trim();
            let list: Vec<String> = if t.starts_with('[') {
                serde_json::from_str::<Vec<String>>(t).map_err(|_| invalid(g.clone()))?
            } else {
                t.split(',').map(str::to_owned).collect()
            };
            let list: Vec<String> = list
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            Ok(list)
        };
        let name = |key: &str| -> Option<String> {
            let v = get(key).1;
            (!v.trim().is_empty()).then(|| v.trim().to_owned())
        };
        let schema = Spec {
            form: match word("label_column", &["auto", "first"])?.as_str() {
                "first" => FormChoice::LabelFirst,
                _ => FormChoice::Auto,
            },
            label: raw.contains_key("label").then(|| name("label")).flatten(),
            ignore: names("ignore")?,
            categorical: names("categorical")?,
            amount: name("amount"),
            max_categories: uint("max_categories", 1, 100_000)? as usize,
            min_category_count: uint("min_category_count", 1, u64::MAX)? as usize,
        };
        if raw.contains_key("label") && schema.label.is_none() {
            return Err(invalid(get("label")));
        }
        Ok(TrainParams {
            model,
            dnn: DnnParams {
                hidden_units,
                epochs: uint("epochs", 1, 10_000)? as usize,
                batch_size: uint("batch_size", 1, 1_000_000)? as usize,
                learning_rate: float("learning_rate", &|v| v > 0.0)? as f32,
                optimizer,
                l2: l2 as f32,
                pos_weight: 1.0,
                seed,
                patience: uint("early_stopping_patience", 1, 10_000)? as usize,
                leak: float("relu_leak", &|v| (0.0..1.0).contains(&v))? as f32,
            },
            class_weight,
            logistic: LogisticParams {
                l2,
                max_iterations: uint("logistic_max_iterations", 1, 100_000)?,
                pos_weight: 1.0,
            },
            forest: ForestParams {
                n_trees: uint("n_trees", 1, 5000)? as usize,
                max_depth: uint("max_depth", 1, 64)? as u16,
                min_samples_leaf: uint("min_samples_leaf", 1, 1_000_000)? as usize,
                normal_fraction: float("forest_normal_fraction", &|v| v > 0.0 && v <= 1.0)?,
                seed,
            },
            gbdt: GbdtParams {
                rounds: uint("gbdt_rounds", 1, 100_000)? as usize,
                learning_rate: float("gbdt_learning_rate", &|v| v > 0.0 && v <= 1.0)?,
                num_leaves: uint("gbdt_num_leaves", 2, 4096)? as usize,
                max_depth: uint("gbdt_max_depth", 0, 64)? as usize,
                min_data_in_leaf: uint("gbdt_min_data_in_leaf", 1, u64::from(u32::MAX))? as usize,
                min_child_weight: float("gbdt_min_child_weight", &|v| v >= 0.0)?,
                lambda: float("gbdt_lambda", &|v| v >= 0.0)?,
                min_split_gain: float("gbdt_min_split_gain", &|v| v >= 0.0)?,
                subsample: float("gbdt_subsample", &|v| v > 0.0 && v <= 1.0)?,
                colsample: float("gbdt_colsample", &|v| v > 0.0 && v <= 1.0)?,
                scale_pos_weight: float("gbdt_scale_pos_weight", &|v| v > 0.0)?,
                early_stopping_rounds: uint("gbdt_early_stopping_rounds", 0, 100_000)? as usize,
                max_bin: uint("gbdt_max_bin", 2, 255)? as usize,
                seed,
            },
            threshold,
            costs,
            validation_fraction: float("validation_fraction", &|v| v > 0.0 && v <= 0.5)?,
            seed,
            schema,
            calibration,
            evaluation,
        })
    }

    /// The settings a model was trained with, for the artifact and metrics.
    pub fn summary(&self, model: ModelKind) -> serde_json::Value {
        let threshold = match self.threshold {
            Threshold::Auto => serde_json::json!("auto"),
            Threshold::Cost => serde_json::json!("cost"),
            Threshold::Fixed(t) => serde_json::json!(t),
        };
        match model {
            ModelKind::Dnn => serde_json::json!({
                "hidden_units": self.dnn.hidden_units, "epochs": self.dnn.epochs,
                "batch_size": self.dnn.batch_size, "learning_rate": self.dnn.learning_rate,
                "optimizer": self.dnn.optimizer, "l2": self.dnn.l2,
                "class_weight": format!("{:?}", self.class_weight).to_lowercase(),
                "early_stopping_patience": self.dnn.patience, "relu_leak": self.dnn.leak, "seed": self.seed, "threshold": threshold,
            }),
            ModelKind::Logistic => serde_json::json!({
                "l2": self.logistic.l2, "max_iterations": self.logistic.max_iterations,
                "class_weight": format!("{:?}", self.class_weight).to_lowercase(), "threshold": threshold,
            }),
            ModelKind::Forest => serde_json::json!({
                "n_trees": self.forest.n_trees, "max_depth": self.forest.max_depth,
                "min_samples_leaf": self.forest.min_samples_leaf,
                "normal_fraction": self.forest.normal_fraction, "seed": self.seed, "threshold": threshold,
            }),
            ModelKind::Blend => serde_json::json!({
                "members": "the best 3 models by validation AUPRC",
                "weights": "multiples of 0.1 summing to 1, best validation AUPRC",
                "threshold": threshold,
            }),
            ModelKind::Gbdt => {
                let g = &self.gbdt;
                serde_json::json!({
                    "rounds": g.rounds, "learning_rate": g.learning_rate, "num_leaves": g.num_leaves,
                    "max_depth": g.max_depth, "min_data_in_leaf": g.min_data_in_leaf,
                    "min_child_weight": g.min_child_weight, "lambda": g.lambda,
                    "min_split_gain": g.min_split_gain, "subsample": g.subsample,
                    "colsample": g.colsample, "scale_pos_weight": g.scale_pos_weight,
                    "early_stopping_rounds": g.early_stopping_rounds, "max_bin": g.max_bin,
                    "seed": self.seed, "threshold": threshold,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TrainParams, ParamError> {
        TrainParams::from_json(json)
    }

    #[test]
    fn column_hyperparameters_describe_the_schema() {
        let d = TrainParams::default();
        assert_eq!(*d.schema(), Spec::default());
        let p = parse(
            r#"{"label": " is_fraud ", "ignore": "id, ,Time", "categorical": "[\"mcc\", \" country \"]",
                "amount": "amt", "label_column": "first", "max_categories": "50", "min_category_count": "3"}"#,
        )
        .unwrap();
        let s = p.schema();
        assert_eq!(s.form, FormChoice::LabelFirst);
        assert_eq!(s.label.as_deref(), Some("is_fraud"));
        assert_eq!(s.ignore, ["id", "Time"]);
        assert_eq!(s.categorical, ["mcc", "country"]);
        assert_eq!(s.amount.as_deref(), Some("amt"));
        assert_eq!((s.max_categories, s.min_category_count), (50, 3));
        assert_eq!(
            parse(r#"{"label_column": "auto"}"#).unwrap().schema().form,
            FormChoice::Auto
        );
        let first = TrainParams::default().with_label_first();
        assert_eq!(first.schema().form, FormChoice::LabelFirst);
        assert_eq!(first.seed(), TrainParams::default().seed());
        for bad in [
            r#"{"label": " "}"#,
            r#"{"label_column": "last"}"#,
            r#"{"categorical": "[1, 2]"}"#,
            r#"{"max_categories": "0"}"#,
            r#"{"min_category_count": "0"}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(ParamError::Invalid { .. })),
                "{bad}"
            );
        }
        assert_eq!(parse(r#"{"amount": " "}"#).unwrap().schema().amount, None);
    }

    #[test]
    fn defaults_are_documented_values() {
        let p = TrainParams::default();
        assert_eq!(p.model, ModelChoice::All);
        assert_eq!(p.dnn.hidden_units, vec![10, 20, 10]);
        assert_eq!(p.dnn.epochs, 10);
        assert_eq!(p.dnn.batch_size, 256);
        assert_eq!(p.dnn.learning_rate, 0.001);
        assert_eq!(p.dnn.optimizer, Optimizer::Adam);
        assert_eq!(p.dnn.leak, 0.3);
        assert_eq!(p.class_weight, ClassWeight::None);
        assert_eq!(p.threshold, Threshold::Fixed(0.5));
        assert_eq!(p.forest.n_trees, 100);
        assert_eq!(p.seed, 42);
        assert_eq!(p.calibration, CalibrationChoice::Auto);
        assert_eq!(p.evaluation, Evaluation::Holdout);
    }

    #[test]
    fn calibration_and_evaluation_parse_and_refuse() {
        let p = parse(r#"{"calibration": "Isotonic", "evaluation": "rolling"}"#).unwrap();
        assert_eq!(p.calibration(), CalibrationChoice::Fixed(Method::Isotonic));
        assert_eq!(p.calibration().candidates(), vec![Method::Isotonic]);
        assert_eq!(p.evaluation(), Evaluation::Rolling);
        assert_eq!(
            parse(r#"{"calibration": "platt"}"#).unwrap().calibration(),
            CalibrationChoice::Fixed(Method::Platt)
        );
        assert_eq!(
            parse(r#"{"calibration": "none"}"#)
                .unwrap()
                .calibration()
                .to_string(),
            "none"
        );
        assert_eq!(CalibrationChoice::Auto.candidates().len(), 3);
        for bad in [r#"{"calibration": "beta"}"#, r#"{"evaluation": "kfold"}"#] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("expected"), "{e}");
        }
    }

    #[test]
    fn strings_json_quoted_strings_and_sdk_forms() {
        let p = parse(
            r#"{"epochs": "5", "optimizer": "\"adagrad\"", "hidden_units": "[32, 16]",
                "class_weight": "balanced", "threshold": "\"auto\"", "learning_rate": "1e-2",
                "model": "DNN", "_tuning_objective_metric": "x", "sagemaker_program": "y"}"#,
        )
        .unwrap();
        assert_eq!(p.dnn.epochs, 5);
        assert_eq!(p.dnn.optimizer, Optimizer::Adagrad);
        assert_eq!(p.dnn.hidden_units, vec![32, 16]);
        assert_eq!(p.class_weight, ClassWeight::Balanced);
        assert_eq!(p.threshold, Threshold::Auto);
        assert_eq!(p.dnn.learning_rate, 0.01);
        assert_eq!(p.model, ModelChoice::One(ModelKind::Dnn));
        // plain JSON numbers from hand-written files
        assert_eq!(
            parse(r#"{"epochs": 3, "class_weight": "25"}"#)
                .unwrap()
                .class_weight,
            ClassWeight::Fixed(25.0)
        );
    }

    #[test]
    fn errors_name_key_value_and_allowed() {
        let e = parse(r#"{"epochz": "3"}"#).unwrap_err();
        assert!(matches!(&e, ParamError::Unknown { key, .. } if key == "epochz"));
        assert!(e.to_string().contains("known: model, hidden_units"));
        let e = parse(r#"{"epochs": "ten"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hyperparameter 'epochs' = 'ten' is invalid: expected whole number 1..=10000"
        );
        for bad in [
            r#"{"optimizer": "rmsprop"}"#,
            r#"{"hidden_units": "10,0"}"#,
            r#"{"hidden_units": ""}"#,
            r#"{"threshold": "1.5"}"#,
            r#"{"class_weight": "-1"}"#,
            r#"{"learning_rate": "nan"}"#,
            r#"{"relu_leak": "1"}"#,
            r#"{"relu_leak": "-0.1"}"#,
            r#"{"validation_fraction": "0.9"}"#,
            r#"{"epochs": null}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(ParamError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(parse("[1]"), Err(ParamError::File(_))));
        assert!(matches!(parse("{"), Err(ParamError::File(_))));
    }
}

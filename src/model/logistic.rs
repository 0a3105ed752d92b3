//! Logistic regression fitted with linfa-logistic (L-BFGS, L2 penalty) on
//! scaled features, stored as plain weights so serving needs no solver.
//! linfa-logistic's `predict_probabilities` returns the probability of its
//! `labels().pos` class, which need not be fraud: we check and flip.

use super::{Defect, ModelError, ModelKind, Place, Rule, Vector};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// A fitted logistic model over scaled features: `p = sigmoid(w·x + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LogisticRepr")]
pub struct Logistic {
    weights: Vec<f32>,
    intercept: f32,
}

/// Stored form of [`Logistic`].
#[derive(Deserialize)]
pub(crate) struct LogisticRepr {
    weights: Vec<f32>,
    intercept: f32,
}

impl TryFrom<LogisticRepr> for Logistic {
    type Error = Defect;
    fn try_from(r: LogisticRepr) -> Result<Logistic, Defect> {
        let (weights, intercept) = (r.weights, r.intercept);
        let m = Logistic { weights, intercept };
        m.check().map(|()| m)
    }
}

fn fit_failed(source: Box<dyn std::error::Error + Send + Sync>) -> ModelError {
    ModelError::Fit {
        model: ModelKind::Logistic,
        source,
    }
}

/// Checked logistic-regression settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticParams {
    /// L2 penalty (linfa's `alpha`).
    pub l2: f64,
    pub max_iterations: u64,
}

impl super::Model for Logistic {
    fn n_features(&self) -> usize {
        self.weights.len()
    }

    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        for (r, o) in rows.chunks_exact(self.weights.len()).zip(out.iter_mut()) {
            *o = self.predict_row(r);
        }
    }
}

impl Logistic {
    /// A model from its weights (one a feature) and intercept, all finite.
    pub fn new(weights: Vec<f32>, intercept: f32) -> Result<Logistic, ModelError> {
        Logistic::try_from(LogisticRepr { weights, intercept }).map_err(|defect| {
            ModelError::Invalid {
                model: ModelKind::Logistic,
                defect,
            }
        })
    }

    /// Weights over scaled features.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    pub fn intercept(&self) -> f32 {
        self.intercept
    }

    /// Fits on scaled row-major features (`d` columns) and 0/1 labels.
    pub fn fit(p: &LogisticParams, x: &[f32], y: &[u8], d: usize) -> Result<Logistic, ModelError> {
        let n = y.len();
        let xs = Array2::from_shape_vec((n, d), x.iter().map(|&v| f64::from(v)).collect())
            .map_err(|e| fit_failed(e.into()))?;
        let ys: Array1<usize> = y.iter().map(|&v| usize::from(v)).collect();
        let data = Dataset::new(xs, ys);
        let fitted = LogisticRegression::default()
            .alpha(p.l2)
            .max_iterations(p.max_iterations)
            .gradient_tolerance(1e-5)
            .fit(&data)
            .map_err(|e| fit_failed(e.into()))?;
        let sign = if fitted.labels().pos.class == 1 {
            1.0
        } else {
            -1.0
        };
        let m = Logistic {
            weights: fitted.params().iter().map(|&w| (sign * w) as f32).collect(),
            intercept: (sign * fitted.intercept()) as f32,
        };
        if !m.is_finite() {
            return Err(ModelError::Diverged {
                model: super::ModelKind::Logistic,
                epoch: None,
                hint: "raise the hyperparameter l2 (or lower logistic_max_iterations)",
            });
        }
        Ok(m)
    }

    /// True when the intercept and every weight are finite numbers (f32).
    pub fn is_finite(&self) -> bool {
        self.intercept.is_finite() && self.weights.iter().all(|w| w.is_finite())
    }

    /// Fraud probability of one scaled row.
    #[inline]
    pub fn predict_row(&self, x: &[f32]) -> f32 {
        let z: f32 = self.intercept + x.iter().zip(&self.weights).map(|(a, b)| a * b).sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }

    /// Weights and intercept finite (the count is the model's inputs,
    /// checked against the schema by `TrainedModel`).
    pub(crate) fn check(&self) -> Result<(), Defect> {
        Rule::Finite.check(&self.weights, |i| Place::In(Vector::LogisticWeights, i))?;
        Rule::Finite.check(&[self.intercept], |_| Place::LogisticIntercept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_the_fraud_class_whatever_linfa_calls_positive() {
        // fraud when x0 is large; mostly normals, as in the real data.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let v = i as f32 / 100.0 - 1.0;
            x.extend([v, (i % 7) as f32 / 7.0]);
            y.push(u8::from(v > 0.7));
        }
        let m = Logistic::fit(
            &LogisticParams {
                l2: 0.1,
                max_iterations: 200,
            },
            &x,
            &y,
            2,
        )
        .unwrap();
        assert!(m.weights[0] > 0.0, "{m:?}");
        assert!(m.predict_row(&[0.99, 0.0]) > 0.9);
        assert!(m.predict_row(&[-0.99, 0.0]) < 0.1);
        m.check().unwrap();
    }

    #[test]
    fn a_failed_fit_names_the_model_and_keeps_the_cause() {
        let p = LogisticParams {
            l2: 0.1,
            max_iterations: 10,
        };
        let e = Logistic::fit(&p, &[1.0, 2.0, 3.0], &[0, 1], 2).unwrap_err();
        assert!(
            matches!(&e, ModelError::Fit { model: ModelKind::Logistic, source } if source.is::<ndarray::ShapeError>()),
            "{e}"
        );
        assert!(e.to_string().starts_with("logistic: fit failed: "), "{e}");
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let e = Logistic::new(vec![0.1, f32::NAN, 0.3], 1.0).unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Invalid {
                    model: ModelKind::Logistic,
                    defect: Defect::Value {
                        at: Place::In(Vector::LogisticWeights, 1),
                        rule: Rule::Finite,
                        ..
                    }
                }
            ),
            "{e}"
        );
        // JSON holds no infinity, and serde_json refuses one for an f32
        let e = serde_json::from_str::<Logistic>(r#"{"weights":[0.1],"intercept":1e39}"#);
        assert!(e.unwrap_err().to_string().contains("out of range"));
        // a fit that diverged: training checks its output as a load does
        let a = crate::model::tests::sample_artifact();
        let m = a.model(Some(ModelKind::Logistic)).unwrap();
        let diverged = Logistic {
            weights: vec![f32::NAN; 29],
            intercept: 0.0,
        };
        let e = crate::model::TrainedModel::new(
            0.5,
            m.scaler().cloned(),
            crate::model::Estimator::Logistic(diverged),
            m.provenance().clone(),
            m.schema_arc().clone(),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Invalid {
                    model: ModelKind::Logistic,
                    defect: Defect::Value {
                        rule: Rule::Finite,
                        ..
                    }
                }
            ),
            "{e}"
        );
    }
}

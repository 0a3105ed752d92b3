//! Standardization fitted on training data: `(x - mean) / std` per feature,
//! stored in the model so serving applies exactly what training saw.

use super::{check_len, Defect, Place, Rule, Vector};
use serde::{Deserialize, Serialize};

/// Per-feature mean and standard deviation (population): as many of each,
/// means finite, deviations finite and above 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScalerRepr")]
pub struct Scaler {
    mean: Vec<f32>,
    std: Vec<f32>,
}

/// Stored form of [`Scaler`].
#[derive(Deserialize)]
pub(crate) struct ScalerRepr {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl TryFrom<ScalerRepr> for Scaler {
    type Error = Defect;
    fn try_from(r: ScalerRepr) -> Result<Scaler, Defect> {
        let s = Scaler {
            mean: r.mean,
            std: r.std,
        };
        s.check().map(|()| s)
    }
}

impl Scaler {
    /// Fits on a row-major `n x d` matrix, skipping missing values (`NaN`).
    /// Constant features (and features never present) get std 1.
    pub fn fit(features: &[f32], d: usize) -> Scaler {
        let mut n = vec![0u64; d];
        let mut mean = vec![0f64; d];
        let mut m2 = vec![0f64; d];
        for row in features.chunks_exact(d) {
            for (j, &v) in row.iter().enumerate() {
                if !v.is_nan() {
                    mean[j] += f64::from(v);
                    n[j] += 1;
                }
            }
        }
        for (m, &n) in mean.iter_mut().zip(&n) {
            *m /= n.max(1) as f64;
        }
        for row in features.chunks_exact(d) {
            for (j, &v) in row.iter().enumerate() {
                if !v.is_nan() {
                    let c = f64::from(v) - mean[j];
                    m2[j] += c * c;
                }
            }
        }
        let std = m2
            .iter()
            .zip(&n)
            .map(|(&s, &n)| {
                let sd = (s / n.max(1) as f64).sqrt();
                if sd > 1e-12 {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Scaler {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// As many means as deviations, means finite, deviations finite and
    /// above 0 (data with infinities fits a scaler that is not).
    pub(crate) fn check(&self) -> Result<(), Defect> {
        check_len(Vector::ScalerStd, self.std.len(), self.mean.len())?;
        Rule::Finite.check(&self.mean, |i| Place::In(Vector::ScalerMean, i))?;
        Rule::Positive.check(&self.std, |i| Place::In(Vector::ScalerStd, i))
    }

    /// Per-feature means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-feature standard deviations.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// True for a scaler over no features.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Scales one row into `out`; a missing value (`NaN`) becomes 0, the
    /// training mean: the imputation the DNN and logistic regression use.
    #[inline]
    pub fn transform_row(&self, row: &[f32], out: &mut [f32]) {
        for (((o, &v), &m), &s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.std) {
            let z = (v - m) / s;
            *o = if z.is_nan() { 0.0 } else { z };
        }
    }

    /// Scales a row-major matrix into a new buffer.
    pub fn transform(&self, features: &[f32]) -> Vec<f32> {
        let d = self.len();
        let mut out = vec![0f32; features.len()];
        for (row, o) in features.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.transform_row(row, o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardizes_to_zero_mean_unit_std() {
        let x = [1.0f32, 5.0, 3.0, 5.0, 5.0, 5.0];
        let s = Scaler::fit(&x, 2);
        assert_eq!(s.mean, vec![3.0, 5.0]);
        assert!((s.std[0] - (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(s.std[1], 1.0, "constant feature keeps unit scale");
        let t = s.transform(&x);
        assert!((t[0] + t[2] + t[4]).abs() < 1e-6);
        assert_eq!(t[1], 0.0);
    }

    #[test]
    fn missing_values_are_skipped_at_fit_and_imputed_at_the_mean() {
        let x = [1.0f32, f32::NAN, 3.0, 2.0, f32::NAN, 4.0];
        let s = Scaler::fit(&x, 2);
        assert_eq!(s.mean, vec![2.0, 3.0]);
        assert_eq!(s.std, vec![1.0, 1.0]);
        let mut out = [9.0; 2];
        s.transform_row(&[f32::NAN, 4.0], &mut out);
        assert_eq!(out, [0.0, 1.0]);
    }
}

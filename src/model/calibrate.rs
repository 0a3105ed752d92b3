//! Calibration: a monotone map from a model's score to a fraud probability,
//! fitted on the validation holdout and stored with the model, so the
//! scores served (and the thresholds chosen on them) are probabilities.
//!
//! - **Platt**: `p = sigmoid(slope * logit(s) + intercept)`, fitted by
//!   Newton's method on Platt's smoothed targets.
//! - **Isotonic**: pool-adjacent-violators on the scores, stored as
//!   breakpoints `(x, y)`; a score between two breakpoints is interpolated
//!   linearly (scikit-learn's rule), below the first or above the last it
//!   takes the end's value. Scores inside one pooled block tie, which can
//!   cost ranking quality (AUPRC); [`choose`] judges that on held-out rows.
//! - **None**: the score as it is.
//!
//! [`choose`] picks by log loss without fitting and judging on the same
//! rows: 2-fold cross-fitting within the validation rows (stratified,
//! seeded), then the winner is refitted on all of them. Loading checks the
//! stored map like every other model part: finite, monotone, in `[0, 1]`.

use super::{check_len, Defect, Place, Rule, Vector};
use serde::{Deserialize, Serialize};

/// A calibration method, as the `calibration` hyperparameter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    None,
    Platt,
    Isotonic,
}

impl Method {
    /// Every method, in the order `auto` tries them (a tie keeps the first).
    pub const ALL: [Method; 3] = [Method::None, Method::Platt, Method::Isotonic];
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::None => "none",
            Method::Platt => "platt",
            Method::Isotonic => "isotonic",
        })
    }
}

/// A fitted map from score to probability. Built by [`Calibrator::fit`] or
/// from its stored form, checked either way.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Calibrator {
    #[default]
    None,
    Platt {
        slope: f64,
        intercept: f64,
    },
    /// Breakpoints: `x` strictly increasing scores, `y` non-decreasing
    /// probabilities, as many of each.
    Isotonic {
        x: Vec<f32>,
        y: Vec<f64>,
    },
}

/// Stored form of [`Calibrator`].
#[derive(Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub(crate) enum CalibratorRepr {
    None,
    Platt { slope: f64, intercept: f64 },
    Isotonic { x: Vec<f32>, y: Vec<f64> },
}

impl TryFrom<CalibratorRepr> for Calibrator {
    type Error = Defect;
    fn try_from(r: CalibratorRepr) -> Result<Calibrator, Defect> {
        let c = match r {
            CalibratorRepr::None => Calibrator::None,
            CalibratorRepr::Platt { slope, intercept } => Calibrator::Platt { slope, intercept },
            CalibratorRepr::Isotonic { x, y } => Calibrator::Isotonic { x, y },
        };
        c.check()?;
        Ok(c)
    }
}

/// Scores are clipped to `[EPS, 1 - EPS]` before the logit (a forest leaf
/// can say exactly 0). Small: logistic regression scores many normals
/// below 1e-7, and a larger clip would tie them and cost AUC-ROC.
const EPS: f64 = 1e-15;

fn logit(s: f32) -> f64 {
    let p = f64::from(s).clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Calibrator {
    /// Its method.
    pub fn method(&self) -> Method {
        match self {
            Calibrator::None => Method::None,
            Calibrator::Platt { .. } => Method::Platt,
            Calibrator::Isotonic { .. } => Method::Isotonic,
        }
    }

    /// Whether it leaves scores as they are (not written then).
    pub fn is_none(&self) -> bool {
        matches!(self, Calibrator::None)
    }

    /// Fits `method` on scores and 0/1 labels; NaN scores are left out.
    pub fn fit(method: Method, scores: &[f32], labels: &[u8]) -> Calibrator {
        let (s, y): (Vec<f32>, Vec<u8>) = scores
            .iter()
            .zip(labels)
            .filter(|(s, _)| !s.is_nan())
            .map(|(&s, &y)| (s, y))
            .unzip();
        match method {
            Method::None => Calibrator::None,
            Method::Platt => fit_platt(&s, &y),
            Method::Isotonic => fit_isotonic(&s, &y),
        }
    }

    /// The calibrated probability of a score (NaN stays NaN).
    #[inline]
    pub fn apply(&self, s: f32) -> f32 {
        match self {
            Calibrator::None => s,
            _ if s.is_nan() => s,
            Calibrator::Platt { slope, intercept } => sigmoid(slope * logit(s) + intercept) as f32,
            Calibrator::Isotonic { x, y } => {
                // first breakpoint above s
                let i = x.partition_point(|&b| b <= s);
                if i == 0 {
                    return y[0] as f32;
                }
                if i == x.len() {
                    return y[y.len() - 1] as f32;
                }
                let (x0, x1) = (f64::from(x[i - 1]), f64::from(x[i]));
                let t = (f64::from(s) - x0) / (x1 - x0);
                (y[i - 1] + (y[i] - y[i - 1]) * t) as f32
            }
        }
    }

    /// [`Calibrator::apply`] in f64 (explanations rescale through it): the
    /// same map, without rounding to f32.
    pub fn apply_f64(&self, s: f64) -> f64 {
        match self {
            Calibrator::None => s,
            _ if s.is_nan() => s,
            Calibrator::Platt { slope, intercept } => {
                let p = s.clamp(EPS, 1.0 - EPS);
                sigmoid(slope * (p / (1.0 - p)).ln() + intercept)
            }
            Calibrator::Isotonic { x, y } => {
                let i = x.partition_point(|&b| f64::from(b) <= s);
                if i == 0 {
                    return y[0];
                }
                if i == x.len() {
                    return y[y.len() - 1];
                }
                let (x0, x1) = (f64::from(x[i - 1]), f64::from(x[i]));
                y[i - 1] + (y[i] - y[i - 1]) * (s - x0) / (x1 - x0)
            }
        }
    }

    /// Calibrates scores in place.
    pub fn apply_all(&self, scores: &mut [f32]) {
        if !self.is_none() {
            for s in scores {
                *s = self.apply(*s);
            }
        }
    }

    /// Finite, monotone (non-decreasing), probabilities in `[0, 1]`.
    pub fn check(&self) -> Result<(), Defect> {
        match self {
            Calibrator::None => Ok(()),
            Calibrator::Platt { slope, intercept } => {
                Rule::NonNegative.check(&[*slope], |_| Place::PlattSlope)?;
                Rule::Finite.check(&[*intercept], |_| Place::PlattIntercept)
            }
            Calibrator::Isotonic { x, y } => {
                if x.is_empty() {
                    return Err(Defect::NoBreakpoints);
                }
                check_len(Vector::IsotonicY, y.len(), x.len())?;
                Rule::Finite.check(x, |i| Place::In(Vector::IsotonicX, i))?;
                Rule::Probability.check(y, |i| Place::In(Vector::IsotonicY, i))?;
                if let Some(i) = x.windows(2).position(|w| w[1] <= w[0]) {
                    return Err(Defect::Unordered {
                        of: Vector::IsotonicX,
                        at: i + 1,
                    });
                }
                if let Some(i) = y.windows(2).position(|w| w[1] < w[0]) {
                    return Err(Defect::Unordered {
                        of: Vector::IsotonicY,
                        at: i + 1,
                    });
                }
                Ok(())
            }
        }
    }
}

/// Platt scaling: logistic regression of the label on `logit(score)` with
/// Platt's targets (`(P + 1) / (P + 2)` for a fraud, `1 / (N + 2)` for a
/// normal), by damped Newton steps. A slope the data would make negative
/// (a score that ranks backwards) is held at 0: the map stays monotone.
fn fit_platt(scores: &[f32], labels: &[u8]) -> Calibrator {
    let z: Vec<f64> = scores.iter().map(|&s| logit(s)).collect();
    let p = labels.iter().filter(|&&y| y == 1).count() as f64;
    let n = labels.len() as f64 - p;
    let (t_pos, t_neg) = ((p + 1.0) / (p + 2.0), 1.0 / (n + 2.0));
    let t: Vec<f64> = labels
        .iter()
        .map(|&y| if y == 1 { t_pos } else { t_neg })
        .collect();
    let loss = |a: f64, b: f64| -> f64 {
        z.iter()
            .zip(&t)
            .map(|(&z, &t)| {
                // stable: log(1 + e^f) - t f
                let f = a * z + b;
                f.max(0.0) + (-f.abs()).exp().ln_1p() - t * f
            })
            .sum()
    };
    let (mut a, mut b) = (1.0, ((1.0 + p) / (n + 1.0)).ln());
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&z, &t) in z.iter().zip(&t) {
            let q = sigmoid(a * z + b);
            let d = q - t;
            let w = (q * (1.0 - q)).max(1e-12);
            ga += d * z;
            gb += d;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let (haa, hbb) = (haa + 1e-9, hbb + 1e-9);
        let det = haa * hbb - hab * hab;
        if !(det.is_finite() && det > 0.0) {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-8 {
            let (na, nb) = (a - step * da, b - step * db);
            let l = loss(na, nb);
            if l.is_finite() && l <= current {
                improved = current - l > 1e-12 * current.abs().max(1.0);
                (a, b, current) = (na, nb, l);
                break;
            }
            step /= 2.0;
        }
        if !improved {
            break;
        }
    }
    if !(a.is_finite() && b.is_finite()) || a < 0.0 {
        // no usable slope: the base rate for every score
        return Calibrator::Platt {
            slope: 0.0,
            intercept: ((p + 1.0) / (n + 1.0)).ln(),
        };
    }
    Calibrator::Platt {
        slope: a,
        intercept: b,
    }
}

/// Isotonic regression by pool-adjacent-violators over the distinct scores
/// (tied scores start as one block, weighted by their count).
fn fit_isotonic(scores: &[f32], labels: &[u8]) -> Calibrator {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // (lowest score, highest score, frauds, rows)
    let mut blocks: Vec<(f32, f32, f64, f64)> = Vec::new();
    for i in idx {
        let (s, y) = (scores[i], f64::from(labels[i]));
        match blocks.last_mut() {
            Some(b) if b.1 == s => {
                b.2 += y;
                b.3 += 1.0;
            }
            _ => blocks.push((s, s, y, 1.0)),
        }
        // pool while the last block's rate is below the one before it
        while blocks.len() >= 2 {
            let k = blocks.len();
            let (prev, last) = (blocks[k - 2], blocks[k - 1]);
            if prev.2 / prev.3 <= last.2 / last.3 {
                break;
            }
            blocks.pop();
            blocks[k - 2] = (prev.0, last.1, prev.2 + last.2, prev.3 + last.3);
        }
    }
    if blocks.is_empty() {
        return Calibrator::None;
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for &(lo, hi, pos, n) in &blocks {
        let rate = (pos / n).clamp(0.0, 1.0);
        x.push(lo);
        y.push(rate);
        if hi > lo {
            x.push(hi);
            y.push(rate);
        }
    }
    Calibrator::Isotonic { x, y }
}

/// What [`choose`] found: the map refitted on every validation row, each
/// candidate's cross-fitted log loss, and the chosen method's cross-fitted
/// (out-of-fold) probabilities of the validation rows — honest validation
/// scores, since no row is judged by a map fitted on it.
#[derive(Debug, Clone)]
pub struct Choice {
    pub calibrator: Calibrator,
    /// `(method, log loss of its out-of-fold probabilities)`.
    pub cross_fit: Vec<(Method, f64)>,
    pub out_of_fold: Vec<f32>,
}

/// The two folds of 2-fold cross-fitting: rows of each class shuffled with
/// `seed` and dealt alternately, so both folds hold about half the frauds.
fn folds(labels: &[u8], seed: u64) -> Vec<bool> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = crate::Rng::seed_from_u64(seed);
    let mut in_b = vec![false; labels.len()];
    for class in [0u8, 1] {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        for (k, i) in rows.into_iter().enumerate() {
            in_b[i] = k % 2 == 1;
        }
    }
    in_b
}

/// Chooses among `candidates` by the log loss of 2-fold cross-fitted
/// probabilities on the validation scores (ties keep the earlier
/// candidate), then refits the winner on all of them. With one candidate
/// it is still cross-fitted, for its out-of-fold scores.
pub fn choose(candidates: &[Method], scores: &[f32], labels: &[u8], seed: u64) -> Choice {
    let in_b = folds(labels, seed);
    let part = |b: bool| -> (Vec<f32>, Vec<u8>) {
        scores
            .iter()
            .zip(labels)
            .zip(&in_b)
            .filter(|(_, &f)| f == b)
            .map(|((&s, &y), _)| (s, y))
            .unzip()
    };
    let (a, b) = (part(false), part(true));
    let mut best: Option<(Method, f64, Vec<f32>)> = None;
    let mut cross_fit = Vec::new();
    for &m in candidates {
        let (on_a, on_b) = (
            Calibrator::fit(m, &a.0, &a.1),
            Calibrator::fit(m, &b.0, &b.1),
        );
        // each row scored by the map fitted on the other fold
        let oof: Vec<f32> = scores
            .iter()
            .zip(&in_b)
            .map(|(&s, &f)| if f { on_a.apply(s) } else { on_b.apply(s) })
            .collect();
        let ll = crate::metrics::log_loss(&oof, labels);
        cross_fit.push((m, ll));
        if best.as_ref().is_none_or(|(_, l, _)| ll < *l) {
            best = Some((m, ll, oof));
        }
    }
    let (method, _, out_of_fold) =
        best.unwrap_or_else(|| (Method::None, f64::NAN, scores.to_vec()));
    Choice {
        calibrator: Calibrator::fit(method, scores, labels),
        cross_fit,
        out_of_fold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{auc_roc, log_loss};
    use rand::{Rng as _, SeedableRng};

    /// Over-confident scores: the true fraud probability is `q`, the score
    /// says `q^(1/3)`-ish (pushed towards 1).
    fn overconfident(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = crate::Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let q: f64 = rng.random::<f64>().powi(4);
                let y = u8::from(rng.random::<f64>() < q);
                (q.powf(1.0 / 3.0) as f32, y)
            })
            .unzip()
    }

    /// Scores that rank frauds lowest give no usable (positive) slope:
    /// every score then maps to the smoothed base rate, (p + 1) / (p + n + 2)
    /// with p frauds and n normal rows.
    #[test]
    fn platt_without_a_usable_slope_serves_the_base_rate() {
        let scores = [0.9f32, 0.8, 0.7, 0.3, 0.2, 0.1, 0.05, 0.02];
        // the one fraud scores lowest
        let labels = [0u8, 0, 0, 0, 0, 0, 0, 1];
        let c = Calibrator::fit(Method::Platt, &scores, &labels);
        let Calibrator::Platt { slope, intercept } = c else {
            panic!("{c:?}")
        };
        assert_eq!(slope, 0.0);
        assert!(
            (intercept - (2.0f64 / 8.0).ln()).abs() < 1e-12,
            "{intercept}"
        );
        for s in scores {
            assert!((c.apply(s) - 0.2).abs() < 1e-6, "{}", c.apply(s));
        }
    }

    #[test]
    fn isotonic_pools_violators_by_hand() {
        // scores 1..5, labels 0 1 0 1 1: blocks {1}=0, {2,3}=0.5, {4,5}=1
        let c = Calibrator::fit(
            Method::Isotonic,
            &[0.1, 0.2, 0.3, 0.4, 0.5],
            &[0, 1, 0, 1, 1],
        );
        assert_eq!(
            c,
            Calibrator::Isotonic {
                x: vec![0.1, 0.2, 0.3, 0.4, 0.5],
                y: vec![0.0, 0.5, 0.5, 1.0, 1.0]
            }
        );
        c.check().unwrap();
        assert_eq!(c.apply(0.05), 0.0);
        assert_eq!(c.apply(0.25), 0.5);
        assert!((c.apply(0.35) - 0.75).abs() < 1e-6);
        assert_eq!(c.apply(0.9), 1.0);
        assert!(c.apply(f32::NAN).is_nan());
        // tied scores start pooled
        let t = Calibrator::fit(Method::Isotonic, &[0.5, 0.5, 0.5, 0.9], &[1, 0, 0, 1]);
        assert_eq!(
            t,
            Calibrator::Isotonic {
                x: vec![0.5, 0.9],
                y: vec![1.0 / 3.0, 1.0]
            }
        );
    }

    #[test]
    fn platt_recovers_a_known_sigmoid_and_stays_monotone() {
        // labels drawn with P(fraud) = sigmoid(2 logit(s) - 1)
        let mut rng = crate::Rng::seed_from_u64(3);
        let (s, y): (Vec<f32>, Vec<u8>) = (0..40_000)
            .map(|_| {
                let s = rng.random::<f64>().clamp(0.01, 0.99);
                let p = sigmoid(2.0 * ((s / (1.0 - s)).ln()) - 1.0);
                (s as f32, u8::from(rng.random::<f64>() < p))
            })
            .unzip();
        let Calibrator::Platt { slope, intercept } = Calibrator::fit(Method::Platt, &s, &y) else {
            panic!("not platt")
        };
        assert!((slope - 2.0).abs() < 0.1, "{slope}");
        assert!((intercept + 1.0).abs() < 0.1, "{intercept}");
        // scores that rank backwards: slope held at 0, never negative
        let c = Calibrator::fit(Method::Platt, &[0.9, 0.8, 0.2, 0.1], &[0, 0, 1, 1]);
        c.check().unwrap();
        assert!(c.apply(0.9) <= c.apply(0.95) + 1e-7 && c.apply(0.1) <= c.apply(0.9) + 1e-7);
    }

    #[test]
    fn calibration_lowers_log_loss_of_overconfident_scores_out_of_fold() {
        let (s, y) = overconfident(20_000, 1);
        let raw = log_loss(&s, &y);
        let c = choose(&Method::ALL, &s, &y, 7);
        assert_eq!(c.cross_fit.len(), 3);
        assert_ne!(c.calibrator.method(), Method::None);
        let chosen = c
            .cross_fit
            .iter()
            .find(|(m, _)| *m == c.calibrator.method())
            .unwrap()
            .1;
        assert!(chosen < raw * 0.9, "{chosen} vs {raw}");
        assert!((log_loss(&c.out_of_fold, &y) - chosen).abs() < 1e-12);
        // a monotone map keeps the ranking, up to isotonic's ties
        let mut cal = s.clone();
        c.calibrator.apply_all(&mut cal);
        assert!(auc_roc(&cal, &y) > auc_roc(&s, &y) - 0.01);
        // the same seed, the same choice
        assert_eq!(choose(&Method::ALL, &s, &y, 7).calibrator, c.calibrator);
        // one candidate: still cross-fitted
        let none = choose(&[Method::None], &s, &y, 7);
        assert_eq!(none.calibrator, Calibrator::None);
        assert_eq!(none.out_of_fold, s);
    }

    #[test]
    fn stored_maps_are_checked() {
        let bad = |c: CalibratorRepr| Calibrator::try_from(c).unwrap_err();
        assert_eq!(
            bad(CalibratorRepr::Platt {
                slope: -1.0,
                intercept: 0.0
            }),
            Defect::Value {
                at: Place::PlattSlope,
                value: -1.0,
                rule: Rule::NonNegative
            }
        );
        assert!(matches!(
            bad(CalibratorRepr::Platt {
                slope: 1.0,
                intercept: f64::NAN
            }),
            Defect::Value {
                at: Place::PlattIntercept,
                ..
            }
        ));
        let iso = |x: Vec<f32>, y: Vec<f64>| bad(CalibratorRepr::Isotonic { x, y });
        assert_eq!(iso(vec![], vec![]), Defect::NoBreakpoints);
        assert_eq!(
            iso(vec![0.1, 0.2], vec![0.5]),
            Defect::Length {
                of: Vector::IsotonicY,
                found: 1,
                expected: 2
            }
        );
        assert_eq!(
            iso(vec![0.2, 0.1], vec![0.1, 0.2]),
            Defect::Unordered {
                of: Vector::IsotonicX,
                at: 1
            }
        );
        assert_eq!(
            iso(vec![0.1, 0.2], vec![0.3, 0.2]),
            Defect::Unordered {
                of: Vector::IsotonicY,
                at: 1
            }
        );
        assert!(matches!(
            iso(vec![0.1, 0.2], vec![0.3, 1.5]),
            Defect::Value {
                at: Place::In(Vector::IsotonicY, 1),
                ..
            }
        ));
        assert!(matches!(
            iso(vec![0.1, f32::INFINITY], vec![0.3, 0.5]),
            Defect::Value {
                at: Place::In(Vector::IsotonicX, 1),
                ..
            }
        ));
        let ok = Calibrator::try_from(CalibratorRepr::Isotonic {
            x: vec![0.1, 0.2],
            y: vec![0.3, 0.3],
        });
        assert!(ok.is_ok());
    }
}

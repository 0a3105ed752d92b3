//! Logistic regression on scaled features, fitted by a compact L-BFGS written
//! for this one objective, and stored as plain weights so serving needs no
//! solver.
//!
//! Why hand-built and not linfa-logistic (which this module used before): the
//! crate fitted 182,276 standardized rows in 7.5 s where scikit-learn's
//! `LogisticRegression` (L-BFGS) takes 0.48 s, and after its 100 iterations it
//! was still far from the optimum (test AUC-ROC 0.931 against 0.974 at the
//! optimum). It copies the rows to f64, computes loss and gradient in separate
//! passes with temporaries, and its L-BFGS minimises the *summed* loss, so its
//! gradient tolerance never triggers and every fit runs all iterations. Here
//! the loss and its gradient come from one fused, row-parallel pass over the
//! f32 rows (f64 arithmetic), the objective is divided by the total row weight
//! (tolerances mean the same for any row count), the intercept starts at the
//! log-odds of the fraud rate, and a Wolfe line search lets almost every
//! iteration take the unit step. Measured by `scripts/bench-train.sh` on the
//! same 182,276 rows in one run (2-core machine, busy: load ~7): this fit
//! 1.28 s (60 iterations, to the optimum) against scikit-learn's 1.96 s
//! (18 iterations, stopped at its looser tolerance), 1.5x faster; test AUC-ROC
//! / AUPRC 0.974 / 0.717 against 0.976 / 0.716. linfa-logistic took 11.6 s
//! for the same fit earlier that day on a lighter load (~0.5), and stopped at
//! test AUC-ROC 0.931: the hand-built fit is at least 9x faster.
//!
//! The objective is scikit-learn's with `C = 1 / l2`:
//! `Σ c_i · logloss(y_i, b + w·x_i) + l2/2 · |w|²`, where `c_i` is the class
//! weight of row `i` (`pos_weight` for a fraud, 1 otherwise) and the
//! intercept `b` is not penalised.

use super::{Defect, ModelError, ModelKind, Place, Rule, Vector};
use rayon::prelude::*;
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

/// Checked logistic-regression settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticParams {
    /// L2 penalty on the weights, against the summed (not averaged) loss:
    /// scikit-learn's `1 / C`.
    pub l2: f64,
    /// L-BFGS iterations at most; reaching it is not an error.
    pub max_iterations: u64,
    /// Loss weight of a fraud row (a normal row weighs 1); > 0.
    pub pos_weight: f64,
}

/// Input the fit refuses, before any arithmetic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("{values} feature values do not make {rows} rows of {width} columns")]
    Shape {
        values: usize,
        rows: usize,
        width: usize,
    },
    #[error("{rows} rows with {frauds} frauds: fitting needs rows of both classes")]
    OneClass { rows: usize, frauds: usize },
    #[error("row {row}, column {column}: {value} is not a finite number")]
    NonFinite {
        row: usize,
        column: usize,
        value: f32,
    },
    #[error("row {row}: label {label} is not 0 or 1")]
    Label { row: usize, label: u8 },
    #[error("class weight {0} of a fraud row is not a number > 0")]
    PosWeight(f64),
    #[error("l2 penalty {0} is not a number >= 0")]
    Penalty(f64),
}

fn fit_failed(e: FitError) -> ModelError {
    ModelError::Fit {
        model: ModelKind::Logistic,
        source: Box::new(e),
    }
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

    /// Fits on scaled row-major features (`d` columns) and 0/1 labels;
    /// `stop` is polled once an iteration.
    pub fn fit(
        p: &LogisticParams,
        x: &[f32],
        y: &[u8],
        d: usize,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Logistic, ModelError> {
        let s = solve(p, x, y, d, stop)?;
        tracing::info!(
            "logistic: {} L-BFGS iterations, largest gradient component {:.1e} (tolerance {GRADIENT_TOLERANCE:.0e})",
            s.iterations,
            s.gradient_max
        );
        let m = Logistic {
            weights: s.theta[..d].iter().map(|&w| w as f32).collect(),
            intercept: s.theta[d] as f32,
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

/// Pairs of (step, gradient change) L-BFGS remembers.
const MEMORY: usize = 10;
/// Converged when no component of the gradient of the objective divided by
/// the total row weight exceeds this (scikit-learn stops at 1e-4, which on
/// the real data leaves test AUC-ROC 0.002 away from the optimum's).
const GRADIENT_TOLERANCE: f64 = 1e-7;
/// Rows a parallel task sums; fixed, so the sums (and the fit) are the same
/// bits whatever the thread count.
const CHUNK_ROWS: usize = 2048;
/// Trial steps one line search may evaluate.
const MAX_TRIALS: usize = 30;
/// Sufficient decrease and curvature constants of the Wolfe conditions.
const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// The solver's answer: `theta` is the weights then the intercept.
#[derive(Debug, Clone)]
struct Solution {
    theta: Vec<f64>,
    iterations: u64,
    /// Largest gradient component of the averaged objective at `theta`.
    gradient_max: f64,
}

/// The data and weights of one fit.
struct Problem<'a> {
    x: &'a [f32],
    y: &'a [u8],
    d: usize,
    pos_weight: f64,
    l2: f64,
    /// 1 / the total row weight.
    scale: f64,
}

/// A point, the objective there and its gradient.
#[derive(Clone)]
struct Point {
    theta: Vec<f64>,
    f: f64,
    g: Vec<f64>,
}

impl Problem<'_> {
    /// The averaged objective and its gradient at `theta`, in one pass.
    fn eval(&self, theta: Vec<f64>) -> Point {
        let d = self.d;
        let (w, b) = (&theta[..d], theta[d]);
        let partial: Vec<(f64, Vec<f64>)> = self
            .x
            .par_chunks(CHUNK_ROWS * d)
            .zip(self.y.par_chunks(CHUNK_ROWS))
            .map(|(xs, ys)| {
                let mut f = 0.0;
                let mut g = vec![0.0; d + 1];
                for (row, &label) in xs.chunks_exact(d).zip(ys) {
                    let z = b + dot(row, w);
                    // e = exp(-|z|): sigmoid and softplus without overflow
                    let e = (-z.abs()).exp();
                    let sigmoid = if z >= 0.0 {
                        1.0 / (1.0 + e)
                    } else {
                        e / (1.0 + e)
                    };
                    let softplus = z.max(0.0) + e.ln_1p();
                    let (c, target) = if label == 1 {
                        (self.pos_weight, 1.0)
                    } else {
                        (1.0, 0.0)
                    };
                    f += c * (softplus - target * z);
                    let r = c * (sigmoid - target);
                    for (gj, &xj) in g[..d].iter_mut().zip(row) {
                        *gj += r * f64::from(xj);
                    }
                    g[d] += r;
                }
                (f, g)
            })
            .collect();
        let mut f = 0.5 * self.l2 * w.iter().map(|v| v * v).sum::<f64>();
        let mut g: Vec<f64> = w.iter().map(|v| self.l2 * v).chain([0.0]).collect();
        for (pf, pg) in partial {
            f += pf;
            for (a, b) in g.iter_mut().zip(pg) {
                *a += b;
            }
        }
        g.iter_mut().for_each(|v| *v *= self.scale);
        Point {
            theta,
            f: f * self.scale,
            g,
        }
    }
}

/// `row · w` with f64 products, four running sums.
#[inline]
fn dot(row: &[f32], w: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (rc, wc) = (row.chunks_exact(4), w.chunks_exact(4));
    let (rr, wr) = (rc.remainder(), wc.remainder());
    for (r, w) in rc.zip(wc) {
        for k in 0..4 {
            acc[k] += f64::from(r[k]) * w[k];
        }
    }
    let tail: f64 = rr.iter().zip(wr).map(|(&a, &b)| f64::from(a) * b).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn dot64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Checks the input, then minimises the objective by L-BFGS from `w = 0` and
/// the intercept at the weighted log-odds of fraud.
fn solve(
    p: &LogisticParams,
    x: &[f32],
    y: &[u8],
    d: usize,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Solution, ModelError> {
    let n = y.len();
    if d == 0 || x.len() != n * d {
        return Err(fit_failed(FitError::Shape {
            values: x.len(),
            rows: n,
            width: d,
        }));
    }
    if !(p.pos_weight.is_finite() && p.pos_weight > 0.0) {
        return Err(fit_failed(FitError::PosWeight(p.pos_weight)));
    }
    if !(p.l2.is_finite() && p.l2 >= 0.0) {
        return Err(fit_failed(FitError::Penalty(p.l2)));
    }
    if let Some((row, &label)) = y.iter().enumerate().find(|(_, &l)| l > 1) {
        return Err(fit_failed(FitError::Label { row, label }));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(fit_failed(FitError::NonFinite {
            row: i / d,
            column: i % d,
            value: x[i],
        }));
    }
    let frauds = y.iter().filter(|&&l| l == 1).count();
    if frauds == 0 || frauds == n {
        return Err(fit_failed(FitError::OneClass { rows: n, frauds }));
    }
    let fraud_weight = p.pos_weight * frauds as f64;
    let normal_weight = (n - frauds) as f64;
    let problem = Problem {
        x,
        y,
        d,
        pos_weight: p.pos_weight,
        l2: p.l2,
        scale: 1.0 / (fraud_weight + normal_weight),
    };
    let mut theta = vec![0.0; d + 1];
    theta[d] = (fraud_weight / normal_weight).ln();
    let mut at = problem.eval(theta);
    // (s, y, 1 / s·y), oldest first
    let mut memory: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::with_capacity(MEMORY);
    let mut iterations = 0;
    while iterations < p.max_iterations && max_abs(&at.g) > GRADIENT_TOLERANCE {
        if stop() {
            return Err(ModelError::Interrupted {
                done: iterations as usize,
                total: p.max_iterations as usize,
                unit: "iterations",
            });
        }
        let mut dir = two_loop(&at.g, &memory);
        if dot64(&dir, &at.g) >= 0.0 {
            // not a descent direction (rounding): start the memory afresh
            memory.clear();
            dir = at.g.iter().map(|v| -v).collect();
        }
        // the unit step once curvature is known; before, a step of length 1
        let first = if memory.is_empty() {
            1.0 / dot64(&dir, &dir).sqrt()
        } else {
            1.0
        };
        let Some(next) = line_search(&problem, &at, &dir, first) else {
            // no decrease left at this precision: converged as far as f64 goes
            break;
        };
        let s: Vec<f64> = next
            .theta
            .iter()
            .zip(&at.theta)
            .map(|(a, b)| a - b)
            .collect();
        let yv: Vec<f64> = next.g.iter().zip(&at.g).map(|(a, b)| a - b).collect();
        let sy = dot64(&s, &yv);
        if sy > f64::EPSILON * dot64(&yv, &yv) {
            if memory.len() == MEMORY {
                memory.pop_front();
            }
            memory.push_back((s, yv, 1.0 / sy));
        }
        at = next;
        iterations += 1;
    }
    Ok(Solution {
        gradient_max: max_abs(&at.g),
        theta: at.theta,
        iterations,
    })
}

/// The L-BFGS direction `-H g` by the two-loop recursion, the initial
/// inverse Hessian scaled by the newest pair.
fn two_loop(g: &[f64], memory: &std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)>) -> Vec<f64> {
    let mut q: Vec<f64> = g.iter().map(|v| -v).collect();
    let mut alpha = vec![0.0; memory.len()];
    for (i, (s, y, rho)) in memory.iter().enumerate().rev() {
        alpha[i] = rho * dot64(s, &q);
        q.iter_mut().zip(y).for_each(|(q, y)| *q -= alpha[i] * y);
    }
    if let Some((s, y, _)) = memory.back() {
        let gamma = dot64(s, y) / dot64(y, y);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for (i, (s, y, rho)) in memory.iter().enumerate() {
        let beta = rho * dot64(y, &q);
        q.iter_mut()
            .zip(s)
            .for_each(|(q, s)| *q += (alpha[i] - beta) * s);
    }
    q
}

/// A step along `dir` meeting the strong Wolfe conditions (Nocedal & Wright,
/// algorithms 3.5 and 3.6, cubic interpolation with bisection as the
/// safeguard); failing that, the lowest point found if it decreased the
/// objective; `None` when nothing did.
fn line_search(problem: &Problem, at: &Point, dir: &[f64], first: f64) -> Option<Point> {
    let (f0, d0) = (at.f, dot64(&at.g, dir));
    let point = |a: f64| -> (Point, f64) {
        let theta = at.theta.iter().zip(dir).map(|(t, d)| t + a * d).collect();
        let pt = problem.eval(theta);
        let slope = dot64(&pt.g, dir);
        (pt, slope)
    };
    let armijo = |a: f64, f: f64| f.is_finite() && f <= f0 + C1 * a * d0;
    let curvature = |slope: f64| slope.abs() <= -C2 * d0;
    let mut best: Option<Point> = None;
    let keep = |best: &mut Option<Point>, pt: &Point| {
        if pt.f < f0 && best.as_ref().is_none_or(|b| pt.f < b.f) {
            *best = Some(pt.clone());
        }
    };
    // bracketing phase: (a, f, slope) of the previous trial
    let (mut lo, mut hi);
    let mut prev = (0.0, f0, d0);
    let mut a = first;
    let mut trials = 0;
    loop {
        if trials == MAX_TRIALS {
            return best;
        }
        trials += 1;
        let (pt, slope) = point(a);
        if !armijo(a, pt.f) || (trials > 1 && pt.f >= prev.1) {
            keep(&mut best, &pt);
            (lo, hi) = (prev, (a, pt.f, slope));
            break;
        }
        if curvature(slope) {
            return Some(pt);
        }
        keep(&mut best, &pt);
        if slope >= 0.0 {
            (lo, hi) = ((a, pt.f, slope), prev);
            break;
        }
        prev = (a, pt.f, slope);
        a *= 2.0;
    }
    // zoom phase: lo satisfies Armijo and has the lowest objective so far
    while trials < MAX_TRIALS {
        trials += 1;
        let a = interpolate(lo, hi);
        let (pt, slope) = point(a);
        if !armijo(a, pt.f) || pt.f >= lo.1 {
            keep(&mut best, &pt);
            hi = (a, pt.f, slope);
        } else {
            if curvature(slope) {
                return Some(pt);
            }
            keep(&mut best, &pt);
            if slope * (hi.0 - lo.0) >= 0.0 {
                hi = lo;
            }
            lo = (a, pt.f, slope);
        }
        if (hi.0 - lo.0).abs() <= f64::EPSILON * lo.0.abs().max(1.0) {
            break;
        }
    }
    best
}

/// Minimiser of the cubic through two (step, value, slope) triples, kept
/// within the middle 80 % of the interval; the midpoint when the cubic has
/// none or a value is not finite.
fn interpolate(lo: (f64, f64, f64), hi: (f64, f64, f64)) -> f64 {
    let ((a, fa, ga), (b, fb, gb)) = (lo, hi);
    let mid = 0.5 * (a + b);
    if !(fa.is_finite() && fb.is_finite() && ga.is_finite() && gb.is_finite()) {
        return mid;
    }
    let d1 = ga + gb - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - ga * gb;
    if disc < 0.0 {
        return mid;
    }
    let d2 = (b - a).signum() * disc.sqrt();
    let t = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2.0 * d2);
    let (l, h) = (a.min(b), a.max(b));
    let margin = 0.1 * (h - l);
    if t.is_finite() && t >= l + margin && t <= h - margin {
        t
    } else {
        mid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The line search's cubic step is exact on a cubic or a quadratic:
    /// f(x) = (x - 0.3)² on [0, 1] has its minimum at 0.3, from either end;
    /// a minimum outside the middle 80 % gives the midpoint.
    #[test]
    fn interpolation_finds_the_minimum_of_a_quadratic() {
        let f = |x: f64, m: f64| (x, (x - m).powi(2), 2.0 * (x - m));
        assert!((interpolate(f(0.0, 0.3), f(1.0, 0.3)) - 0.3).abs() < 1e-12);
        assert!((interpolate(f(1.0, 0.3), f(0.0, 0.3)) - 0.3).abs() < 1e-12);
        assert!((interpolate(f(0.0, 0.6), f(2.0, 0.6)) - 0.6).abs() < 1e-12);
        assert_eq!(interpolate(f(0.0, 0.05), f(1.0, 0.05)), 0.5);
        assert_eq!(interpolate((0.0, f64::NAN, 0.0), f(1.0, 0.3)), 0.5);
    }

    fn params(l2: f64, pos_weight: f64) -> LogisticParams {
        LogisticParams {
            l2,
            max_iterations: 1000,
            pos_weight,
        }
    }

    fn never() -> bool {
        false
    }

    /// `n` rows of `d` standard-normal-ish features; fraud with probability
    /// sigmoid(-3 + x0 - 0.5 x1), seeded.
    fn sample(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let row: Vec<f32> = (0..d).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let z = -3.0 + f64::from(row[0]) - 0.5 * f64::from(row[1]);
            y.push(u8::from(rng.random::<f64>() < 1.0 / (1.0 + (-z).exp())));
            x.extend(row);
        }
        (x, y)
    }

    /// The gradient of the summed objective, computed naively (no chunks,
    /// no parallelism, no fused pass), independent of the solver's.
    fn naive_gradient(
        p: &LogisticParams,
        x: &[f32],
        y: &[u8],
        d: usize,
        theta: &[f64],
    ) -> Vec<f64> {
        let mut g: Vec<f64> = theta[..d].iter().map(|w| p.l2 * w).chain([0.0]).collect();
        for (row, &label) in x.chunks_exact(d).zip(y) {
            let z = theta[d]
                + row
                    .iter()
                    .zip(theta)
                    .map(|(&a, b)| f64::from(a) * b)
                    .sum::<f64>();
            let c = if label == 1 { p.pos_weight } else { 1.0 };
            let r = c * (1.0 / (1.0 + (-z).exp()) - f64::from(label));
            for j in 0..d {
                g[j] += r * f64::from(row[j]);
            }
            g[d] += r;
        }
        g
    }

    #[test]
    fn reaches_the_optimum_the_gradient_is_zero_there() {
        let (x, y) = sample(5000, 6, 1);
        for l2 in [0.0, 1.0, 50.0] {
            let p = params(l2, 1.0);
            let s = solve(&p, &x, &y, 6, &never).unwrap();
            assert!(s.gradient_max <= GRADIENT_TOLERANCE, "{s:?}");
            assert!(s.iterations < p.max_iterations, "{s:?}");
            let g = naive_gradient(&p, &x, &y, 6, &s.theta);
            // summed over 5000 rows: 1e-7 of the mean is 5e-4 of the sum
            assert!(max_abs(&g) < 1e-3, "l2 {l2}: gradient {g:?}");
            // the signal: x0 raises fraud, x1 lowers it, x2.. are noise
            let w = &s.theta;
            assert!(w[0] > 0.5 && w[1] < -0.2, "{w:?}");
            assert!(w[2..6].iter().all(|v| v.abs() < 0.2), "{w:?}");
        }
    }

    #[test]
    fn one_binary_feature_fits_the_closed_form_log_odds() {
        // x = 0: 40 rows, 4 frauds; x = 1: 60 rows, 30 frauds. Unpenalised,
        // the optimum is b = ln(4/36), b + w = ln(30/30); a fraud weighing
        // 3 multiplies each fraud count by 3.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (v, rows, frauds) in [(0.0f32, 40, 4), (1.0, 60, 30)] {
            for i in 0..rows {
                x.push(v);
                y.push(u8::from(i < frauds));
            }
        }
        for c in [1.0, 3.0] {
            let s = solve(&params(0.0, c), &x, &y, 1, &never).unwrap();
            let b = (c * 4.0 / 36.0f64).ln();
            let w = (c * 30.0 / 30.0f64).ln() - b;
            assert!(
                (s.theta[1] - b).abs() < 1e-5,
                "class weight {c}: {s:?} want b {b}"
            );
            assert!(
                (s.theta[0] - w).abs() < 1e-5,
                "class weight {c}: {s:?} want w {w}"
            );
            // and the stored model predicts the group fraud rates
            let m = Logistic::fit(&params(0.0, c), &x, &y, 1, &never).unwrap();
            let rate1 = c * 30.0 / (c * 30.0 + 30.0);
            assert!((f64::from(m.predict_row(&[1.0])) - rate1).abs() < 1e-5);
        }
    }

    #[test]
    fn a_class_weight_is_the_same_as_repeating_the_frauds() {
        let (x, y) = sample(3000, 4, 2);
        let weighted = solve(&params(2.0, 3.0), &x, &y, 4, &never).unwrap();
        let (mut x3, mut y3) = (x.clone(), y.clone());
        for (row, &label) in x.chunks_exact(4).zip(&y) {
            if label == 1 {
                x3.extend_from_slice(&row.repeat(2));
                y3.extend([1, 1]);
            }
        }
        let repeated = solve(&params(2.0, 1.0), &x3, &y3, 4, &never).unwrap();
        for (a, b) in weighted.theta.iter().zip(&repeated.theta) {
            assert!((a - b).abs() < 1e-4, "{weighted:?} vs {repeated:?}");
        }
        // and weighting the frauds raises every fraud score
        let plain = solve(&params(2.0, 1.0), &x, &y, 4, &never).unwrap();
        assert!(
            weighted.theta[4] > plain.theta[4] + 0.5,
            "{weighted:?} vs {plain:?}"
        );
    }

    #[test]
    fn the_penalty_shrinks_the_weights_but_not_the_intercept() {
        let (x, y) = sample(2000, 3, 3);
        let norm = |l2: f64| {
            let s = solve(&params(l2, 1.0), &x, &y, 3, &never).unwrap();
            s.theta[..3].iter().map(|v| v * v).sum::<f64>().sqrt()
        };
        let (free, some, much) = (norm(0.0), norm(100.0), norm(1e7));
        assert!(free > some && some > much, "{free} {some} {much}");
        assert!(much < 1e-3, "{much}");
        // with the weights gone, the intercept is the log-odds of fraud
        let s = solve(&params(1e9, 1.0), &x, &y, 3, &never).unwrap();
        let frauds = y.iter().filter(|&&l| l == 1).count() as f64;
        let b = (frauds / (y.len() as f64 - frauds)).ln();
        assert!((s.theta[3] - b).abs() < 1e-4, "{s:?} want {b}");
    }

    #[test]
    fn the_fit_is_the_same_bits_on_one_thread_or_many() {
        let (x, y) = sample(3 * CHUNK_ROWS + 17, 5, 4);
        let p = params(1.0, 2.0);
        let many = Logistic::fit(&p, &x, &y, 5, &never).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool
            .install(|| Logistic::fit(&p, &x, &y, 5, &never))
            .unwrap();
        assert_eq!(many, one);
    }

    #[test]
    fn max_iterations_bounds_the_work_and_is_not_an_error() {
        let (x, y) = sample(2000, 4, 5);
        let p = LogisticParams {
            max_iterations: 1,
            ..params(0.0, 1.0)
        };
        let s = solve(&p, &x, &y, 4, &never).unwrap();
        assert_eq!(s.iterations, 1);
        assert!(s.gradient_max > GRADIENT_TOLERANCE, "{s:?}");
        Logistic::fit(&p, &x, &y, 4, &never)
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn a_stop_names_how_far_the_fit_got() {
        let (x, y) = sample(500, 2, 6);
        let e = Logistic::fit(&params(0.0, 1.0), &x, &y, 2, &|| true).unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Interrupted {
                    done: 0,
                    total: 1000,
                    unit: "iterations"
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn scores_the_fraud_class() {
        // fraud when x0 is large; mostly normals, as in the real data.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let v = i as f32 / 100.0 - 1.0;
            x.extend([v, (i % 7) as f32 / 7.0]);
            y.push(u8::from(v > 0.7));
        }
        let m = Logistic::fit(&params(0.1, 1.0), &x, &y, 2, &never).unwrap();
        assert!(m.weights[0] > 0.0, "{m:?}");
        assert!(m.predict_row(&[0.99, 0.0]) > 0.9);
        assert!(m.predict_row(&[-0.99, 0.0]) < 0.1);
        m.check().unwrap();
    }

    #[test]
    fn degenerate_input_is_refused_naming_what_is_wrong() {
        let p = params(0.1, 1.0);
        let refused = |x: &[f32], y: &[u8], d: usize, p: &LogisticParams| -> FitError {
            match Logistic::fit(p, x, y, d, &never).unwrap_err() {
                ModelError::Fit {
                    model: ModelKind::Logistic,
                    source,
                } => {
                    let e = source.downcast_ref::<FitError>().cloned();
                    let text = format!("logistic: fit failed: {source}");
                    let e = e.unwrap_or_else(|| panic!("not a FitError: {source}"));
                    assert_eq!(
                        ModelError::Fit {
                            model: ModelKind::Logistic,
                            source: Box::new(e.clone())
                        }
                        .to_string(),
                        text
                    );
                    e
                }
                e => panic!("{e:?}"),
            }
        };
        assert_eq!(
            refused(&[1.0, 2.0, 3.0], &[0, 1], 2, &p),
            FitError::Shape {
                values: 3,
                rows: 2,
                width: 2
            }
        );
        assert!(matches!(
            refused(&[], &[], 0, &p),
            FitError::Shape { width: 0, .. }
        ));
        assert_eq!(
            refused(&[1.0, 2.0, 3.0], &[0, 0, 0], 1, &p),
            FitError::OneClass { rows: 3, frauds: 0 }
        );
        assert_eq!(
            refused(&[1.0, 2.0], &[1, 1], 1, &p),
            FitError::OneClass { rows: 2, frauds: 2 }
        );
        assert_eq!(
            refused(&[], &[], 3, &p),
            FitError::OneClass { rows: 0, frauds: 0 }
        );
        let e = refused(&[1.0, 2.0, 3.0, f32::NAN], &[0, 1], 2, &p);
        assert!(
            matches!(e, FitError::NonFinite { row: 1, column: 1, value } if value.is_nan()),
            "{e:?}"
        );
        let e = refused(&[1.0, 2.0, 3.0, f32::INFINITY], &[0, 1], 2, &p);
        assert!(
            matches!(e, FitError::NonFinite { row: 1, column: 1, value } if value == f32::INFINITY),
            "{e:?}"
        );
        assert_eq!(
            refused(&[1.0, 2.0, 3.0], &[0, 2, 1], 1, &p),
            FitError::Label { row: 1, label: 2 }
        );
        for c in [0.0, -1.0, f64::NAN] {
            assert!(matches!(
                refused(&[1.0, 2.0], &[0, 1], 1, &params(0.0, c)),
                FitError::PosWeight(_)
            ));
        }
        for l2 in [-1.0, f64::INFINITY] {
            assert!(matches!(
                refused(&[1.0, 2.0], &[0, 1], 1, &params(l2, 1.0)),
                FitError::Penalty(_)
            ));
        }
        assert_eq!(
            FitError::OneClass { rows: 3, frauds: 0 }.to_string(),
            "3 rows with 0 frauds: fitting needs rows of both classes"
        );
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

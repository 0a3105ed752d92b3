//! Evaluation of fraud scores against labels: AUC-ROC (ties counted half),
//! AUPRC as average precision (scikit-learn's definition), average log loss,
//! and the confusion matrix with accuracy, precision, recall and F1 at a
//! threshold; plus the F1-maximising threshold used by `threshold=auto`.
//!
//! Also: the Brier score, a reliability table (binned predicted against
//! observed fraud rate), and [`bootstrap`] — stratified percentile intervals
//! of every reported figure, one sort and then O(n) per resample.
//!
//! Every function is total: NaN scores (a diverged model, which training
//! refuses before reporting) never call fraud, rank below every number (all
//! NaNs tie), and cost the most confident miss in log loss.

use serde::{Deserialize, Serialize};

/// Counts at a threshold (score >= threshold means "fraud").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub r#fn: u64,
}

/// Every figure we report for one model on one evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rows: usize,
    pub frauds: usize,
    pub threshold: f64,
    pub accuracy: f64,
    pub auc_roc: f64,
    pub auprc: f64,
    pub log_loss: f64,
    /// Mean squared error of the probability; `None` in artifacts written
    /// before it was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brier: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub confusion: Confusion,
}

impl Report {
    /// Evaluates `scores` (fraud probabilities) against 0/1 `labels`.
    pub fn new(scores: &[f32], labels: &[u8], threshold: f64) -> Report {
        let c = confusion(scores, labels, threshold);
        let (precision, recall, f1) = prf(&c);
        let n = labels.len();
        Report {
            rows: n,
            frauds: labels.iter().filter(|&&y| y == 1).count(),
            threshold,
            accuracy: if n == 0 {
                0.0
            } else {
                (c.tp + c.tn) as f64 / n as f64
            },
            auc_roc: auc_roc(scores, labels),
            auprc: average_precision(scores, labels),
            log_loss: log_loss(scores, labels),
            brier: Some(brier(scores, labels)),
            precision,
            recall,
            f1,
            confusion: c,
        }
    }
}

fn prf(c: &Confusion) -> (f64, f64, f64) {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(c.tp, c.tp + c.fp);
    let recall = ratio(c.tp, c.tp + c.r#fn);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    (precision, recall, f1)
}

/// Confusion matrix at `threshold` (a score equal to it counts as fraud).
pub fn confusion(scores: &[f32], labels: &[u8], threshold: f64) -> Confusion {
    let mut c = Confusion {
        tp: 0,
        fp: 0,
        tn: 0,
        r#fn: 0,
    };
    for (&s, &y) in scores.iter().zip(labels) {
        match (f64::from(s) >= threshold, y == 1) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.r#fn += 1,
        }
    }
    c
}

/// Ranking order of scores, highest first: NaN ranks below every number
/// and all NaNs tie (a NaN score is never "fraud", as in [`confusion`]).
fn rank_desc(a: f32, b: f32) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
        (nan_a, nan_b) => nan_a.cmp(&nan_b),
    }
}

/// One group of equal scores (see [`rank_desc`]) with its class counts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tie {
    score: f32,
    pos: u64,
    neg: u64,
}

/// Groups of equal scores in descending order. `chunk_by` consumes at least
/// one score a group, so this ends on any input, NaN included.
fn tie_groups(scores: &[f32], labels: &[u8]) -> Vec<Tie> {
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    idx.sort_unstable_by(|&a, &b| rank_desc(scores[a], scores[b]));
    idx.chunk_by(|&a, &b| rank_desc(scores[a], scores[b]).is_eq())
        .map(|run| {
            let pos = run.iter().filter(|&&i| labels[i] == 1).count() as u64;
            Tie {
                score: scores[run[0]],
                pos,
                neg: run.len() as u64 - pos,
            }
        })
        .collect()
}

/// Area under the ROC curve; tied scores count one half. NaN when a class is
/// missing.
pub fn auc_roc(scores: &[f32], labels: &[u8]) -> f64 {
    let groups = tie_groups(scores, labels);
    let (tot_p, tot_n) = groups
        .iter()
        .fold((0u64, 0u64), |(p, n), g| (p + g.pos, n + g.neg));
    if tot_p == 0 || tot_n == 0 {
        return f64::NAN;
    }
    // For each negative, count positives scored above it (+ half the ties).
    let mut area = 0.0;
    let mut pos_above = 0u64;
    for g in groups {
        area += g.neg as f64 * (pos_above as f64 + g.pos as f64 / 2.0);
        pos_above += g.pos;
    }
    area / (tot_p as f64 * tot_n as f64)
}

/// Average precision: `sum_k (R_k - R_{k-1}) * P_k` over distinct thresholds,
/// as scikit-learn's `average_precision_score`. NaN without positives.
pub fn average_precision(scores: &[f32], labels: &[u8]) -> f64 {
    let groups = tie_groups(scores, labels);
    let tot_p: u64 = groups.iter().map(|g| g.pos).sum();
    if tot_p == 0 {
        return f64::NAN;
    }
    let (mut tp, mut fp, mut ap) = (0u64, 0u64, 0.0);
    for g in groups {
        tp += g.pos;
        fp += g.neg;
        if g.pos > 0 {
            ap += (g.pos as f64 / tot_p as f64) * (tp as f64 / (tp + fp) as f64);
        }
    }
    ap
}

/// Mean binary cross-entropy, probabilities clipped to `[1e-15, 1 - 1e-15]`;
/// a NaN score costs what the most confident miss costs (`-ln 1e-15`).
pub fn log_loss(scores: &[f32], labels: &[u8]) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    let total: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| row_log_loss(s, y))
        .sum();
    total / labels.len() as f64
}

/// The threshold that maximises F1 on these scores: the midpoint between the
/// best cut's lowest fraud-called score and the next score below it, so a
/// tiny shift in scores does not flip decisions. Cuts are made between
/// numbers only (NaN never calls fraud). 0.5 when there are no positives or
/// no numbers.
pub fn best_f1_threshold(scores: &[f32], labels: &[u8]) -> f64 {
    let groups = tie_groups(scores, labels);
    let tot_p: u64 = groups.iter().map(|g| g.pos).sum();
    // NaN ranks last: the numbered groups are a prefix.
    let numbered = &groups[..groups.iter().take_while(|g| !g.score.is_nan()).count()];
    if tot_p == 0 || numbered.is_empty() {
        return 0.5;
    }
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut best_f1, mut best_at) = (-1.0, 0);
    for (k, g) in numbered.iter().enumerate() {
        tp += g.pos;
        fp += g.neg;
        let f1 = 2.0 * tp as f64 / (tp + fp + tot_p) as f64;
        if f1 > best_f1 {
            best_f1 = f1;
            best_at = k;
        }
    }
    let lowest_in = f64::from(numbered[best_at].score);
    match numbered.get(best_at + 1) {
        Some(next) => (lowest_in + f64::from(next.score)) / 2.0,
        None => lowest_in,
    }
}

/// Mean squared difference between the fraud probability and the 0/1
/// label; a NaN score costs the most a row can (1). NaN without rows.
pub fn brier(scores: &[f32], labels: &[u8]) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    let total: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| squared_error(s, y))
        .sum();
    total / labels.len() as f64
}

fn squared_error(s: f32, y: u8) -> f64 {
    let e = f64::from(s) - f64::from(y);
    if e.is_nan() {
        1.0
    } else {
        e * e
    }
}

/// The log-loss cost of one row (see [`log_loss`]).
fn row_log_loss(s: f32, y: u8) -> f64 {
    let eps = 1e-15;
    // `max` takes `eps` over NaN.
    let p = f64::from(s).clamp(eps, 1.0 - eps);
    let p_true = if y == 1 { p } else { 1.0 - p };
    -p_true.max(eps).ln()
}

/// One bin of a reliability table: the scores in `[lo, hi)` (the last bin
/// includes 1), how many rows, their mean score and their fraud rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Reliability table over `bins` equal-width bins of `[0, 1]`; empty bins
/// and NaN scores are left out.
pub fn reliability(scores: &[f32], labels: &[u8], bins: usize) -> Vec<Bin> {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
    for (&s, &y) in scores.iter().zip(labels) {
        let s = f64::from(s);
        if s.is_nan() {
            continue;
        }
        let b = ((s.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += s;
        acc[b].2 += usize::from(y == 1);
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(b, &(count, sum, pos))| Bin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count,
            mean_predicted: sum / count as f64,
            observed_rate: pos as f64 / count as f64,
        })
        .collect()
}

/// Resamples [`bootstrap`] draws for reported figures.
pub const RESAMPLES: usize = 1000;

/// A percentile interval of one figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

/// Bootstrap intervals of every figure of a [`Report`] (the confusion
/// counts aside): `level` percentile intervals from `resamples` resamples
/// drawn with `seed`, stratified by class (frauds and normals resampled
/// separately, each keeping its count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    pub level: f64,
    pub resamples: usize,
    pub seed: u64,
    pub accuracy: Interval,
    pub auc_roc: Interval,
    pub auprc: Interval,
    pub log_loss: Interval,
    pub brier: Interval,
    pub precision: Interval,
    pub recall: Interval,
    pub f1: Interval,
}

impl Intervals {
    /// `(figure name, interval)` in report order; names as in [`Report`].
    pub fn named(&self) -> [(&'static str, Interval); 8] {
        [
            ("accuracy", self.accuracy),
            ("auc_roc", self.auc_roc),
            ("auprc", self.auprc),
            ("log_loss", self.log_loss),
            ("brier", self.brier),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
        ]
    }
}

/// One row as the bootstrap sees it: its slot in the ranking (see
/// [`Ranked`]), whether it is called fraud at the threshold, and its
/// log-loss and squared-error costs.
#[derive(Debug, Clone, Copy)]
struct Row {
    slot: u32,
    called: bool,
    log_loss: f64,
    squared: f64,
}

/// The rows ranked once. Only the tie groups holding a fraud matter for
/// AUC-ROC and AUPRC (`m` of them, highest first): a fraud's slot is its
/// group `k`; a normal's slot is `2k + 1` when it ties with group `k`, else
/// `2k` where `k` groups rank above it. A resample is then a tally per
/// slot, and its figures one pass over `3m + 1` slots.
struct Ranked {
    pos: Vec<Row>,
    neg: Vec<Row>,
    groups: usize,
}

/// What a resample drew, by slot.
struct Tally {
    pos: Vec<u64>,
    neg: Vec<u64>,
    tp: u64,
    fp: u64,
    log_loss: f64,
    squared: f64,
}

impl Tally {
    fn new(r: &Ranked) -> Tally {
        Tally {
            pos: vec![0; r.groups],
            neg: vec![0; 2 * r.groups + 1],
            tp: 0,
            fp: 0,
            log_loss: 0.0,
            squared: 0.0,
        }
    }

    fn clear(&mut self) {
        self.pos.fill(0);
        self.neg.fill(0);
        (self.tp, self.fp, self.log_loss, self.squared) = (0, 0, 0.0, 0.0);
    }

    #[inline]
    fn add(&mut self, row: &Row, fraud: bool) {
        let slots = if fraud { &mut self.pos } else { &mut self.neg };
        slots[row.slot as usize] += 1;
        if row.called {
            if fraud {
                self.tp += 1;
            } else {
                self.fp += 1;
            }
        }
        self.log_loss += row.log_loss;
        self.squared += row.squared;
    }
}

impl Ranked {
    fn new(scores: &[f32], labels: &[u8], threshold: f64) -> Ranked {
        let n = scores.len().min(labels.len());
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_unstable_by(|&a, &b| rank_desc(scores[a], scores[b]));
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let mut groups = 0u32;
        for run in idx.chunk_by(|&a, &b| rank_desc(scores[a], scores[b]).is_eq()) {
            let has_fraud = run.iter().any(|&i| labels[i] == 1);
            for &i in run {
                let (fraud, s) = (labels[i] == 1, scores[i]);
                let slot = match (fraud, has_fraud) {
                    (true, _) => groups,
                    (false, true) => 2 * groups + 1,
                    (false, false) => 2 * groups,
                };
                let row = Row {
                    slot,
                    called: f64::from(s) >= threshold,
                    log_loss: row_log_loss(s, labels[i]),
                    squared: squared_error(s, labels[i]),
                };
                if fraud {
                    pos.push(row);
                } else {
                    neg.push(row);
                }
            }
            groups += u32::from(has_fraud);
        }
        Ranked {
            pos,
            neg,
            groups: groups as usize,
        }
    }

    /// Every figure of a tally, in [`Intervals::named`] order.
    fn figures(&self, t: &Tally) -> [f64; 8] {
        let tot_p: u64 = t.pos.iter().sum();
        let tot_n: u64 = t.neg.iter().sum();
        let (mut neg_above, mut tp_rank) = (0u64, 0u64);
        let (mut area, mut ap) = (0.0, 0.0);
        for k in 0..self.groups {
            neg_above += t.neg[2 * k];
            let (gp, tied) = (t.pos[k], t.neg[2 * k + 1]);
            if gp > 0 {
                tp_rank += gp;
                let below = tot_n - neg_above - tied;
                area += gp as f64 * (below as f64 + tied as f64 / 2.0);
                ap += (gp as f64 / tot_p as f64)
                    * (tp_rank as f64 / (tp_rank + neg_above + tied) as f64);
            }
            neg_above += tied;
        }
        let c = Confusion {
            tp: t.tp,
            fp: t.fp,
            tn: tot_n - t.fp,
            r#fn: tot_p - t.tp,
        };
        let n = (tot_p + tot_n) as f64;
        let (precision, recall, f1) = prf(&c);
        [
            (c.tp + c.tn) as f64 / n,
            area / (tot_p as f64 * tot_n as f64),
            ap,
            t.log_loss / n,
            t.squared / n,
            precision,
            recall,
            f1,
        ]
    }
}

/// The `q` quantile of sorted values, interpolated linearly (numpy's
/// default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (i, frac) = (at.floor() as usize, at.fract());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + (next - sorted[i]) * frac,
        None => sorted[i],
    }
}

/// 95 % percentile bootstrap intervals of every figure [`Report::new`]
/// gives at `threshold`, from `resamples` resamples stratified by class.
/// Resample `r` draws from its own generator seeded from `seed` and `r`, so
/// the result does not depend on how rayon splits the work. `None` when a
/// class is missing or `resamples` is 0.
pub fn bootstrap(
    scores: &[f32],
    labels: &[u8],
    threshold: f64,
    resamples: usize,
    seed: u64,
) -> Option<Intervals> {
    use rand::{Rng as _, SeedableRng};
    use rayon::prelude::*;
    let ranked = Ranked::new(scores, labels, threshold);
    if ranked.pos.is_empty() || ranked.neg.is_empty() || resamples == 0 {
        return None;
    }
    let draws: Vec<[f64; 8]> = (0..resamples)
        .into_par_iter()
        .map_init(
            || Tally::new(&ranked),
            |tally, r| {
                tally.clear();
                let mut rng = crate::Rng::seed_from_u64(
                    seed ^ (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                for (class, fraud) in [(&ranked.pos, true), (&ranked.neg, false)] {
                    for _ in 0..class.len() {
                        tally.add(&class[rng.random_range(0..class.len())], fraud);
                    }
                }
                ranked.figures(tally)
            },
        )
        .collect();
    let level = 0.95;
    let interval = |j: usize| {
        let mut v: Vec<f64> = draws.iter().map(|d| d[j]).collect();
        v.sort_unstable_by(f64::total_cmp);
        Interval {
            lo: quantile(&v, (1.0 - level) / 2.0),
            hi: quantile(&v, 1.0 - (1.0 - level) / 2.0),
        }
    };
    Some(Intervals {
        level,
        resamples,
        seed,
        accuracy: interval(0),
        auc_roc: interval(1),
        auprc: interval(2),
        log_loss: interval(3),
        brier: interval(4),
        precision: interval(5),
        recall: interval(6),
        f1: interval(7),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn auc_by_hand_with_ties() {
        // pos scores 0.9, 0.5; neg scores 0.5, 0.1.
        // pairs: (0.9>0.5)=1, (0.9>0.1)=1, (0.5=0.5)=0.5, (0.5>0.1)=1 -> 3.5/4
        close(auc_roc(&[0.9, 0.5, 0.5, 0.1], &[1, 1, 0, 0]), 0.875);
        close(auc_roc(&[0.1, 0.2, 0.3], &[1, 0, 0]), 0.0);
        close(auc_roc(&[0.5, 0.5, 0.5], &[1, 0, 0]), 0.5);
        assert!(auc_roc(&[0.5, 0.2], &[0, 0]).is_nan());
    }

    #[test]
    fn average_precision_by_hand() {
        // scikit-learn: average_precision_score([1,0,1,0], [0.9,0.8,0.7,0.1]) = 0.8333…
        // (1/2)*1 + (1/2)*(2/3)
        close(
            average_precision(&[0.9, 0.8, 0.7, 0.1], &[1, 0, 1, 0]),
            0.5 + 1.0 / 3.0,
        );
        // ties: one group of all four: recall 1 at precision 2/4
        close(average_precision(&[0.5; 4], &[1, 0, 1, 0]), 0.5);
        // sklearn: average_precision_score([0,1,1,0],[0.35,0.8,0.35,0.1]) = 0.8333…
        close(
            average_precision(&[0.35, 0.8, 0.35, 0.1], &[0, 1, 1, 0]),
            0.5 + 0.5 * (2.0 / 3.0),
        );
    }

    #[test]
    fn log_loss_and_confusion_by_hand() {
        let s = [0.9f32, 0.2, 0.6, 0.1];
        let y = [1u8, 0, 0, 1];
        let expected = -((0.9f32 as f64).ln()
            + (1.0 - 0.2f32 as f64).ln()
            + (1.0 - 0.6f32 as f64).ln()
            + (0.1f32 as f64).ln())
            / 4.0;
        close(log_loss(&s, &y), expected);
        let r = Report::new(&s, &y, 0.5);
        assert_eq!(
            r.confusion,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                r#fn: 1
            }
        );
        close(r.precision, 0.5);
        close(r.recall, 0.5);
        close(r.f1, 0.5);
        close(r.accuracy, 0.5);
        // a score equal to the threshold counts as fraud
        assert_eq!(confusion(&[0.5], &[1], 0.5).tp, 1);
        // clipping keeps a confident miss finite
        assert!(log_loss(&[0.0], &[1]).is_finite());
    }

    /// NaN once made the tie grouping spin forever (issue 10, item 1).
    #[test]
    fn nan_scores_end_and_rank_last() {
        let nan = f32::NAN;
        // ranked below 0.1: as if the NaN positive scored lowest
        close(auc_roc(&[0.9, nan, 0.1], &[1, 1, 0]), 0.5);
        close(auc_roc(&[nan, nan, nan], &[1, 0, 0]), 0.5);
        close(average_precision(&[nan, 0.2], &[1, 0]), 0.5);
        close(log_loss(&[nan, nan], &[1, 0]), -(1e-15f64).ln());
        // the cut stays between numbers; all-NaN falls back to 0.5
        close(best_f1_threshold(&[0.75, nan, 0.25], &[1, 1, 0]), 0.5);
        close(best_f1_threshold(&[nan, nan], &[1, 0]), 0.5);
        assert_eq!(confusion(&[nan], &[1], 0.0).r#fn, 1);
        let r = Report::new(&[nan; 1000], &[1; 1000], 0.5);
        assert_eq!(r.recall, 0.0);
    }

    #[test]
    fn best_threshold_separates_when_possible() {
        let s = [0.875f32, 0.75, 0.5, 0.25, 0.125];
        let y = [1u8, 1, 0, 0, 0];
        let t = best_f1_threshold(&s, &y);
        close(t, 0.625);
        assert_eq!(Report::new(&s, &y, t).f1, 1.0);
        assert_eq!(best_f1_threshold(&s, &[0; 5]), 0.5);
    }
    /// Scores that separate the classes imperfectly: frauds around 0.7,
    /// normals around 0.3, some of each on the other side; ties included.
    fn noisy(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        use rand::{Rng as _, SeedableRng};
        let mut rng = crate::Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let y = u8::from(rng.random::<f64>() < 0.05);
                let s = (0.3 + 0.4 * f64::from(y) + 0.3 * (rng.random::<f64>() - 0.5) * 2.0)
                    .clamp(0.0, 1.0);
                // two decimals: many ties
                (((s * 100.0).round() / 100.0) as f32, y)
            })
            .unzip()
    }

    #[test]
    fn one_pass_over_unit_counts_is_the_report() {
        let (s, y) = noisy(3000, 7);
        let r = Report::new(&s, &y, 0.5);
        let ranked = Ranked::new(&s, &y, 0.5);
        let tally = |copies: usize| {
            let mut t = Tally::new(&ranked);
            for _ in 0..copies {
                ranked.pos.iter().for_each(|row| t.add(row, true));
                ranked.neg.iter().for_each(|row| t.add(row, false));
            }
            t
        };
        let f = ranked.figures(&tally(1));
        let want = [
            r.accuracy,
            r.auc_roc,
            r.auprc,
            r.log_loss,
            r.brier.unwrap(),
            r.precision,
            r.recall,
            r.f1,
        ];
        for (got, want) in f.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{f:?} vs {want}");
        }
        // two copies of every row: the same figures
        let f2 = ranked.figures(&tally(2));
        for (a, b) in f.iter().zip(f2) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn intervals_hold_the_estimate_shrink_with_data_and_repeat_by_seed() {
        let (s, y) = noisy(2000, 1);
        let r = Report::new(&s, &y, 0.5);
        let small = bootstrap(&s, &y, 0.5, 400, 3).unwrap();
        let point = [
            r.accuracy,
            r.auc_roc,
            r.auprc,
            r.log_loss,
            r.brier.unwrap(),
            r.precision,
            r.recall,
            r.f1,
        ];
        for ((name, i), p) in small.named().into_iter().zip(point) {
            assert!(i.lo <= p && p <= i.hi, "{name}: {p} not in {i:?}");
            assert!(i.lo < i.hi, "{name}: {i:?}");
        }
        let (s8, y8) = noisy(32_000, 2);
        let large = bootstrap(&s8, &y8, 0.5, 400, 3).unwrap();
        for ((name, a), (_, b)) in small.named().into_iter().zip(large.named()) {
            // 16 times the rows: about a quarter of the width
            assert!(b.hi - b.lo < 0.5 * (a.hi - a.lo), "{name}: {a:?} -> {b:?}");
        }
        assert_eq!(bootstrap(&s, &y, 0.5, 400, 3), Some(small.clone()));
        assert_ne!(bootstrap(&s, &y, 0.5, 400, 4), Some(small));
        assert_eq!(bootstrap(&s, &[0; 2000], 0.5, 400, 3), None);
        assert_eq!(bootstrap(&s, &y, 0.5, 0, 3), None);
    }

    #[test]
    fn stratified_resamples_keep_class_counts() {
        // one fraud: every resample holds it once, so recall is 0 or 1 only
        // by the fraud's own call and AUC is always defined
        let s = [0.9f32, 0.2, 0.4, 0.1];
        let y = [1u8, 0, 0, 0];
        let i = bootstrap(&s, &y, 0.5, 200, 1).unwrap();
        assert_eq!(i.recall, Interval { lo: 1.0, hi: 1.0 });
        assert_eq!(i.auc_roc, Interval { lo: 1.0, hi: 1.0 });
    }

    #[test]
    fn brier_and_reliability_by_hand() {
        assert!((brier(&[0.9, 0.2], &[1, 0]) - 0.025).abs() < 1e-7);
        close(brier(&[f32::NAN], &[0]), 1.0);
        let t = reliability(&[0.05, 0.15, 0.12, 1.0, f32::NAN], &[0, 1, 0, 1, 1], 10);
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].count, t[0].observed_rate), (1, 0.0));
        assert_eq!((t[1].count, t[1].observed_rate), (2, 0.5));
        assert!((t[1].mean_predicted - 0.135).abs() < 1e-6);
        assert_eq!((t[2].lo, t[2].hi, t[2].count), (0.9, 1.0, 1));
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        close(quantile(&v, 0.0), 1.0);
        close(quantile(&v, 1.0), 5.0);
        close(quantile(&v, 0.5), 3.0);
        close(quantile(&v, 0.125), 1.5);
    }
}

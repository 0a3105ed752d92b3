//! Evaluation of fraud scores against labels: AUC-ROC (ties counted half),
//! AUPRC as average precision (scikit-learn's definition), average log loss,
//! and the confusion matrix with accuracy, precision, recall and F1 at a
//! threshold; plus the F1-maximising threshold used by `threshold=auto`.
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
    let eps = 1e-15;
    let total: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| {
            let p = f64::from(s).clamp(eps, 1.0 - eps);
            let p_true = if y == 1 { p } else { 1.0 - p };
            // `max` takes `eps` over NaN.
            -p_true.max(eps).ln()
        })
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
}

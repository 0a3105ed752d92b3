//! Evaluation of fraud scores against labels: AUC-ROC (ties counted half),
//! AUPRC as average precision (scikit-learn's definition), average log loss,
//! and the confusion matrix with accuracy, precision, recall and F1 at a
//! threshold; plus the F1-maximising threshold used by `threshold=auto`.

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

/// Indices sorted by descending score (NaN last), for the curve metrics.
fn by_score_desc(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx
}

/// Groups of equal scores in descending order: yields (positives, negatives)
/// per distinct score.
fn tie_groups(scores: &[f32], labels: &[u8]) -> Vec<(u64, u64)> {
    let idx = by_score_desc(scores);
    let mut groups = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        let (mut p, mut n) = (0u64, 0u64);
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] == 1 {
                p += 1
            } else {
                n += 1
            }
            i += 1;
        }
        groups.push((p, n));
    }
    groups
}

/// Area under the ROC curve; tied scores count one half. NaN when a class is
/// missing.
pub fn auc_roc(scores: &[f32], labels: &[u8]) -> f64 {
    let groups = tie_groups(scores, labels);
    let (tot_p, tot_n) = groups
        .iter()
        .fold((0u64, 0u64), |(a, b), (p, n)| (a + p, b + n));
    if tot_p == 0 || tot_n == 0 {
        return f64::NAN;
    }
    // For each negative, count positives scored above it (+ half the ties).
    let mut area = 0.0;
    let mut pos_above = 0u64;
    for (p, n) in groups {
        area += n as f64 * (pos_above as f64 + p as f64 / 2.0);
        pos_above += p;
    }
    area / (tot_p as f64 * tot_n as f64)
}

/// Average precision: `sum_k (R_k - R_{k-1}) * P_k` over distinct thresholds,
/// as scikit-learn's `average_precision_score`. NaN without positives.
pub fn average_precision(scores: &[f32], labels: &[u8]) -> f64 {
    let groups = tie_groups(scores, labels);
    let tot_p: u64 = groups.iter().map(|g| g.0).sum();
    if tot_p == 0 {
        return f64::NAN;
    }
    let (mut tp, mut fp, mut ap) = (0u64, 0u64, 0.0);
    for (p, n) in groups {
        tp += p;
        fp += n;
        if p > 0 {
            ap += (p as f64 / tot_p as f64) * (tp as f64 / (tp + fp) as f64);
        }
    }
    ap
}

/// Mean binary cross-entropy, probabilities clipped to `[1e-15, 1 - 1e-15]`.
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
            if y == 1 {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    total / labels.len() as f64
}

/// The threshold that maximises F1 on these scores: the midpoint between the
/// best cut's lowest fraud-called score and the next score below it, so a
/// tiny shift in scores does not flip decisions. 0.5 when there are no
/// positives.
pub fn best_f1_threshold(scores: &[f32], labels: &[u8]) -> f64 {
    let idx = by_score_desc(scores);
    let tot_p = labels.iter().filter(|&&y| y == 1).count() as f64;
    if tot_p == 0.0 || idx.is_empty() {
        return 0.5;
    }
    let (mut tp, mut fp) = (0.0, 0.0);
    let (mut best_f1, mut best_at) = (-1.0, 0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] == 1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        let f1 = 2.0 * tp / (tp + fp + tot_p);
        if f1 > best_f1 {
            best_f1 = f1;
            best_at = i;
        }
    }
    let lowest_in = f64::from(scores[idx[best_at - 1]]);
    match idx.get(best_at) {
        Some(&next) => (lowest_in + f64::from(scores[next])) / 2.0,
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

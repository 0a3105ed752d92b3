//! Decisions with a price. A fraud score alone does not say what to do: a
//! model's threshold is a business choice, and this module makes it one by
//! pricing errors the way Bahnsen, Aouada and Ottersten price them
//! ("Example-dependent cost-sensitive decision trees", 2015): every alert
//! costs a review (`cost_false_alert`, the same whether the row turns out to
//! be a fraud or not), and every fraud let through costs what it takes —
//! its own amount (`fraud_cost=amount`) or a fixed number. Approving a
//! normal transaction costs nothing. The total over a set of rows, against
//! the cost of having no model at all (every fraud let through), gives the
//! savings.
//!
//! [`curve`] sweeps every cut of a set of scores in one pass (rows sorted
//! by score once), [`cheapest`] picks the cut of least total cost (the
//! threshold between two scores, as `metrics::best_f1_threshold` does),
//! [`at`] prices one threshold, and [`Decision`] is what serving answers a
//! row. Pure arithmetic: no files, no HTTP.

use serde::Serialize;

/// What a fraud the model lets through costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FraudCost {
    /// Its own transaction amount (the schema's amount column).
    Amount,
    /// The same number for every fraud.
    Fixed(f64),
}

impl std::fmt::Display for FraudCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FraudCost::Amount => f.write_str("amount"),
            FraudCost::Fixed(v) => write!(f, "{v}"),
        }
    }
}

/// The price of each error, in amount units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// Reviewing one alert.
    pub false_alert: f64,
    pub fraud: FraudCost,
}

impl Default for Costs {
    fn default() -> Costs {
        Costs {
            false_alert: 5.0,
            fraud: FraudCost::Amount,
        }
    }
}

impl Costs {
    /// What missing each row would cost were it a fraud: its amount
    /// (`amounts`, raw, one per row; a missing or negative amount costs
    /// the mean of the known ones, so an unknown amount is neither free nor
    /// unbounded) or the fixed cost.
    pub fn miss_costs(&self, rows: usize, amounts: Option<&[f64]>) -> Vec<f64> {
        match (self.fraud, amounts) {
            (FraudCost::Amount, Some(a)) => {
                let known: Vec<f64> = a
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .collect();
                let fill = if known.is_empty() {
                    0.0
                } else {
                    known.iter().sum::<f64>() / known.len() as f64
                };
                a.iter()
                    .map(|&v| if v.is_finite() && v >= 0.0 { v } else { fill })
                    .collect()
            }
            (FraudCost::Fixed(c), _) => vec![c; rows],
            // No amount column: a missed fraud costs nothing measurable;
            // the training parameters refuse this combination first.
            (FraudCost::Amount, None) => vec![0.0; rows],
        }
    }
}

/// The outcome of one threshold on a set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostPoint {
    /// Rows scoring at or above it are alerts.
    pub threshold: f64,
    pub alerts: u64,
    /// NaN when there are no alerts.
    pub precision: f64,
    pub recall: f64,
    pub false_positive_rate: f64,
    pub alerts_per_10k: f64,
    /// Reviews plus the frauds let through.
    pub total_cost: f64,
    /// The cost with no model (every fraud let through) minus `total_cost`.
    pub savings: f64,
    /// `savings` over the cost with no model (Bahnsen's savings); NaN when
    /// there is no fraud to miss.
    pub savings_ratio: f64,
}

/// Totals of a set of rows that every point shares.
struct Totals {
    rows: u64,
    frauds: u64,
    normals: u64,
    /// Every fraud let through.
    no_model: f64,
}

impl Totals {
    fn new(labels: &[u8], miss: &[f64]) -> Totals {
        let frauds = labels.iter().filter(|&&y| y == 1).count() as u64;
        let no_model = labels
            .iter()
            .zip(miss)
            .filter(|(&y, _)| y == 1)
            .map(|(_, &c)| c)
            .sum();
        Totals {
            rows: labels.len() as u64,
            frauds,
            normals: labels.len() as u64 - frauds,
            no_model,
        }
    }

    /// The point of `threshold` with `tp` frauds and `fp` normals alerted,
    /// `caught` the miss cost of the alerted frauds.
    fn point(&self, threshold: f64, tp: u64, fp: u64, caught: f64, review: f64) -> CostPoint {
        let alerts = tp + fp;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let total_cost = review * alerts as f64 + (self.no_model - caught).max(0.0);
        CostPoint {
            threshold,
            alerts,
            precision: ratio(tp as f64, alerts as f64),
            recall: ratio(tp as f64, self.frauds as f64),
            false_positive_rate: ratio(fp as f64, self.normals as f64),
            alerts_per_10k: ratio(alerts as f64 * 1e4, self.rows as f64),
            total_cost,
            savings: self.no_model - total_cost,
            savings_ratio: ratio(self.no_model - total_cost, self.no_model),
        }
    }
}

/// The point of one threshold (`score >= threshold` alerts; a NaN score
/// never does).
pub fn at(scores: &[f32], labels: &[u8], miss: &[f64], review: f64, threshold: f64) -> CostPoint {
    let totals = Totals::new(labels, miss);
    let (mut tp, mut fp, mut caught) = (0u64, 0u64, 0.0);
    for ((&s, &y), &c) in scores.iter().zip(labels).zip(miss) {
        if f64::from(s) >= threshold {
            if y == 1 {
                tp += 1;
                caught += c;
            } else {
                fp += 1;
            }
        }
    }
    totals.point(threshold, tp, fp, caught, review)
}

/// Every cut of the scores, from alerting nothing (threshold above the top
/// score, or 1) down to alerting every numbered row: one point a distinct
/// score, its threshold halfway to the next lower score.
pub fn curve(scores: &[f32], labels: &[u8], miss: &[f64], review: f64) -> Vec<CostPoint> {
    let totals = Totals::new(labels, miss);
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len()).min(miss.len()))
        .filter(|&i| !scores[i].is_nan())
        .collect();
    idx.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let top = idx.first().map_or(1.0, |&i| f64::from(scores[i]));
    let none_above = if top < 1.0 { 1.0 } else { f64::INFINITY };
    let mut out = vec![totals.point(none_above, 0, 0, 0.0, review)];
    let (mut tp, mut fp, mut caught) = (0u64, 0u64, 0.0);
    let mut consumed = 0;
    for run in idx.chunk_by(|&a, &b| scores[a] == scores[b]) {
        for &i in run {
            if labels[i] == 1 {
                tp += 1;
                caught += miss[i];
            } else {
                fp += 1;
            }
        }
        consumed += run.len();
        let lowest = f64::from(scores[run[0]]);
        let threshold = match idx.get(consumed) {
            Some(&next) => (lowest + f64::from(scores[next])) / 2.0,
            None => lowest,
        };
        out.push(totals.point(threshold, tp, fp, caught, review));
    }
    out
}

/// The threshold of least total cost on these scores (the highest such
/// threshold on a tie: fewer alerts for the same cost), clamped to [0, 1].
pub fn cheapest(scores: &[f32], labels: &[u8], miss: &[f64], review: f64) -> f64 {
    let c = curve(scores, labels, miss, review);
    let best = c.iter().fold(None::<&CostPoint>, |best, p| match best {
        Some(b) if b.total_cost <= p.total_cost => Some(b),
        _ => Some(p),
    });
    best.map_or(0.5, |p| p.threshold.clamp(0.0, 1.0))
}

/// What serving answers for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Approve,
    Review,
}

impl Action {
    /// Its name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Review => "review",
        }
    }
}

/// A row's decision: the action at the model's threshold and, when the
/// row's amount is known, the loss expected if it is approved (`p × amount`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decision {
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_loss: Option<f64>,
}

impl Decision {
    /// The decision for probability `p` at `threshold`, `amount` the row's
    /// raw amount if known.
    pub fn new(p: f32, threshold: f64, amount: Option<f64>) -> Decision {
        let action = if f64::from(p) >= threshold {
            Action::Review
        } else {
            Action::Approve
        };
        let expected_loss = amount
            .filter(|a| a.is_finite() && p.is_finite())
            .map(|a| f64::from(p) * a.max(0.0));
        Decision {
            action,
            expected_loss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four rows: frauds of 100 and 10 scoring 0.9 and 0.3; normals 0.6 and
    /// 0.1.
    fn four() -> (Vec<f32>, Vec<u8>, Vec<f64>) {
        (
            vec![0.9, 0.6, 0.3, 0.1],
            vec![1, 0, 1, 0],
            vec![100.0, 50.0, 10.0, 20.0],
        )
    }

    #[test]
    fn a_threshold_costs_its_reviews_and_the_frauds_it_lets_through() {
        let (s, y, m) = four();
        // 0.5: alerts 0.9 (fraud) and 0.6 (normal): 2 reviews of 5, the
        // fraud of 10 let through.
        let p = at(&s, &y, &m, 5.0, 0.5);
        assert_eq!(p.alerts, 2);
        assert!((p.total_cost - 20.0).abs() < 1e-12, "{p:?}");
        assert!((p.savings - 90.0).abs() < 1e-12);
        assert!((p.savings_ratio - 90.0 / 110.0).abs() < 1e-12);
        assert!((p.precision - 0.5).abs() < 1e-12);
        assert!((p.recall - 0.5).abs() < 1e-12);
        assert!((p.false_positive_rate - 0.5).abs() < 1e-12);
        assert!((p.alerts_per_10k - 5000.0).abs() < 1e-9);
        // Nothing alerted: no model's cost.
        let none = at(&s, &y, &m, 5.0, 0.95);
        assert_eq!(
            (none.alerts, none.total_cost, none.savings),
            (0, 110.0, 0.0)
        );
        assert!(none.precision.is_nan());
    }

    #[test]
    fn the_curve_prices_every_cut_as_at_does() {
        let (s, y, m) = four();
        let c = curve(&s, &y, &m, 5.0);
        assert_eq!(c.len(), 5);
        assert_eq!(c[0].alerts, 0);
        assert_eq!(c[0].threshold, 1.0);
        for p in &c {
            let q = at(&s, &y, &m, 5.0, p.threshold);
            assert_eq!(p.alerts, q.alerts, "{p:?}");
            assert!((p.total_cost - q.total_cost).abs() < 1e-9, "{p:?} {q:?}");
        }
        // thresholds halfway between scores, the last at the lowest score
        let t: Vec<f64> = c.iter().map(|p| p.threshold).collect();
        for (a, b) in t.iter().zip([1.0, 0.75, 0.45, 0.2, 0.1]) {
            assert!((a - b).abs() < 1e-6, "{t:?}");
        }
    }

    #[test]
    fn the_cheapest_threshold_weighs_amounts_against_reviews() {
        let (s, y, m) = four();
        // Reviews at 5: catching both frauds (alert 0.9, 0.6, 0.3: 15)
        // beats alerting the top one only (5 + 10 let through = 15 too —
        // a tie, the higher threshold wins) — so make the small fraud 30.
        let m2 = vec![100.0, 50.0, 30.0, 20.0];
        let t = cheapest(&s, &y, &m2, 5.0);
        assert!((t - 0.2).abs() < 1e-6, "{t}");
        // Tie at 15: fewer alerts win.
        let t = cheapest(&s, &y, &m, 5.0);
        assert!((t - 0.75).abs() < 1e-6, "{t}");
        // Reviews dearer than any fraud: alert nothing.
        let t = cheapest(&s, &y, &m, 1000.0);
        assert_eq!(t, 1.0);
    }

    #[test]
    fn equal_scores_are_one_cut_and_nan_never_alerts() {
        let s = [0.5, 0.5, f32::NAN, 0.2];
        let y = [1, 0, 1, 0];
        let m = [10.0; 4];
        let c = curve(&s, &y, &m, 1.0);
        assert_eq!(c.iter().map(|p| p.alerts).collect::<Vec<_>>(), [0, 2, 3]);
        // the NaN fraud is never caught
        assert!((c[2].total_cost - (3.0 + 10.0)).abs() < 1e-12);
        assert_eq!(at(&s, &y, &m, 1.0, 0.0).alerts, 3);
    }

    #[test]
    fn miss_costs_fill_unknown_amounts_with_the_mean_of_the_known() {
        let c = Costs::default();
        let m = c.miss_costs(3, Some(&[10.0, f64::NAN, 30.0]));
        assert_eq!(m, [10.0, 20.0, 30.0]);
        let m = c.miss_costs(2, Some(&[-5.0, 4.0]));
        assert_eq!(m, [4.0, 4.0]);
        let fixed = Costs {
            false_alert: 1.0,
            fraud: FraudCost::Fixed(250.0),
        };
        assert_eq!(fixed.miss_costs(2, Some(&[1.0, 2.0])), [250.0, 250.0]);
        assert_eq!(c.miss_costs(2, None), [0.0, 0.0]);
    }

    #[test]
    fn a_decision_reviews_at_the_threshold_and_prices_approval() {
        let d = Decision::new(0.8, 0.5, Some(200.0));
        assert_eq!(d.action, Action::Review);
        assert!((d.expected_loss.unwrap() - 160.0).abs() < 1e-4);
        let d = Decision::new(0.5, 0.5, None);
        assert_eq!((d.action, d.expected_loss), (Action::Review, None));
        assert_eq!(Decision::new(0.49, 0.5, None).action, Action::Approve);
        assert_eq!(
            serde_json::to_string(&Decision::new(0.1, 0.5, None)).unwrap(),
            r#"{"action":"approve"}"#
        );
    }
}

//! Thresholds and their price in a training run: turns the pure arithmetic
//! of [`crate::decide`] into the run's choices and reports. It picks each
//! model's decision threshold as `threshold=` asks (a number, the best F1,
//! or the least total cost on the validation holdout), prices the chosen
//! threshold on validation and on the evaluation set beside the prices of
//! `0.5` and of the best-F1 threshold (so `metrics.json` shows what the cost
//! threshold saves), and renders `thresholds.csv`: a grid of thresholds
//! with precision, recall, false-positive rate, alerts per 10,000
//! transactions, total cost and savings, on both sets.

use super::params::{ParamError, Threshold, TrainParams};
use crate::data::Dataset;
use crate::decide::{self, CostPoint, Costs, FraudCost};
use crate::metrics::best_f1_threshold;
use crate::schema::Schema;
use std::fmt::Write as _;

/// What missing each row of `d` costs were it a fraud; `None` when the
/// fraud cost is the amount and the schema names no amount column.
pub(super) fn miss_costs(costs: Costs, schema: &Schema, d: &Dataset) -> Option<Vec<f64>> {
    let amounts = match costs.fraud {
        FraudCost::Amount => Some(schema.amounts(&d.features)?),
        FraudCost::Fixed(_) => None,
    };
    Some(costs.miss_costs(d.len(), amounts.as_deref()))
}

/// A run's prices, worked out once: the review cost and what missing each
/// validation and evaluation row would cost (the same for every model).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tariff {
    pub costs: Costs,
    pub valid: Vec<f64>,
    pub eval: Vec<f64>,
}

impl Tariff {
    /// `None` when a missed fraud has no price (see [`miss_costs`]).
    pub fn new(costs: Costs, schema: &Schema, valid: &Dataset, eval: &Dataset) -> Option<Tariff> {
        Some(Tariff {
            costs,
            valid: miss_costs(costs, schema, valid)?,
            eval: miss_costs(costs, schema, eval)?,
        })
    }
}

/// `threshold=cost` needs a price for a missed fraud: refused before any
/// fit when that price is the amount and the schema has none.
pub(super) fn check(params: &TrainParams, schema: &Schema) -> Result<(), ParamError> {
    let costs = params.costs();
    if params.threshold() == Threshold::Cost
        && costs.fraud == FraudCost::Amount
        && schema.amount().is_none()
    {
        return Err(ParamError::Invalid {
            key: "fraud_cost".into(),
            value: "amount".into(),
            allowed: "a number with threshold=cost when the data has no amount column \
                      (or name the column with amount=<column>)"
                .into(),
        });
    }
    Ok(())
}

/// The decision threshold `params` ask for, from the calibrated validation
/// scores.
pub(super) fn threshold(
    params: &TrainParams,
    tariff: Option<&Tariff>,
    val_scores: &[f32],
    valid: &Dataset,
) -> f64 {
    match (params.threshold(), tariff) {
        (Threshold::Fixed(t), _) => t,
        (Threshold::Cost, Some(tf)) => {
            decide::cheapest(val_scores, &valid.labels, &tf.valid, tf.costs.false_alert)
        }
        // Cost without a price is refused by `check` before fitting
        (Threshold::Auto | Threshold::Cost, _) => best_f1_threshold(val_scores, &valid.labels),
    }
}

/// One model's prices: the `metrics.json` object and `thresholds.csv`.
#[derive(Debug, Clone)]
pub(super) struct Priced {
    pub json: serde_json::Value,
    pub csv: String,
    /// The evaluation set's point at the chosen threshold.
    pub evaluation: CostPoint,
}

/// A set of scored rows to price: its name, the calibrated scores, the
/// rows.
pub(super) type Scored<'a> = (&'a str, &'a [f32], &'a Dataset);

/// Prices `threshold` (and, beside it, 0.5, the best-F1 threshold and the
/// least-cost threshold of the validation scores) on the validation and
/// evaluation sets.
pub(super) fn price(
    tariff: &Tariff,
    threshold: f64,
    (valid_name, valid_scores, valid_rows): Scored<'_>,
    (eval_name, eval_scores, eval_rows): Scored<'_>,
) -> Priced {
    let costs = tariff.costs;
    let review = costs.false_alert;
    let (miss_v, miss_e) = (&tariff.valid, &tariff.eval);
    let f1 = best_f1_threshold(valid_scores, &valid_rows.labels);
    let cheapest = decide::cheapest(valid_scores, &valid_rows.labels, miss_v, review);
    let at_v = |t| decide::at(valid_scores, &valid_rows.labels, miss_v, review, t);
    let at_e = |t| decide::at(eval_scores, &eval_rows.labels, miss_e, review, t);
    let evaluation = at_e(threshold);
    let json = serde_json::json!({
        "cost_false_alert": review,
        "fraud_cost": costs.fraud.to_string(),
        "threshold": threshold,
        valid_name: at_v(threshold),
        eval_name: evaluation,
        "compared": {
            "0.5": { valid_name: at_v(0.5), eval_name: at_e(0.5) },
            "auto": { "threshold": f1, valid_name: at_v(f1), eval_name: at_e(f1) },
            "cost": { "threshold": cheapest, valid_name: at_v(cheapest), eval_name: at_e(cheapest) },
        },
    });
    let mut grid: Vec<f64> = (0..=100).map(|k| f64::from(k) / 100.0).collect();
    grid.push(threshold);
    grid.sort_by(f64::total_cmp);
    grid.dedup();
    let mut csv = String::from(
        "set,threshold,chosen,alerts,precision,recall,false_positive_rate,alerts_per_10k,total_cost,savings,savings_ratio\n",
    );
    let mut sets: Vec<(&str, &dyn Fn(f64) -> CostPoint)> = vec![(valid_name, &at_v)];
    if eval_name != valid_name {
        sets.push((eval_name, &at_e));
    }
    for (name, at) in sets {
        for &t in &grid {
            let p = at(t);
            let num = |v: f64| {
                if v.is_finite() {
                    format!("{v:.6}")
                } else {
                    String::new()
                }
            };
            let _ = writeln!(
                csv,
                "{name},{},{},{},{},{},{},{},{},{},{}",
                num(t),
                t == threshold,
                p.alerts,
                num(p.precision),
                num(p.recall),
                num(p.false_positive_rate),
                num(p.alerts_per_10k),
                num(p.total_cost),
                num(p.savings),
                num(p.savings_ratio),
            );
        }
    }
    Priced {
        json,
        csv,
        evaluation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn params(pairs: &[(&str, &str)]) -> TrainParams {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TrainParams::from_map(&m).unwrap()
    }

    /// Lab rows: amounts 100, 50, 10, 20 (standardized in the row).
    fn lab_rows() -> Dataset {
        let mut d = Dataset::new(29);
        for (amount, y) in [(100.0, 1), (50.0, 0), (10.0, 1), (20.0, 0)] {
            let mut r = vec![0f32; 29];
            r[28] = crate::data::standardize_amount(amount) as f32;
            d.features.extend(r);
            d.labels.push(y);
        }
        d
    }

    #[test]
    fn the_cost_threshold_uses_the_rows_amounts() {
        let s = Schema::lab();
        let d = lab_rows();
        let miss = miss_costs(Costs::default(), &s, &d).unwrap();
        for (m, want) in miss.iter().zip([100.0, 50.0, 10.0, 20.0]) {
            assert!((m - want).abs() < 1e-3, "{miss:?}");
        }
        let scores = [0.9, 0.6, 0.3, 0.1];
        // the tariff of these rows under `p`'s costs
        let tariff = |p: &TrainParams| Tariff::new(p.costs(), &s, &d, &d);
        let threshold = |p: &TrainParams| threshold(p, tariff(p).as_ref(), &scores, &d);
        // reviews of 1: alerting down to the small fraud (3 reviews) beats
        // letting 10 through
        let p = params(&[("threshold", "cost"), ("cost_false_alert", "1")]);
        let t = threshold(&p);
        assert!((t - 0.2).abs() < 1e-6, "{t}");
        // reviews of 20: only the fraud of 100 is worth one
        let p = params(&[("threshold", "cost"), ("cost_false_alert", "20")]);
        let t = threshold(&p);
        assert!((t - 0.75).abs() < 1e-6, "{t}");
        // a fixed fraud cost of 0: alert nothing
        let p = params(&[("threshold", "cost"), ("fraud_cost", "0")]);
        assert_eq!(threshold(&p), 1.0);
        assert_eq!(threshold(&params(&[("threshold", "0.3")])), 0.3);
    }

    #[test]
    fn cost_without_an_amount_column_needs_a_number() {
        let s = crate::schema::Schema::new(
            crate::schema::Form::Header,
            vec![crate::schema::Column::numeric("x")],
            "y".into(),
            None,
        )
        .unwrap();
        let e = check(&params(&[("threshold", "cost")]), &s).unwrap_err();
        assert!(e.to_string().contains("fraud_cost"), "{e}");
        check(&params(&[("threshold", "cost"), ("fraud_cost", "100")]), &s).unwrap();
        check(&params(&[("threshold", "auto")]), &s).unwrap();
        check(&params(&[("threshold", "cost")]), &Schema::lab()).unwrap();
        let d = Dataset {
            features: vec![1.0, 2.0],
            labels: vec![1, 0],
            width: 1,
        };
        assert!(miss_costs(Costs::default(), &s, &d).is_none());
    }

    #[test]
    fn prices_compare_the_chosen_threshold_with_half_and_best_f1() {
        let s = Schema::lab();
        let d = lab_rows();
        let scores = [0.9, 0.6, 0.3, 0.1];
        let p = params(&[("threshold", "cost"), ("cost_false_alert", "1")]);
        let tariff = Tariff::new(p.costs(), &s, &d, &d).unwrap();
        let priced = price(
            &tariff,
            0.2,
            ("validation", &scores, &d),
            ("test", &scores, &d),
        );
        assert!((priced.evaluation.total_cost - 3.0).abs() < 1e-3);
        let j = &priced.json;
        assert!((j["compared"]["0.5"]["test"]["total_cost"].as_f64().unwrap() - 12.0).abs() < 1e-3);
        assert_eq!(j["fraud_cost"], "amount");
        assert!((j["compared"]["cost"]["threshold"].as_f64().unwrap() - 0.2).abs() < 1e-6);
        // 101 grid thresholds plus the chosen 0.2 (on the grid: once), two sets
        let lines: Vec<&str> = priced.csv.lines().collect();
        assert_eq!(lines.len(), 1 + 2 * 101, "{}", priced.csv);
        assert!(
            lines.iter().any(|l| l.starts_with("test,0.200000,true,3,")),
            "{}",
            priced.csv
        );
        assert_eq!(lines.iter().filter(|l| l.contains(",true,")).count(), 2);
    }
}

//! A blend: the weighted mean of other models' served (calibrated)
//! probabilities. `model=all` considers one after fitting every kind: the
//! best three models by validation AUPRC, weights on a grid of tenths
//! chosen on the validation holdout (a single member — weight 1 — is on the
//! grid, so the chosen blend never scores below its best member there, let
//! alone its worst). It is kept only when some mix beats every single model
//! on validation; it then competes for the default like any model.
//!
//! Stored as its members' names and weights; the members are the
//! artifact's own models, resolved when the artifact loads.

use super::{Defect, Model, ModelKind, Place, Rule, TrainedModel};
use crate::metrics::average_precision as auprc;
use serde::{Deserialize, Serialize};

/// One member of a blend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub model: ModelKind,
    pub weight: f64,
}

/// A fitted blend: members with weights summing to 1, and the members'
/// models to score them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blend {
    members: Vec<Member>,
    #[serde(skip)]
    models: Vec<TrainedModel>,
}

/// Stored form of [`Blend`]: members only.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BlendRepr {
    members: Vec<Member>,
}

impl BlendRepr {
    /// The blend over the artifact's `models`, checked: two members or
    /// more, each a model of the artifact (and not a blend), at most once,
    /// weights finite, above 0 and summing to 1.
    pub(crate) fn resolve(self, models: &[TrainedModel]) -> Result<Blend, Defect> {
        Blend::new(self.members, models)
    }
}

impl Blend {
    /// A checked blend of `members`, their models taken from `models`.
    pub fn new(members: Vec<Member>, models: &[TrainedModel]) -> Result<Blend, Defect> {
        if members.len() < 2 {
            return Err(Defect::BlendMembers(members.len()));
        }
        let mut picked: Vec<TrainedModel> = Vec::with_capacity(members.len());
        for (i, m) in members.iter().enumerate() {
            Rule::Positive.check(&[m.weight], |_| Place::BlendWeight(i))?;
            let found = models
                .iter()
                .find(|t| t.kind() == m.model && m.model != ModelKind::Blend)
                .ok_or(Defect::BlendMember(m.model))?;
            if picked.iter().any(|p| p.kind() == m.model) {
                return Err(Defect::BlendMember(m.model));
            }
            picked.push(found.clone());
        }
        let total: f64 = members.iter().map(|m| m.weight).sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(Defect::BlendWeights(total));
        }
        Ok(Blend {
            members,
            models: picked,
        })
    }

    /// The members and their weights.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The members' models, in member order.
    pub fn models(&self) -> &[TrainedModel] {
        &self.models
    }
}

impl Model for Blend {
    /// The schema's columns (each member scores raw rows).
    fn n_features(&self) -> usize {
        self.models.first().map_or(0, |m| m.n_features())
    }

    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        let mut one = vec![0f32; out.len()];
        for (m, member) in self.models.iter().zip(&self.members) {
            m.predict_proba(rows, &mut one);
            let w = member.weight as f32;
            for (o, p) in out.iter_mut().zip(&one) {
                *o += w * p;
            }
        }
        for o in out.iter_mut() {
            *o = o.clamp(0.0, 1.0);
        }
    }
}

/// Steps of the weight grid: weights are multiples of `1/GRID`.
pub const GRID: usize = 10;

/// The weights (one per score list, summing to 1) whose weighted mean of
/// `scores` has the best AUPRC on `labels`, searched over the grid of
/// tenths; the first member alone comes first, so on a tie it wins. With
/// the AUPRC it reaches.
pub fn choose_weights(scores: &[Vec<f32>], labels: &[u8]) -> (Vec<f64>, f64) {
    let k = scores.len();
    let mut best = (Vec::new(), f64::NEG_INFINITY);
    let mut mixed = vec![0f32; labels.len()];
    let mut grid = Vec::new();
    compositions(k, GRID, &mut Vec::new(), &mut grid);
    for steps in grid {
        let w: Vec<f64> = steps.iter().map(|&s| s as f64 / GRID as f64).collect();
        mixed.fill(0.0);
        for (s, &wi) in scores.iter().zip(&w) {
            if wi > 0.0 {
                for (m, &v) in mixed.iter_mut().zip(s) {
                    *m += wi as f32 * v;
                }
            }
        }
        let ap = auprc(&mixed, labels);
        if ap > best.1 {
            best = (w, ap);
        }
    }
    best
}

/// Every way of writing `total` as `k` ordered parts >= 0, the first part
/// largest first (so `[total, 0, …]` comes first).
fn compositions(k: usize, total: usize, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    if k == 1 {
        prefix.push(total);
        out.push(prefix.clone());
        prefix.pop();
        return;
    }
    for first in (0..=total).rev() {
        prefix.push(first);
        compositions(k - 1, total - first, prefix, out);
        prefix.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_covers_the_simplex_in_tenths_best_member_first() {
        let mut g = Vec::new();
        compositions(3, GRID, &mut Vec::new(), &mut g);
        assert_eq!(g.len(), 66, "C(12, 2)");
        assert_eq!(g[0], [10, 0, 0]);
        assert!(g.iter().all(|c| c.iter().sum::<usize>() == GRID));
        assert!(g.contains(&vec![0, 0, 10]) && g.contains(&vec![3, 3, 4]));
    }

    #[test]
    fn the_chosen_blend_never_scores_below_a_member_on_the_rows_it_was_chosen_on() {
        // Two members, each right about a different half of the frauds:
        // together they rank every fraud on top.
        let labels: Vec<u8> = (0..200).map(|i| u8::from(i % 10 == 0)).collect();
        let a: Vec<f32> = (0..200)
            .map(|i| {
                if i % 20 == 0 {
                    0.9
                } else {
                    0.3 + (i % 7) as f32 * 0.05
                }
            })
            .collect();
        let b: Vec<f32> = (0..200)
            .map(|i| {
                if i % 20 == 10 {
                    0.9
                } else {
                    0.3 + (i % 5) as f32 * 0.06
                }
            })
            .collect();
        let (w, ap) = choose_weights(&[a.clone(), b.clone()], &labels);
        let (ap_a, ap_b) = (auprc(&a, &labels), auprc(&b, &labels));
        assert!(ap >= ap_a && ap >= ap_b, "{ap} vs {ap_a}, {ap_b}");
        assert!(ap > ap_a.max(ap_b) + 0.1, "the mix is better: {ap} {w:?}");
        assert!(w[0] > 0.0 && w[1] > 0.0, "{w:?}");
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // a member that adds nothing gets weight 0: the best one alone
        let (w, ap) = choose_weights(&[a.clone(), vec![0.5; 200]], &labels);
        assert_eq!(w, [1.0, 0.0]);
        assert_eq!(ap, ap_a);
    }
}

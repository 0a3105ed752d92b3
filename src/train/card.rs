//! The model card an analyst reads first: which features move each model's
//! scores, as the mean absolute exact attribution (see
//! [`crate::model::explain`]) of each schema column over the validation
//! holdout — the global view of the per-row reasons serving gives. Rows
//! beyond [`SAMPLE`] are sampled evenly (in order, so the sample spans the
//! holdout's time range): the explanation of a forest row costs about a
//! millisecond, and 1,000 rows pin a mean |contribution| to a few percent.

use crate::model::explain::Space;
use crate::model::TrainedModel;
use serde::Serialize;

/// Most validation rows explained per model.
pub const SAMPLE: usize = 1_000;

/// Features shown in the log.
const SHOWN: usize = 10;

/// One model's global view: every column's mean |contribution|, largest
/// first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Importance {
    /// What the contributions are measured in.
    pub space: Space,
    /// Rows explained.
    pub rows: usize,
    pub features: Vec<(String, f64)>,
}

/// Every `step`-th row of `rows` (`d` values each) so at most `SAMPLE`
/// are kept.
fn sample(rows: &[f32], d: usize) -> Vec<f32> {
    let n = rows.len() / d.max(1);
    let step = n.div_ceil(SAMPLE).max(1);
    rows.chunks_exact(d.max(1))
        .step_by(step)
        .flatten()
        .copied()
        .collect()
}

/// The mean |contribution| of each column of `model` over `rows`.
pub fn importance(model: &TrainedModel, rows: &[f32]) -> Importance {
    let schema = model.schema();
    let d = schema.n_columns();
    let kept = sample(rows, d);
    let explained = model.explain(&kept);
    let mut sums = vec![0f64; d];
    for e in &explained {
        for (s, c) in sums.iter_mut().zip(&e.contributions) {
            *s += c.abs();
        }
    }
    let n = explained.len().max(1) as f64;
    let mut features: Vec<(String, f64)> = schema
        .names()
        .zip(&sums)
        .map(|(name, s)| (name.to_string(), s / n))
        .collect();
    features.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Importance {
        space: model.explain_space(),
        rows: explained.len(),
        features,
    }
}

/// The log line of a model's top features.
pub fn log(model: &TrainedModel, i: &Importance) {
    let top = i
        .features
        .iter()
        .take(SHOWN)
        .map(|(f, v)| format!("{f} {}", super::report::significant(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(
        "{}: top features by mean |contribution| ({:?}, {} validation rows): {top}",
        model.kind(),
        i.space,
        i.rows
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_even_and_bounded() {
        let d = 2;
        let rows: Vec<f32> = (0..(2 * SAMPLE + 1) * d).map(|v| v as f32).collect();
        let s = sample(&rows, d);
        // 2·SAMPLE + 1 rows: every third
        assert_eq!(s.len() / d, (2 * SAMPLE + 1).div_ceil(3));
        assert_eq!(&s[..4], &[0.0, 1.0, 6.0, 7.0]);
        let small: Vec<f32> = (0..10).map(|v| v as f32).collect();
        assert_eq!(sample(&small, d), small);
    }
}

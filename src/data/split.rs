//! Splits: the standard time-ordered train/test split of the Kaggle data and
//! the seeded, stratified validation holdout carved from training data.

use crate::Rng;
use rand::SeedableRng;

/// Rows in the training part of the standard split of `n` time-ordered rows:
/// the first 80 % (227,845 of 284,807); the rest is the test set.
pub fn time_split_point(n: usize) -> usize {
    n * 4 / 5
}

/// Indices of a stratified holdout: `fraction` of each class (at least one row
/// of each class when that class has two or more), chosen with `seed`.
/// Returns `(keep, holdout)`, both sorted ascending.
pub fn stratified_holdout(labels: &[u8], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Rng::seed_from_u64(seed);
    let mut keep = Vec::with_capacity(labels.len());
    let mut hold = Vec::new();
    for class in [0u8, 1] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rand::seq::SliceRandom::shuffle(&mut idx[..], &mut rng);
        let mut n_hold = (idx.len() as f64 * fraction).round() as usize;
        if idx.len() >= 2 {
            n_hold = n_hold.clamp(1, idx.len() - 1);
        } else {
            n_hold = 0;
        }
        hold.extend_from_slice(&idx[..n_hold]);
        keep.extend_from_slice(&idx[n_hold..]);
    }
    keep.sort_unstable();
    hold.sort_unstable();
    (keep, hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_split_point() {
        assert_eq!(time_split_point(284_807), 227_845);
        assert_eq!(284_807 - time_split_point(284_807), 56_962);
    }

    #[test]
    fn holdout_is_stratified_disjoint_and_seeded() {
        let labels: Vec<u8> = (0..1000).map(|i| u8::from(i % 50 == 0)).collect();
        let (keep, hold) = stratified_holdout(&labels, 0.1, 42);
        assert_eq!(keep.len() + hold.len(), 1000);
        assert_eq!(hold.iter().filter(|&&i| labels[i] == 1).count(), 2);
        assert_eq!(hold.len(), 100);
        let mut all: Vec<usize> = keep.iter().chain(&hold).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(stratified_holdout(&labels, 0.1, 42).1, hold);
        assert_ne!(stratified_holdout(&labels, 0.1, 43).1, hold);
    }
}

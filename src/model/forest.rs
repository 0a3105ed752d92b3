//! Random forest: trees grown by smartcore's `RandomForestClassifier`
//! (bootstrap, √d features per split), in groups over all cores, each group on
//! its own undersample of the normal transactions (all frauds kept). smartcore
//! gives hard votes only, so we lift each tree's structure out of its serde
//! form and give every leaf a fraud probability, the fraud fraction of the
//! training rows that reach it, corrected for the undersampling (Dal Pozzolo et al., 2015:
//! `p = β·pₛ / (β·pₛ + 1 − pₛ)` with β the fraction of normals kept). The
//! forest's score is the mean leaf probability: real probabilities, not votes.

use super::ModelError;
use crate::Rng;
use rand::{Rng as _, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Checked forest settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestParams {
    pub n_trees: usize,
    pub max_depth: u16,
    pub min_samples_leaf: usize,
    /// Fraction of normal rows each group of trees trains on (β).
    pub normal_fraction: f64,
    pub seed: u64,
}

/// Trees grown per undersample.
const GROUP: usize = 5;

/// A tree node: a split (`left`/`right` set, go left when `x[feature] <=
/// threshold`) or a leaf with a fraud probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(rename = "f")]
    pub feature: u16,
    #[serde(rename = "t")]
    pub threshold: f64,
    #[serde(rename = "l")]
    pub left: u32,
    #[serde(rename = "r")]
    pub right: u32,
    #[serde(rename = "p")]
    pub prob: f32,
}

/// One tree; node 0 is the root, a node with `left == 0` is a leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    #[inline]
    fn leaf(&self, x: &[f32]) -> usize {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            if n.left == 0 {
                return i;
            }
            i = if f64::from(x[n.feature as usize]) <= n.threshold {
                n.left as usize
            } else {
                n.right as usize
            };
        }
    }
}

/// A fitted forest over raw (unscaled) features. Stored as its trees; at
/// construction the trees are also flattened into one compact array (12-byte
/// nodes, f32 thresholds rounded down so `x <= t` decides exactly as the f64
/// split did) that inference walks tree by tree over a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ForestRepr", into = "ForestRepr")]
pub struct Forest {
    trees: Vec<Tree>,
    flat: Vec<Flat>,
    roots: Vec<u32>,
}

impl PartialEq for Forest {
    fn eq(&self, other: &Forest) -> bool {
        self.trees == other.trees
    }
}

/// Stored form of [`Forest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ForestRepr {
    trees: Vec<Tree>,
}

impl From<Forest> for ForestRepr {
    fn from(f: Forest) -> ForestRepr {
        ForestRepr { trees: f.trees }
    }
}

impl TryFrom<ForestRepr> for Forest {
    type Error = ModelError;
    fn try_from(r: ForestRepr) -> Result<Forest, ModelError> {
        Forest::new(r.trees)
    }
}

/// A flattened node: a split (`left` = absolute index of the left child,
/// the right child follows it) or a leaf (`left == 0`, `thr` = probability).
#[derive(Debug, Clone, Copy)]
struct Flat {
    thr: f32,
    feat: u32,
    left: u32,
}

/// Largest f32 not above `t`: for any f32 `x`, `x <= t` iff `x <= down(t)`.
fn round_down(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t {
        f.next_down()
    } else {
        f
    }
}

impl super::Model for Forest {
    /// The highest feature any split reads, plus one: rows may be wider.
    fn n_features(&self) -> usize {
        self.trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter(|n| n.left != 0)
            .map(|n| usize::from(n.feature) + 1)
            .max()
            .unwrap_or(0)
    }

    /// The row stride is `rows.len() / out.len()`.
    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        if !out.is_empty() {
            self.predict_batch(rows, rows.len() / out.len(), out);
        }
    }
}

impl Forest {
    /// Builds a forest from trees, checking what the walk relies on: at least
    /// one tree, children after their parent and in range, the right child
    /// next to the left one, no NaN threshold, leaf probabilities in [0, 1].
    pub fn new(trees: Vec<Tree>) -> Result<Forest, ModelError> {
        if trees.is_empty() {
            return Err(ModelError::Invalid("forest: no trees".into()));
        }
        let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
        if total >= u32::MAX as usize {
            return Err(ModelError::Invalid("forest: too many nodes".into()));
        }
        let mut flat = Vec::with_capacity(total);
        let mut roots = Vec::with_capacity(trees.len());
        for (ti, t) in trees.iter().enumerate() {
            let base = flat.len();
            let n = t.nodes.len();
            if n == 0 {
                return Err(ModelError::Invalid(format!(
                    "forest: tree {ti} has no nodes"
                )));
            }
            roots.push(base as u32);
            for (i, node) in t.nodes.iter().enumerate() {
                if node.left == 0 {
                    if !(0.0..=1.0).contains(&node.prob) {
                        return Err(ModelError::Invalid(format!(
                            "forest: tree {ti} node {i}: leaf probability outside [0, 1]"
                        )));
                    }
                    flat.push(Flat {
                        thr: node.prob,
                        feat: 0,
                        left: 0,
                    });
                    continue;
                }
                let (l, r) = (node.left as usize, node.right as usize);
                if l <= i || r != l + 1 || r >= n || node.threshold.is_nan() {
                    return Err(ModelError::Invalid(format!(
                        "forest: tree {ti} node {i}: bad split or child links"
                    )));
                }
                flat.push(Flat {
                    thr: round_down(node.threshold),
                    feat: u32::from(node.feature),
                    left: (base + l) as u32,
                });
            }
        }
        Ok(Forest { trees, flat, roots })
    }

    #[inline]
    fn walk(&self, root: u32, x: &[f32]) -> f32 {
        let mut i = root as usize;
        loop {
            let n = self.flat[i];
            if n.left == 0 {
                return n.thr;
            }
            i = n.left as usize + usize::from(x[n.feat as usize] > n.thr);
        }
    }

    /// Fraud probabilities of raw row-major rows (`d` features each), tree
    /// by tree so each tree stays in cache across the batch.
    pub fn predict_batch(&self, rows: &[f32], d: usize, out: &mut [f32]) {
        // Eight rows walk each tree in lockstep: their node loads are
        // independent, so the CPU overlaps them instead of waiting on one
        // chain of dependent loads per row.
        const LANES: usize = 8;
        out.fill(0.0);
        let full = out.len() / LANES * LANES;
        for &root in &self.roots {
            for (xs, os) in rows[..full * d]
                .chunks_exact(d * LANES)
                .zip(out[..full].chunks_exact_mut(LANES))
            {
                let mut idx = [root as usize; LANES];
                loop {
                    let mut moved = false;
                    for (l, i) in idx.iter_mut().enumerate() {
                        let n = self.flat[*i];
                        if n.left != 0 {
                            *i = n.left as usize + usize::from(xs[l * d + n.feat as usize] > n.thr);
                            moved = true;
                        }
                    }
                    if !moved {
                        break;
                    }
                }
                for (o, &i) in os.iter_mut().zip(&idx) {
                    *o += self.flat[i].thr;
                }
            }
            for (x, o) in rows[full * d..].chunks_exact(d).zip(out[full..].iter_mut()) {
                *o += self.walk(root, x);
            }
        }
        let k = 1.0 / self.roots.len() as f32;
        for o in out.iter_mut() {
            *o *= k;
        }
    }

    /// Grows the forest, groups of trees in parallel on rayon's pool.
    /// `stop` is polled before each group.
    pub fn fit(
        p: &ForestParams,
        x: &[f32],
        y: &[u8],
        d: usize,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Forest, ModelError> {
        let n_groups = p.n_trees.div_ceil(GROUP);
        let grown = AtomicUsize::new(0);
        let groups: Vec<Option<Vec<Tree>>> = (0..n_groups)
            .into_par_iter()
            .map(|g| {
                if stop() {
                    return Ok(None);
                }
                let trees = fit_group(p, x, y, d, g, (p.n_trees - g * GROUP).min(GROUP))?;
                grown.fetch_add(trees.len(), Ordering::Relaxed);
                Ok(Some(trees))
            })
            .collect::<Result<_, ModelError>>()?;
        let Some(groups) = groups.into_iter().collect::<Option<Vec<_>>>() else {
            return Err(ModelError::Interrupted {
                done: grown.into_inner(),
                total: p.n_trees,
                unit: "trees grown",
            });
        };
        Forest::new(groups.into_iter().flatten().collect())
    }

    /// The trees, in order.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// Fraud probability of one raw row.
    #[inline]
    pub fn predict_row(&self, x: &[f32]) -> f32 {
        let sum: f32 = self.roots.iter().map(|&r| self.walk(r, x)).sum();
        sum / self.roots.len() as f32
    }
}

/// Grows one group of trees on its own undersample.
fn fit_group(
    p: &ForestParams,
    x: &[f32],
    y: &[u8],
    d: usize,
    group: usize,
    n_trees: usize,
) -> Result<Vec<Tree>, ModelError> {
    let seed = p.seed.wrapping_add(1000 * group as u64 + 1);
    let mut rng = Rng::seed_from_u64(seed);
    let rows: Vec<usize> = (0..y.len())
        .filter(|&i| y[i] == 1 || rng.random::<f64>() < p.normal_fraction)
        .collect();
    let mut values = Vec::with_capacity(rows.len() * d);
    for &i in &rows {
        values.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    let labels: Vec<u32> = rows.iter().map(|&i| u32::from(y[i])).collect();
    let fail = |e: &dyn std::fmt::Display| ModelError::Fit(format!("forest: {e}"));
    let xm = DenseMatrix::new(rows.len(), d, values.clone(), false).map_err(|e| fail(&e))?;
    let params = RandomForestClassifierParameters::default()
        .with_n_trees(n_trees as u16)
        .with_max_depth(p.max_depth)
        .with_min_samples_leaf(p.min_samples_leaf)
        .with_seed(seed);
    let rf = RandomForestClassifier::fit(&xm, &labels, params).map_err(|e| fail(&e))?;
    let json = serde_json::to_value(&rf).map_err(|e| fail(&e))?;
    let trees_json = json
        .get("trees")
        .and_then(|t| t.as_array())
        .ok_or_else(|| fail(&"smartcore's serde form has no trees"))?;
    let prior = labels.iter().filter(|&&l| l == 1).count() as f64 / labels.len() as f64;
    let beta = p.normal_fraction;
    let mut trees = Vec::with_capacity(trees_json.len());
    for tj in trees_json {
        let mut tree = lift_tree(tj).map_err(|e| fail(&e))?;
        // Leaf fraud rates on this group's rows (as scikit-learn's leaf class
        // fractions); a leaf no row reaches falls back to the prior.
        let mut counts = vec![(0u32, 0u32); tree.nodes.len()];
        for (r, &label) in labels.iter().enumerate() {
            let leaf = tree.leaf(&values[r * d..(r + 1) * d]);
            counts[leaf].0 += label;
            counts[leaf].1 += 1;
        }
        for (node, (k, n)) in tree.nodes.iter_mut().zip(counts) {
            if node.left == 0 {
                let ps = if n == 0 {
                    prior
                } else {
                    f64::from(k) / f64::from(n)
                };
                node.prob = (beta * ps / (beta * ps + 1.0 - ps)) as f32;
            }
        }
        trees.push(tree);
    }
    Ok(trees)
}

/// Converts one smartcore tree (serde form) into our node layout,
/// renumbering nodes so children always follow their parent.
fn lift_tree(tj: &serde_json::Value) -> Result<Tree, String> {
    let nodes = tj
        .get("nodes")
        .and_then(|n| n.as_array())
        .ok_or("tree without nodes")?;
    let get = |i: usize| nodes.get(i).ok_or(format!("node {i} missing"));
    let mut out: Vec<Node> = Vec::with_capacity(nodes.len());
    // (smartcore index, our index) to expand, breadth first.
    let mut queue = std::collections::VecDeque::from([(0usize, 0usize)]);
    out.push(Node {
        feature: 0,
        threshold: 0.0,
        left: 0,
        right: 0,
        prob: 0.0,
    });
    while let Some((si, oi)) = queue.pop_front() {
        let n = get(si)?;
        let child = |k: &str| n.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
        if let (Some(t), Some(f)) = (child("true_child"), child("false_child")) {
            let feature = n
                .get("split_feature")
                .and_then(|v| v.as_u64())
                .ok_or("split without feature")?;
            let threshold = n
                .get("split_value")
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN);
            let (l, r) = (out.len(), out.len() + 1);
            for _ in 0..2 {
                out.push(Node {
                    feature: 0,
                    threshold: 0.0,
                    left: 0,
                    right: 0,
                    prob: 0.0,
                });
            }
            out[oi] = Node {
                feature: feature as u16,
                threshold,
                left: l as u32,
                right: r as u32,
                prob: 0.0,
            };
            queue.push_back((t, l));
            queue.push_back((f, r));
        }
        if out.len() > 4 * nodes.len() + 4 {
            return Err("tree has a cycle".into());
        }
    }
    Ok(Tree { nodes: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_rank_frauds_and_stay_in_range() {
        let mut rng = Rng::seed_from_u64(5);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..3000 {
            let fraud = rng.random::<f64>() < 0.05;
            let a = rng.sample::<f64, _>(rand_distr::StandardNormal) as f32
                + if fraud { 2.5 } else { 0.0 };
            x.extend([
                a,
                rng.sample::<f64, _>(rand_distr::StandardNormal) as f32,
                rng.sample::<f64, _>(rand_distr::StandardNormal) as f32,
            ]);
            y.push(u8::from(fraud));
        }
        let p = ForestParams {
            n_trees: 12,
            max_depth: 6,
            min_samples_leaf: 1,
            normal_fraction: 0.5,
            seed: 3,
        };
        let f = Forest::fit(&p, &x, &y, 3, &|| false).unwrap();
        assert_eq!(f.trees().len(), 12);
        assert!(super::super::Model::n_features(&f) <= 3);
        let s: Vec<f32> = x.chunks(3).map(|r| f.predict_row(r)).collect();
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
        let auc = crate::metrics::auc_roc(&s, &y);
        assert!(auc > 0.9, "auc {auc}");
        // many distinct scores: probabilities, not a handful of vote fractions
        let mut distinct: Vec<u32> = s.iter().map(|v| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 50, "{}", distinct.len());
        // the flattened walk decides exactly as the f64 tree walk
        for r in x.chunks(3) {
            let slow: f32 = f
                .trees()
                .iter()
                .map(|t| t.nodes[t.leaf(r)].prob)
                .sum::<f32>()
                / f.trees().len() as f32;
            assert_eq!(f.predict_row(r), slow);
        }
        let mut batch = vec![0f32; y.len()];
        f.predict_batch(&x, 3, &mut batch);
        for (a, b) in batch.iter().zip(&s) {
            assert!((a - b).abs() < 1e-6);
        }
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Forest>(&json).unwrap(), f);
        // deterministic for a seed
        assert_eq!(Forest::fit(&p, &x, &y, 3, &|| false).unwrap(), f);
        // a stop names how far the fit got (issue 10, item 12)
        let e = Forest::fit(&p, &x, &y, 3, &|| true).unwrap_err();
        assert!(
            matches!(e, ModelError::Interrupted { done: 0, total, .. } if total == p.n_trees),
            "{e:?}"
        );
        assert!(e.to_string().contains("0 of 12 trees grown"), "{e}");
        // one group (5 trees) is let through, then the stop
        let polls = AtomicUsize::new(0);
        let e = Forest::fit(&p, &x, &y, 3, &|| polls.fetch_add(1, Ordering::SeqCst) > 0);
        assert!(
            matches!(e, Err(ModelError::Interrupted { done: GROUP, .. })),
            "{e:?}"
        );
    }
}

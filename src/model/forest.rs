//! Random forest: trees grown by smartcore's `RandomForestClassifier`
//! (bootstrap, √d features per split), in groups over all cores, each group on
//! its own undersample of the normal transactions (all frauds kept). smartcore
//! gives hard votes only, so we lift each tree's structure out of its serde
//! form and give every leaf a fraud probability, the fraud fraction of the
//! training rows that reach it, corrected for the undersampling (Dal Pozzolo et al., 2015:
//! `p = β·pₛ / (β·pₛ + 1 − pₛ)` with β the fraction of normals kept). The
//! forest's score is the mean leaf probability: real probabilities, not votes.

use super::explain::{ShapTrees, TreeNode};
use super::{Defect, ModelError, ModelKind, Place, Rule};
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
    /// Rows of the tree's training sample (its group's undersample) that
    /// reach the node: its cover, for exact attributions. A split's is its
    /// children's sum. Absent in artifacts written before it (then absent
    /// on every node).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
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
    /// The trees as TreeSHAP walks them (same node order as `flat`).
    shap: ShapTrees,
}

impl PartialEq for Forest {
    fn eq(&self, other: &Forest) -> bool {
        self.trees == other.trees
    }
}

/// Stored form of [`Forest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForestRepr {
    trees: Vec<Tree>,
}

impl From<Forest> for ForestRepr {
    fn from(f: Forest) -> ForestRepr {
        ForestRepr { trees: f.trees }
    }
}

impl TryFrom<ForestRepr> for Forest {
    type Error = Defect;
    /// Checks what the walk relies on: at least one tree, children after
    /// their parent (so no cycle) and in range, the right child next to the
    /// left one, features in the schema, finite split thresholds, leaf
    /// probabilities in [0, 1], and node counts (when stored) on every node
    /// or none, each split's above 0 and its children's sum.
    fn try_from(r: ForestRepr) -> Result<Forest, Defect> {
        let trees = r.trees;
        if trees.is_empty() {
            return Err(Defect::NoTrees);
        }
        let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
        if total >= u32::MAX as usize {
            return Err(Defect::TooManyNodes { nodes: total });
        }
        let mut flat = Vec::with_capacity(total);
        let mut roots = Vec::with_capacity(trees.len());
        let counted = trees
            .first()
            .and_then(|t| t.nodes.first())
            .is_some_and(|n| n.count.is_some());
        for (tree, t) in trees.iter().enumerate() {
            let base = flat.len();
            let nodes = t.nodes.len();
            if nodes == 0 {
                return Err(Defect::EmptyTree { tree });
            }
            roots.push(base as u32);
            for (node, n) in t.nodes.iter().enumerate() {
                if n.left == 0 {
                    Rule::Probability.check(&[n.prob], |_| Place::Leaf { tree, node })?;
                    flat.push(Flat {
                        thr: n.prob,
                        feat: 0,
                        left: 0,
                    });
                    continue;
                }
                let (l, r) = (n.left as usize, n.right as usize);
                if l <= node || r != l + 1 || r >= nodes {
                    let (left, right) = (n.left, n.right);
                    return Err(Defect::Links {
                        tree,
                        node,
                        left,
                        right,
                        nodes,
                    });
                }
                Rule::Finite.check(&[n.threshold], |_| Place::Split { tree, node })?;
                if counted {
                    let c = |i: usize| u64::from(t.nodes[i].count.unwrap_or(0));
                    if c(node) == 0 || c(node) != c(l) + c(r) {
                        return Err(Defect::Cover { tree, node });
                    }
                }
                flat.push(Flat {
                    thr: round_down(n.threshold),
                    feat: u32::from(n.feature),
                    left: (base + l) as u32,
                });
            }
        }
        if let Some((tree, node)) = trees.iter().enumerate().find_map(|(i, t)| {
            let j = t.nodes.iter().position(|n| n.count.is_some() != counted)?;
            Some((i, j))
        }) {
            return Err(Defect::Cover { tree, node });
        }
        let shap = shap_trees(&trees, counted);
        Ok(Forest {
            trees,
            flat,
            roots,
            shap,
        })
    }
}

/// The trees for TreeSHAP: covers are the stored counts, or without them
/// an equal split at every node (each child half its parent's cover).
fn shap_trees(trees: &[Tree], counted: bool) -> ShapTrees {
    let mut shap = ShapTrees::default();
    let mut nodes = Vec::new();
    for t in trees {
        nodes.clear();
        nodes.extend(t.nodes.iter().map(|n| TreeNode {
            left: n.left,
            feature: n.feature,
            cover: n.count.map_or(1.0, f64::from),
            value: f64::from(n.prob),
        }));
        if !counted {
            for i in 0..nodes.len() {
                let n = nodes[i];
                if n.left != 0 {
                    let l = n.left as usize;
                    nodes[l].cover = n.cover / 2.0;
                    nodes[l + 1].cover = n.cover / 2.0;
                }
            }
        }
        shap.push(&nodes);
    }
    shap
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
    /// See [`super::split_width`].
    fn n_features(&self) -> usize {
        let splits = self.trees.iter().flat_map(|t| &t.nodes);
        super::split_width(splits.filter(|n| n.left != 0).map(|n| n.feature))
    }

    /// The row stride is `rows.len() / out.len()`.
    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        if !out.is_empty() {
            self.predict_batch(rows, rows.len() / out.len(), out);
        }
    }
}

impl Forest {
    /// Every split reads one of the schema's `columns` (checked when the
    /// forest meets its schema: in the model, on load and after fitting).
    pub(crate) fn check_features(&self, columns: usize) -> Result<(), Defect> {
        for (tree, t) in self.trees.iter().enumerate() {
            for (node, n) in t.nodes.iter().enumerate() {
                if n.left != 0 && usize::from(n.feature) >= columns {
                    let feature = n.feature;
                    return Err(Defect::Feature {
                        tree,
                        node,
                        feature,
                        columns,
                    });
                }
            }
        }
        Ok(())
    }

    /// Builds a forest from trees, checked as when loaded.
    pub fn new(trees: Vec<Tree>) -> Result<Forest, ModelError> {
        Forest::try_from(ForestRepr { trees }).map_err(|defect| ModelError::Invalid {
            model: ModelKind::Forest,
            defect,
        })
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

    /// Whether the nodes carry their training counts (artifacts written
    /// before them explain with an equal split at every node).
    pub fn has_counts(&self) -> bool {
        self.trees[0].nodes[0].count.is_some()
    }

    /// The trees as TreeSHAP walks them.
    pub(crate) fn shap(&self) -> &ShapTrees {
        &self.shap
    }

    /// Whether `x` goes left at flattened node `i`: the walk's own rule.
    #[inline]
    pub(crate) fn goes_left_flat(&self, i: usize, x: f32) -> bool {
        x <= self.flat[i].thr || x.is_nan()
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
    // A missing value (`NaN`) is grown on as the lowest number there is, so
    // it goes left at every split; the walk sends `NaN` left too (`NaN >
    // thr` is false): the same rule at fit and at predict.
    let mut values = Vec::with_capacity(rows.len() * d);
    for &i in &rows {
        values.extend(
            x[i * d..(i + 1) * d]
                .iter()
                .map(|&v| if v.is_nan() { f32::MIN } else { v }),
        );
    }
    let labels: Vec<u32> = rows.iter().map(|&i| u32::from(y[i])).collect();
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| ModelError::Fit {
        model: ModelKind::Forest,
        source,
    };
    let xm = DenseMatrix::new(rows.len(), d, values.clone(), false).map_err(|e| fail(e.into()))?;
    let params = RandomForestClassifierParameters::default()
        .with_n_trees(n_trees as u16)
        .with_max_depth(p.max_depth)
        .with_min_samples_leaf(p.min_samples_leaf)
        .with_seed(seed);
    let rf = RandomForestClassifier::fit(&xm, &labels, params).map_err(|e| fail(e.into()))?;
    let json = serde_json::to_value(&rf).map_err(|e| fail(e.into()))?;
    let trees_json = json
        .get("trees")
        .and_then(|t| t.as_array())
        .ok_or_else(|| fail("smartcore's serde form has no trees".into()))?;
    let prior = labels.iter().filter(|&&l| l == 1).count() as f64 / labels.len() as f64;
    let beta = p.normal_fraction;
    let mut trees = Vec::with_capacity(trees_json.len());
    for tj in trees_json {
        let mut tree = lift_tree(tj).map_err(|e| fail(e.into()))?;
        // Leaf fraud rates on this group's rows (as scikit-learn's leaf class
        // fractions); a leaf no row reaches falls back to the prior.
        let mut counts = vec![(0u32, 0u32); tree.nodes.len()];
        for (r, &label) in labels.iter().enumerate() {
            let leaf = tree.leaf(&values[r * d..(r + 1) * d]);
            counts[leaf].0 += label;
            counts[leaf].1 += 1;
        }
        // A split's count is its children's (children follow parents).
        for i in (0..tree.nodes.len()).rev() {
            let (l, r) = (tree.nodes[i].left as usize, tree.nodes[i].right as usize);
            if l != 0 {
                counts[i].1 = counts[l].1 + counts[r].1;
            }
        }
        for (node, (k, n)) in tree.nodes.iter_mut().zip(counts) {
            node.count = Some(n);
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
        count: None,
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
                    count: None,
                });
            }
            out[oi] = Node {
                feature: feature as u16,
                threshold,
                left: l as u32,
                right: r as u32,
                prob: 0.0,
                count: None,
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

    /// `Forest::new` over one tree of `nodes`, and its defect.
    fn defect(nodes: Vec<Node>) -> Defect {
        match Forest::new(vec![Tree { nodes }]) {
            Err(ModelError::Invalid {
                model: ModelKind::Forest,
                defect,
            }) => defect,
            other => panic!("expected a defect, got {other:?}"),
        }
    }

    #[test]
    fn trees_the_walk_cannot_trust_are_refused() {
        let split = |feature, threshold, left, right| Node {
            feature,
            threshold,
            left,
            right,
            prob: 0.0,
            count: None,
        };
        let leaf = |prob| Node {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 0,
            prob,
            count: None,
        };
        let ok = vec![split(3, 0.5, 1, 2), leaf(0.1), leaf(0.9)];
        assert_eq!(
            Forest::new(vec![Tree { nodes: ok }])
                .unwrap()
                .predict_row(&[1.0; 29]),
            0.9
        );
        // links back (a cycle), to itself, out of range, not side by side
        for (node, nodes) in [
            (2, vec![split(3, 0.5, 1, 2), leaf(0.1), split(1, 0.0, 1, 2)]),
            (1, vec![split(3, 0.5, 1, 2), split(1, 0.0, 1, 2), leaf(0.1)]),
            (0, vec![split(3, 0.5, 2, 3), leaf(0.1), leaf(0.9)]),
            (0, vec![split(3, 0.5, 1, 1), leaf(0.1), leaf(0.9)]),
        ] {
            let d = defect(nodes);
            assert!(
                matches!(d, Defect::Links { tree: 0, node: n, nodes: 3, .. } if n == node),
                "{d}"
            );
        }
        let wide = Forest::new(vec![Tree {
            nodes: vec![split(29, 0.5, 1, 2), leaf(0.1), leaf(0.9)],
        }])
        .unwrap();
        assert_eq!(wide.check_features(30), Ok(()));
        assert_eq!(
            wide.check_features(29).unwrap_err(),
            Defect::Feature {
                tree: 0,
                node: 0,
                feature: 29,
                columns: 29
            }
        );
        let splits = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY].map(|t| {
            let nodes = vec![split(3, t, 1, 2), leaf(0.1), leaf(0.9)];
            (nodes, Place::Split { tree: 0, node: 0 }, Rule::Finite)
        });
        let leaves = [-0.1, 1.5, f32::NAN].map(|p| {
            let nodes = vec![split(3, 0.5, 1, 2), leaf(0.1), leaf(p)];
            (nodes, Place::Leaf { tree: 0, node: 2 }, Rule::Probability)
        });
        for (nodes, place, rule) in splits.into_iter().chain(leaves) {
            let d = defect(nodes);
            assert!(
                matches!(d, Defect::Value { at, rule: r, .. } if at == place && r == rule),
                "{d}"
            );
        }
        assert_eq!(defect(vec![]), Defect::EmptyTree { tree: 0 });
        assert!(matches!(
            Forest::new(vec![]),
            Err(ModelError::Invalid {
                defect: Defect::NoTrees,
                ..
            })
        ));
        let e = serde_json::from_str::<Forest>(
            r#"{"trees":[{"nodes":[{"f":0,"t":0,"l":1,"r":2,"p":0}]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tree 0 node 0: children 1 and 2"), "{e}");
    }
}

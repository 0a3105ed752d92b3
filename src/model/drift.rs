//! Input drift: how far recent traffic has moved from the rows a model was
//! trained on, per column, as a population stability index (PSI). Plain
//! arithmetic over encoded rows (see [`crate::schema`]): no HTTP, no clock.
//!
//! * [`Reference`] — the training distribution, computed once at train time
//!   ([`Reference::fit`]) and stored in the artifact: for a numeric column,
//!   the decile edges of its training values (ties merged, so a column with
//!   few distinct values gets fewer bins) plus a "missing" bucket; for a
//!   categorical column, one bin per code (vocabulary and "other") plus
//!   "missing". Each bin keeps the share of training rows that fell in it.
//! * [`Window`] — the last `capacity` scored rows, as a ring of sub-window
//!   bin counts: a batch is added at once, and when the newest sub-window
//!   is full the oldest is dropped whole, so the window holds between
//!   `capacity - capacity/SUB_WINDOWS` and `capacity` rows once warm.
//! * [`psi`] — `PSI = Σ_b (a_b − e_b) · ln(a_b / e_b)` over the bins `b` of a
//!   column, `a_b` the share of window rows in bin `b`, `e_b` the share of
//!   training rows, both floored at [`EPSILON`] so an empty bin gives a
//!   large but finite term. Conventional reading: below 0.1 stable, 0.1 to
//!   0.25 a moderate shift, above 0.25 a significant shift. On a sample of
//!   `n` rows from the training distribution itself the PSI is not 0 but
//!   about `(bins − 1) / n` (sampling noise), hence windows of thousands of
//!   rows.

use serde::{Deserialize, Serialize};

/// Floor of a bin's share in [`psi`] (an empty bin would divide by 0).
pub const EPSILON: f64 = 1e-4;
/// Quantile bins of a numeric column at most (deciles).
pub const QUANTILE_BINS: usize = 10;
/// Sub-windows a [`Window`] is split into.
pub const SUB_WINDOWS: usize = 10;

/// How one column's values fall into bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Bins {
    /// Bin `i` holds `edges[i-1] <= v < edges[i]` (the first from −∞, the
    /// last to +∞): `edges.len() + 1` value bins, then "missing" (`NaN`).
    Numeric { edges: Vec<f32> },
    /// Bin `c` holds code `c` (`codes - 1` is the vocabulary's "other"),
    /// then "missing".
    Categorical { codes: usize },
}

impl Bins {
    /// Bins including "missing" (the last).
    pub fn len(&self) -> usize {
        match self {
            Bins::Numeric { edges } => edges.len() + 2,
            Bins::Categorical { codes } => codes + 1,
        }
    }

    /// Never true: "missing" is always a bin.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bin of `v` (an encoded value: a number or a category code).
    pub fn of(&self, v: f32) -> usize {
        let missing = self.len() - 1;
        if v.is_nan() {
            return missing;
        }
        match self {
            Bins::Numeric { edges } => edges.partition_point(|e| *e <= v),
            // codes are whole numbers in 0..codes; anything else is "other"
            Bins::Categorical { codes } => {
                if v >= 0.0 && (v as usize) < *codes {
                    v as usize
                } else {
                    codes - 1
                }
            }
        }
    }
}

/// One column's bins and the training share of each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReference {
    pub bins: Bins,
    /// Share of training rows per bin (sums to 1), "missing" last.
    pub expected: Vec<f64>,
}

/// The training distribution of every column, in schema order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub columns: Vec<ColumnReference>,
    /// Training rows it was computed from.
    pub rows: usize,
}

/// Why a stored [`Reference`] does not fit its schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the drift reference has {found} columns, the schema {expected}")]
    Columns { found: usize, expected: usize },
    #[error("drift reference of column {column}: {why}")]
    Column { column: usize, why: &'static str },
}

impl Reference {
    /// The distribution of `rows` (row-major, `width` values each):
    /// `categories[j]` is `Some(vocabulary length)` for a categorical
    /// column (codes `0..=len`, the last "other"), `None` for a numeric one.
    pub fn fit(rows: &[f32], width: usize, categories: &[Option<usize>]) -> Reference {
        let n = rows.len().checked_div(width).unwrap_or(0);
        let columns = categories
            .iter()
            .enumerate()
            .map(|(j, cats)| {
                let values = rows.iter().skip(j).step_by(width.max(1)).copied();
                let bins = match cats {
                    Some(len) => Bins::Categorical { codes: len + 1 },
                    None => Bins::Numeric {
                        edges: decile_edges(values.clone().filter(|v| !v.is_nan()).collect()),
                    },
                };
                let mut counts = vec![0u64; bins.len()];
                for v in values {
                    counts[bins.of(v)] += 1;
                }
                let expected = shares(&counts);
                ColumnReference { bins, expected }
            })
            .collect();
        Reference { columns, rows: n }
    }

    /// Checks a stored reference against its schema's `width` columns:
    /// bin shares finite, in [0, 1], one per bin, edges ascending.
    pub fn check(&self, width: usize) -> Result<(), ReferenceError> {
        if self.columns.len() != width {
            return Err(ReferenceError::Columns {
                found: self.columns.len(),
                expected: width,
            });
        }
        for (column, c) in self.columns.iter().enumerate() {
            let bad = |why| Err(ReferenceError::Column { column, why });
            if c.expected.len() != c.bins.len() {
                return bad("not one share per bin");
            }
            if !c.expected.iter().all(|e| (0.0..=1.0).contains(e)) {
                return bad("a share outside [0, 1]");
            }
            match &c.bins {
                Bins::Numeric { edges } => {
                    if !edges.windows(2).all(|w| w[0] < w[1])
                        || edges.iter().any(|e| !e.is_finite())
                    {
                        return bad("edges not finite and strictly ascending");
                    }
                }
                Bins::Categorical { codes } => {
                    if *codes == 0 {
                        return bad("no codes");
                    }
                }
            }
        }
        Ok(())
    }

    /// Bins of every column together (the width of a [`Window`]'s counts).
    pub fn total_bins(&self) -> usize {
        self.columns.iter().map(|c| c.bins.len()).sum()
    }

    /// Adds the bins of `rows` (encoded rows of these columns) to `counts`
    /// ([`Reference::total_bins`] long: every column's bins, in order) and
    /// returns the number of rows: a block for [`Window::add_block`].
    pub fn count_rows(&self, rows: &[f32], counts: &mut [u32]) -> usize {
        let columns = self.columns.len();
        if columns == 0 {
            return 0;
        }
        let mut n = 0;
        for row in rows.chunks_exact(columns) {
            let mut offset = 0;
            for (&v, c) in row.iter().zip(&self.columns) {
                if let Some(k) = counts.get_mut(offset + c.bins.of(v)) {
                    *k += 1;
                }
                offset += c.bins.len();
            }
            n += 1;
        }
        n
    }

    /// The absolute bin index (column offset + bin) of each value of `rows`
    /// (encoded rows of these columns) into `out` (cleared first), for
    /// [`Window::add`]: computed before taking the window's lock.
    pub fn bin_rows(&self, rows: &[f32], out: &mut Vec<u32>) {
        out.clear();
        let columns = self.columns.len();
        if columns == 0 {
            return;
        }
        out.reserve(rows.len());
        for row in rows.chunks_exact(columns) {
            let mut offset = 0;
            for (&v, c) in row.iter().zip(&self.columns) {
                out.push((offset + c.bins.of(v)) as u32);
                offset += c.bins.len();
            }
        }
    }
}

/// Interior decile cut points of `values` (no `NaN`), duplicates merged:
/// at most [`QUANTILE_BINS`]` - 1` edges, none for a constant column.
fn decile_edges(mut values: Vec<f32>) -> Vec<f32> {
    values.sort_unstable_by(f32::total_cmp);
    let n = values.len();
    let mut edges: Vec<f32> = Vec::with_capacity(QUANTILE_BINS - 1);
    if n == 0 {
        return edges;
    }
    for k in 1..QUANTILE_BINS {
        let e = values[(k * n / QUANTILE_BINS).min(n - 1)];
        // an edge at the minimum would leave the first bin empty
        if e > values[0] && edges.last().is_none_or(|last| e > *last) {
            edges.push(e);
        }
    }
    edges
}

/// Counts as shares of their sum (all 0 for no counts).
fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// Population stability index of `actual` counts against `expected`
/// shares (see the module doc); `None` when there are no counts.
pub fn psi(expected: &[f64], actual: &[u64]) -> Option<f64> {
    let total: u64 = actual.iter().sum();
    if total == 0 {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(actual)
            .map(|(&e, &a)| {
                let e = e.max(EPSILON);
                let a = (a as f64 / total as f64).max(EPSILON);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// The bins of the last `capacity` rows (see the module doc).
#[derive(Debug, Clone)]
pub struct Window {
    /// Bin offset of each column in a counts vector, and its bins.
    offsets: Vec<usize>,
    width: usize,
    /// Rows a sub-window holds.
    sub_capacity: usize,
    /// `SUB_WINDOWS` count vectors (`width` each) and their row counts.
    ring: Vec<(Vec<u32>, usize)>,
    /// The sub-window being filled.
    current: usize,
    /// The sum of the ring.
    total: Vec<u64>,
    rows: usize,
}

impl Window {
    /// An empty window over `reference`'s bins holding about `capacity`
    /// rows (at least one per sub-window).
    pub fn new(reference: &Reference, capacity: usize) -> Window {
        let mut offsets = Vec::with_capacity(reference.columns.len() + 1);
        let mut at = 0;
        for c in &reference.columns {
            offsets.push(at);
            at += c.bins.len();
        }
        offsets.push(at);
        Window {
            offsets,
            width: at,
            sub_capacity: capacity.div_ceil(SUB_WINDOWS).max(1),
            ring: vec![(vec![0; at], 0); SUB_WINDOWS],
            current: 0,
            total: vec![0; at],
            rows: 0,
        }
    }

    /// Rows the window holds now.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds rows already binned: `bins` holds, per row, the absolute bin
    /// index (column offset + bin) of each column (see [`Reference::bin_rows`]).
    pub fn add(&mut self, bins: &[u32]) {
        let columns = self.offsets.len() - 1;
        if columns == 0 {
            return;
        }
        for row in bins.chunks_exact(columns) {
            if self.ring[self.current].1 == self.sub_capacity {
                self.rotate();
            }
            let (counts, n) = &mut self.ring[self.current];
            for &b in row {
                counts[b as usize] += 1;
                self.total[b as usize] += 1;
            }
            *n += 1;
            self.rows += 1;
        }
    }

    /// Adds a block of `rows` rows counted by [`Reference::count_rows`] to
    /// the newest sub-window whole (moving on first if it is full): for
    /// small blocks, which may fill a sub-window past its size by less
    /// than a block.
    pub fn add_block(&mut self, counts: &[u32], rows: usize) {
        if rows == 0 {
            return;
        }
        if self.ring[self.current].1 >= self.sub_capacity {
            self.rotate();
        }
        let (ring, n) = &mut self.ring[self.current];
        for ((r, t), &k) in ring.iter_mut().zip(&mut self.total).zip(counts) {
            *r += k;
            *t += u64::from(k);
        }
        *n += rows;
        self.rows += rows;
    }

    /// Moves to the next sub-window, dropping what it held.
    fn rotate(&mut self) {
        self.current = (self.current + 1) % self.ring.len();
        let (counts, n) = &mut self.ring[self.current];
        for (t, c) in self.total.iter_mut().zip(counts.iter_mut()) {
            *t -= u64::from(*c);
            *c = 0;
        }
        self.rows -= *n;
        *n = 0;
    }

    /// The PSI of each column over the window (`None` while it is empty).
    pub fn psi(&self, reference: &Reference) -> Vec<Option<f64>> {
        reference
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                psi(
                    &c.expected,
                    &self.total[self.offsets[j]..self.offsets[j + 1]],
                )
            })
            .collect()
    }

    /// Width of the counts (every column's bins).
    pub fn width(&self) -> usize {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    fn binned(r: &Reference, rows: &[f32]) -> Vec<u32> {
        let mut out = vec![7; 3];
        r.bin_rows(rows, &mut out);
        out
    }

    fn normal_rows(n: usize, shift: f32, seed: u64) -> Vec<f32> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .flat_map(|_| {
                let x: f32 = StandardNormal.sample(&mut rng);
                let code = if rng.random::<f32>() < 0.7 { 0.0 } else { 1.0 };
                [x + shift, code]
            })
            .collect()
    }

    #[test]
    fn deciles_split_training_rows_into_tenths_and_missing_is_a_bin() {
        let rows: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let r = Reference::fit(&rows, 1, &[None]);
        let c = &r.columns[0];
        assert_eq!(
            c.bins,
            Bins::Numeric {
                edges: (1..10).map(|k| (k * 100) as f32).collect()
            }
        );
        assert_eq!(c.expected.len(), 11);
        for e in &c.expected[..10] {
            assert!((e - 0.1).abs() < 1e-12, "{e}");
        }
        assert_eq!(c.expected[10], 0.0);
        assert_eq!(c.bins.of(-5.0), 0);
        assert_eq!(c.bins.of(100.0), 1);
        assert_eq!(c.bins.of(1e9), 9);
        assert_eq!(c.bins.of(f32::NAN), 10);
        r.check(1).unwrap();
    }

    #[test]
    fn ties_and_constants_merge_bins_and_codes_bin_by_value() {
        // 80% zeros: one edge at most below the tail
        let rows: Vec<f32> = (0..100)
            .map(|i| if i < 80 { 0.0 } else { i as f32 })
            .collect();
        let r = Reference::fit(&rows, 1, &[None]);
        let Bins::Numeric { edges } = &r.columns[0].bins else {
            panic!()
        };
        assert_eq!(edges, &[80.0, 90.0]);
        assert!((r.columns[0].expected[0] - 0.8).abs() < 1e-12);
        let constant = Reference::fit(&[3.0; 10], 1, &[None]);
        assert_eq!(constant.columns[0].bins, Bins::Numeric { edges: vec![] });
        assert_eq!(constant.columns[0].expected, vec![1.0, 0.0]);
        // vocabulary of 2: codes 0, 1, other 2, missing
        let cat = Reference::fit(&[0.0, 1.0, 1.0, 2.0, f32::NAN], 1, &[Some(2)]);
        let c = &cat.columns[0];
        assert_eq!(c.bins.len(), 4);
        assert_eq!(c.expected, vec![0.2, 0.4, 0.2, 0.2]);
        assert_eq!(c.bins.of(7.0), 2);
        assert_eq!(c.bins.of(-1.0), 2);
    }

    #[test]
    fn psi_matches_the_formula_and_is_finite_for_empty_bins() {
        // by hand (Python): (0.3-0.5)·ln(0.6) + (0.7-0.5)·ln(1.4) = 0.16945957207744072
        let p = psi(&[0.5, 0.5], &[3, 7]).unwrap();
        assert!((p - 0.169_459_572_077_440_72).abs() < 1e-12, "{p}");
        assert_eq!(psi(&[0.5, 0.5], &[5, 5]), Some(0.0));
        assert_eq!(psi(&[0.5, 0.5], &[0, 0]), None);
        let empty = psi(&[1.0, 0.0], &[0, 10]).unwrap();
        // both floored at EPSILON: (1 - 1e-4)·ln(1e4)·2
        assert!(empty.is_finite() && (empty - 2.0 * 0.9999 * 1e4f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn in_distribution_rows_are_stable_and_shifted_ones_are_not() {
        let cats = [None, Some(1)];
        let train = normal_rows(20_000, 0.0, 1);
        let r = Reference::fit(&train, 2, &cats);
        r.check(2).unwrap();
        let mut w = Window::new(&r, 5_000);
        let fresh = normal_rows(5_000, 0.0, 2);
        w.add(&binned(&r, &fresh));
        let stable = w.psi(&r);
        for p in &stable {
            let p = p.unwrap();
            assert!((0.0..0.01).contains(&p), "{p}");
        }
        let shifted = normal_rows(5_000, 1.0, 3);
        w.add(&binned(&r, &shifted));
        let moved = w.psi(&r);
        assert!(moved[0].unwrap() > 0.25, "{moved:?}");
        // the category share did not move
        assert!(moved[1].unwrap() < 0.01, "{moved:?}");
    }

    #[test]
    fn the_window_forgets_whole_sub_windows() {
        let r = Reference::fit(&[0.0, 1.0], 1, &[Some(2)]);
        let mut w = Window::new(&r, 100);
        assert_eq!(w.psi(&r), vec![None]);
        let zeros = binned(&r, &[0.0; 100]);
        w.add(&zeros);
        assert_eq!(w.rows(), 100);
        let ones = binned(&r, &[1.0; 35]);
        w.add(&ones);
        // 4 sub-windows of zeros dropped, 10 + 10 + 10 + 5 ones in
        assert_eq!(w.rows(), 95);
        let total: u64 = w.total.iter().sum();
        assert_eq!(total, 95);
        assert_eq!(&w.total[..2], &[60, 35]);
        let ring: usize = w.ring.iter().map(|(_, n)| n).sum();
        assert_eq!(ring, 95);
    }

    #[test]
    fn blocks_count_like_rows() {
        let r = Reference::fit(&[0.0, 1.0, 2.0, 3.0, 4.0, f32::NAN], 1, &[None]);
        let rows = [0.5, 3.5, f32::NAN, 9.0];
        let mut counts = vec![0; r.total_bins()];
        assert_eq!(r.count_rows(&rows, &mut counts), 4);
        let (mut a, mut b) = (Window::new(&r, 100), Window::new(&r, 100));
        a.add(&binned(&r, &rows));
        b.add_block(&counts, 4);
        assert_eq!((a.total.clone(), a.rows()), (b.total.clone(), b.rows()));
        assert_eq!(a.psi(&r), b.psi(&r));
        // a full sub-window is left before a block goes in
        b.add(&binned(&r, &[0.5; 6]));
        b.add_block(&counts, 4);
        assert_eq!((b.current, b.rows()), (1, 14));
    }

    #[test]
    fn stored_references_are_checked_against_the_schema() {
        let mut r = Reference::fit(&[0.0, 1.0, 2.0, 3.0], 1, &[None]);
        assert!(matches!(
            r.check(2),
            Err(ReferenceError::Columns {
                found: 1,
                expected: 2
            })
        ));
        r.columns[0].expected.push(0.0);
        assert!(matches!(
            r.check(1),
            Err(ReferenceError::Column { column: 0, .. })
        ));
        // edges must rise strictly: a repeated edge is an empty bin that
        // `bin` can never fill
        let r = Reference::fit(&[0.0, 1.0, 2.0, 3.0], 1, &[None]);
        assert_eq!(r.check(1).map_err(|e| e.to_string()), Ok(()));
        let mut tied = r.clone();
        let Bins::Numeric { edges } = &mut tied.columns[0].bins else {
            panic!("numeric")
        };
        assert!(edges.len() >= 2, "{edges:?}");
        edges[1] = edges[0];
        assert!(matches!(
            tied.check(1),
            Err(ReferenceError::Column {
                column: 0,
                why: "edges not finite and strictly ascending"
            })
        ));
    }
}

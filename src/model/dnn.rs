//! The DNN: a multilayer perceptron with ReLU hidden layers and a sigmoid
//! output, trained with mini-batches of weighted binary cross-entropy and
//! Adam, Adagrad or SGD, on ndarray with preallocated buffers (no allocation
//! per batch). Initialisation and shuffling are seeded, so a seed fixes the
//! weights. Inference has a batched path (matrix products) and an
//! allocation-free single-row path for serving.

use super::{check_len, Defect, ModelError, Place, Rule, Vector};
use crate::Rng;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

/// Widest hidden layer the single-row path supports on the stack.
pub const MAX_WIDTH: usize = 1024;

/// Gradient-descent rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Adam,
    Adagrad,
    Sgd,
}

/// Checked DNN training settings (see `train::params` for defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct DnnParams {
    pub hidden_units: Vec<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f32,
    pub optimizer: Optimizer,
    pub l2: f32,
    /// Loss weight of a fraud row (1 = unweighted).
    pub pos_weight: f32,
    pub seed: u64,
    /// Epochs without a better validation AUPRC before stopping.
    pub patience: usize,
    /// Slope of the hidden activation below zero (0 = ReLU, else leaky
    /// ReLU). See [`Mlp`] for why the default leaks.
    pub leak: f32,
}

/// One fully connected layer: `out = in · w + b`, `w` is `inputs x outputs`.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// A fitted MLP over scaled features.
///
/// Hidden units are `max(z, leak * z)`. With plain ReLU (`leak = 0`) a
/// network trained on 0.17 % frauds learns units that fire on normal
/// transactions; a transaction unlike any normal one silences them all and
/// its logit is the output bias alone, so the most obvious fraud scores no
/// higher than `sigmoid(bias)` (0.6-0.8 on the Kaggle data, varying with the
/// seed). A small leak keeps those units linear below zero, so the further
/// a row lies from normal traffic, the higher its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MlpRepr", into = "MlpRepr")]
pub struct Mlp {
    layers: Vec<Layer>,
    leak: f32,
}

/// Stored form of [`Mlp`]: per layer its shape, row-major weights and bias.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MlpRepr {
    layers: Vec<DenseRepr>,
    /// Absent in artifacts written before leaky units: ReLU.
    #[serde(default)]
    leak: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DenseRepr {
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl From<Mlp> for MlpRepr {
    fn from(m: Mlp) -> MlpRepr {
        MlpRepr {
            layers: m
                .layers
                .into_iter()
                .map(|l| DenseRepr {
                    inputs: l.w.nrows(),
                    outputs: l.w.ncols(),
                    weights: l.w.iter().copied().collect(),
                    bias: l.b.to_vec(),
                })
                .collect(),
            leak: m.leak,
        }
    }
}

impl TryFrom<MlpRepr> for Mlp {
    type Error = Defect;
    /// Shapes chain from the first layer's inputs to one output, each layer
    /// 1 to [`MAX_WIDTH`] wide with as many weights and biases as its shape
    /// says, every value finite.
    fn try_from(r: MlpRepr) -> Result<Mlp, Defect> {
        if r.layers.is_empty() {
            return Err(Defect::NoLayers);
        }
        let mut layers = Vec::with_capacity(r.layers.len());
        let mut prev = r.layers[0].inputs;
        for (layer, l) in r.layers.into_iter().enumerate() {
            if l.inputs != prev {
                return Err(Defect::LayerInputs {
                    layer,
                    found: l.inputs,
                    expected: prev,
                });
            }
            if l.outputs == 0 || l.outputs > MAX_WIDTH {
                let outputs = l.outputs;
                return Err(Defect::LayerWidth { layer, outputs });
            }
            check_len(Vector::LayerBias(layer), l.bias.len(), l.outputs)?;
            let found = l.weights.len();
            let w = Array2::from_shape_vec((l.inputs, l.outputs), l.weights).map_err(|_| {
                Defect::Length {
                    of: Vector::LayerWeights(layer),
                    found,
                    expected: l.inputs * l.outputs,
                }
            })?;
            prev = l.outputs;
            layers.push(Layer {
                w,
                b: Array1::from(l.bias),
            });
        }
        if prev != 1 {
            return Err(Defect::Output(prev));
        }
        let m = Mlp {
            layers,
            leak: r.leak,
        };
        m.check()?;
        Ok(m)
    }
}

#[inline]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl super::Model for Mlp {
    fn n_features(&self) -> usize {
        self.n_inputs()
    }

    /// One row at a time for small batches (no allocation), matrix
    /// products for larger ones.
    fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        let d = self.n_inputs();
        if out.len() < 32 {
            for (r, o) in rows.chunks_exact(d).zip(out.iter_mut()) {
                *o = self.predict_row(r);
            }
            return;
        }
        match ArrayView2::from_shape((out.len(), d), rows) {
            Ok(view) => self.predict(view, out),
            Err(_) => out.fill(f32::NAN),
        }
    }
}

impl Mlp {
    /// A freshly initialised network: He-normal weights for ReLU layers,
    /// Glorot-normal for the output, zero biases.
    pub fn init(n_inputs: usize, hidden: &[usize], rng: &mut Rng) -> Mlp {
        let mut sizes = vec![n_inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(1);
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let last = i == sizes.len() - 2;
                let sd = if last {
                    (2.0 / (fan_in + fan_out) as f64).sqrt()
                } else {
                    (2.0 / fan_in as f64).sqrt()
                };
                Layer {
                    w: Array2::from_shape_simple_fn((fan_in, fan_out), || {
                        (rng.sample::<f64, _>(rand_distr::StandardNormal) * sd) as f32
                    }),
                    b: Array1::zeros(fan_out),
                }
            })
            .collect();
        Mlp { layers, leak: 0.0 }
    }

    /// The same network with hidden units leaking `leak` below zero.
    pub fn with_leak(mut self, leak: f32) -> Mlp {
        self.leak = leak;
        self
    }

    /// Slope of the hidden units below zero (0: ReLU).
    pub fn leak(&self) -> f32 {
        self.leak
    }

    /// Every weight and bias finite (shapes hold by construction).
    pub(crate) fn check(&self) -> Result<(), Defect> {
        if !(0.0..1.0).contains(&self.leak) {
            return Err(Defect::Leak(self.leak));
        }
        self.layers.iter().enumerate().try_for_each(|(i, l)| {
            let w = l.w.as_slice().unwrap_or(&[]);
            Rule::Finite.check(w, |j| Place::In(Vector::LayerWeights(i), j))?;
            let b = l.b.as_slice().unwrap_or(&[]);
            Rule::Finite.check(b, |j| Place::In(Vector::LayerBias(i), j))
        })
    }

    /// Number of inputs.
    pub fn n_inputs(&self) -> usize {
        self.layers[0].w.nrows()
    }

    /// Each layer's weights (row-major, inputs × outputs) and bias.
    pub(crate) fn layer_slices(&self) -> impl Iterator<Item = (&[f32], &[f32])> {
        self.layers
            .iter()
            .map(|l| (l.w.as_slice().unwrap_or(&[]), l.b.as_slice().unwrap_or(&[])))
    }

    /// Layer widths, inputs first.
    pub fn shape(&self) -> Vec<usize> {
        let mut v = vec![self.n_inputs()];
        v.extend(self.layers.iter().map(|l| l.w.ncols()));
        v
    }

    /// Fraud probability of one scaled row, without allocating.
    pub fn predict_row(&self, x: &[f32]) -> f32 {
        let mut a = [0f32; MAX_WIDTH];
        let mut b = [0f32; MAX_WIDTH];
        let n_in = x.len();
        a[..n_in].copy_from_slice(x);
        let mut width = n_in;
        let last = self.layers.len() - 1;
        for (li, l) in self.layers.iter().enumerate() {
            let out = l.w.ncols();
            let w = l.w.as_slice().unwrap_or(&[]);
            b[..out].copy_from_slice(l.b.as_slice().unwrap_or(&[]));
            for (i, &ai) in a[..width].iter().enumerate() {
                let row = &w[i * out..(i + 1) * out];
                for (o, &wij) in b[..out].iter_mut().zip(row) {
                    *o += ai * wij;
                }
            }
            if li != last {
                for v in &mut b[..out] {
                    *v = activate(*v, self.leak);
                }
            }
            std::mem::swap(&mut a, &mut b);
            width = out;
        }
        sigmoid(a[0])
    }

    /// Fraud probabilities of scaled rows (`n x inputs`), in chunks of
    /// matrix products.
    pub fn predict(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        const CHUNK: usize = 2048;
        let mut bufs: Vec<Array2<f32>> = self
            .layers
            .iter()
            .map(|l| Array2::zeros((CHUNK.min(x.nrows()), l.w.ncols())))
            .collect();
        for (xc, oc) in x
            .axis_chunks_iter(Axis(0), CHUNK)
            .zip(out.chunks_mut(CHUNK))
        {
            let n = xc.nrows();
            forward(&self.layers, self.leak, xc, &mut bufs, n);
            let last = bufs.len() - 1;
            for (o, z) in oc.iter_mut().zip(bufs[last].slice(s![..n, 0])) {
                *o = sigmoid(*z);
            }
        }
    }
}

/// A hidden unit's output: `z` above zero, `leak * z` below.
#[inline]
fn activate(z: f32, leak: f32) -> f32 {
    if z > 0.0 {
        z
    } else {
        leak * z
    }
}

/// Forward pass into `acts` (activated for hidden layers, logits for the
/// last), using the first `n` rows of each buffer.
fn forward(
    layers: &[Layer],
    leak: f32,
    x: ArrayView2<'_, f32>,
    acts: &mut [Array2<f32>],
    n: usize,
) {
    let last = layers.len() - 1;
    for li in 0..layers.len() {
        let (before, rest) = acts.split_at_mut(li);
        let out = &mut rest[0];
        let mut out = out.slice_mut(s![..n, ..]);
        out.assign(
            &layers[li]
                .b
                .broadcast((n, layers[li].b.len()))
                .expect("bias matches layer width"),
        );
        if li == 0 {
            general_mat_mul(1.0, &x, &layers[li].w, 1.0, &mut out);
        } else {
            general_mat_mul(
                1.0,
                &before[li - 1].slice(s![..n, ..]),
                &layers[li].w,
                1.0,
                &mut out,
            );
        }
        if li != last {
            out.mapv_inplace(|v| activate(v, leak));
        }
    }
}

/// Optimizer state for one parameter tensor.
#[derive(Debug, Clone)]
struct Slot {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Slot {
    fn new(n: usize, v0: f32) -> Slot {
        Slot {
            m: vec![0.0; n],
            v: vec![v0; n],
        }
    }
}

fn step(opt: Optimizer, lr: f32, t: i32, p: &mut [f32], g: &[f32], s: &mut Slot) {
    match opt {
        Optimizer::Adam => {
            let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-7f32);
            let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(&mut s.m).zip(&mut s.v) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= lr_t * *m / (v.sqrt() + eps);
            }
        }
        Optimizer::Adagrad => {
            for ((p, &g), v) in p.iter_mut().zip(g).zip(&mut s.v) {
                *v += g * g;
                *p -= lr * g / (v.sqrt() + 1e-7);
            }
        }
        Optimizer::Sgd => {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= lr * g;
            }
        }
    }
}

/// What happened during one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_auprc: Option<f64>,
}

/// An epoch whose mean loss exceeds this many times the untrained
/// network's (its first batch's, at least 1) has diverged: steps too large
/// throw the weights far out, where the loss is huge even while finite.
const LOSS_BLOW_UP: f64 = 100.0;

/// What a diverged DNN fit tells the user to change.
pub const DIVERGED_HINT: &str =
    "lower the hyperparameter learning_rate (or l2 and class_weight when they are large)";

impl Mlp {
    /// True when every weight and bias is a finite number.
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.w.iter().chain(&l.b).all(|v| v.is_finite()))
    }
}

/// Trains an MLP on scaled row-major features. `valid` (scaled rows and
/// labels) drives early stopping: the weights of the epoch with the best
/// validation AUPRC are kept. `on_epoch` sees each epoch; `stop` is polled
/// between batches and aborts the fit when it returns true
/// ([`ModelError::Interrupted`]). An epoch whose loss blows up (see
/// [`LOSS_BLOW_UP`]) or whose weights stop being finite ends the fit
/// ([`ModelError::Diverged`]).
pub fn fit(
    p: &DnnParams,
    x: &[f32],
    y: &[u8],
    n_inputs: usize,
    valid: Option<(&[f32], &[u8])>,
    on_epoch: &mut dyn FnMut(&Epoch),
    stop: &dyn Fn() -> bool,
) -> Result<Mlp, ModelError> {
    let n = y.len();
    let mut rng = Rng::seed_from_u64(p.seed);
    let mut net = Mlp::init(n_inputs, &p.hidden_units, &mut rng).with_leak(p.leak);
    let bs = p.batch_size.min(n).max(1);
    let widths: Vec<usize> = net.layers.iter().map(|l| l.w.ncols()).collect();
    let mut acts: Vec<Array2<f32>> = widths.iter().map(|&w| Array2::zeros((bs, w))).collect();
    let mut deltas: Vec<Array2<f32>> = widths.iter().map(|&w| Array2::zeros((bs, w))).collect();
    let mut grads_w: Vec<Array2<f32>> = net
        .layers
        .iter()
        .map(|l| Array2::zeros(l.w.dim()))
        .collect();
    let mut grads_b: Vec<Array1<f32>> = widths.iter().map(|&w| Array1::zeros(w)).collect();
    let v0 = if p.optimizer == Optimizer::Adagrad {
        0.1
    } else {
        0.0
    };
    let mut slots_w: Vec<Slot> = net
        .layers
        .iter()
        .map(|l| Slot::new(l.w.len(), v0))
        .collect();
    let mut slots_b: Vec<Slot> = widths.iter().map(|&w| Slot::new(w, v0)).collect();
    let mut xb = Array2::<f32>::zeros((bs, n_inputs));
    let mut yb = vec![0u8; bs];
    let mut order: Vec<usize> = (0..n).collect();
    let mut t = 0i32;
    // Mean loss of the first batch, before any step.
    let mut untrained_loss = 1f64;
    let last = net.layers.len() - 1;
    let mut best: Option<(f64, Mlp)> = None;
    let mut since_best = 0;
    let mut val_scores = valid
        .map(|(_, vy)| vec![0f32; vy.len()])
        .unwrap_or_default();

    for epoch in 1..=p.epochs {
        rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
        let mut loss_sum = 0f64;
        for (bi, batch) in order.chunks(bs).enumerate() {
            if bi % 64 == 0 && stop() {
                return Err(ModelError::Interrupted {
                    done: epoch - 1,
                    total: p.epochs,
                    unit: "epochs done",
                });
            }
            let m = batch.len();
            for (r, &i) in batch.iter().enumerate() {
                xb.row_mut(r)
                    .as_slice_mut()
                    .expect("rows of a standard-layout array are contiguous")
                    .copy_from_slice(&x[i * n_inputs..(i + 1) * n_inputs]);
                yb[r] = y[i];
            }
            forward(&net.layers, net.leak, xb.slice(s![..m, ..]), &mut acts, m);
            // Output delta: d(mean weighted BCE)/dz = w (sigmoid(z) - y) / m.
            {
                let z = acts[last].slice(s![..m, 0]);
                let mut d = deltas[last].slice_mut(s![..m, 0]);
                for ((d, &z), &yy) in d.iter_mut().zip(z.iter()).zip(&yb[..m]) {
                    let (target, w) = if yy == 1 {
                        (1.0, p.pos_weight)
                    } else {
                        (0.0, 1.0)
                    };
                    loss_sum += f64::from(w * (z.max(0.0) - z * target + (-z.abs()).exp().ln_1p()));
                    *d = w * (sigmoid(z) - target) / m as f32;
                }
            }
            if t == 0 {
                untrained_loss = untrained_loss.max(loss_sum / m as f64);
            }
            for li in (0..=last).rev() {
                let input = if li == 0 {
                    xb.slice(s![..m, ..])
                } else {
                    acts[li - 1].slice(s![..m, ..])
                };
                let delta = deltas[li].slice(s![..m, ..]);
                general_mat_mul(1.0, &input.t(), &delta, 0.0, &mut grads_w[li]);
                grads_b[li].assign(&delta.sum_axis(Axis(0)));
                if p.l2 > 0.0 {
                    grads_w[li].scaled_add(p.l2, &net.layers[li].w);
                }
                if li > 0 {
                    let (lo, hi) = deltas.split_at_mut(li);
                    let mut prev = lo[li - 1].slice_mut(s![..m, ..]);
                    general_mat_mul(
                        1.0,
                        &hi[0].slice(s![..m, ..]),
                        &net.layers[li].w.t(),
                        0.0,
                        &mut prev,
                    );
                    // The unit's slope: 1 above zero, `leak` below (the
                    // activation's sign is its input's, as leak >= 0).
                    let leak = p.leak;
                    prev.zip_mut_with(&acts[li - 1].slice(s![..m, ..]), |d, &a| {
                        if a <= 0.0 {
                            *d *= leak
                        }
                    });
                }
            }
            t += 1;
            for li in 0..=last {
                let layer = &mut net.layers[li];
                step(
                    p.optimizer,
                    p.learning_rate,
                    t,
                    layer.w.as_slice_mut().expect("weights are contiguous"),
                    grads_w[li].as_slice().expect("gradients are contiguous"),
                    &mut slots_w[li],
                );
                step(
                    p.optimizer,
                    p.learning_rate,
                    t,
                    layer.b.as_slice_mut().expect("biases are contiguous"),
                    grads_b[li].as_slice().expect("gradients are contiguous"),
                    &mut slots_b[li],
                );
            }
        }
        let mean_loss = loss_sum / n as f64;
        let blown_up = mean_loss.is_nan() || mean_loss > LOSS_BLOW_UP * untrained_loss;
        if blown_up || !net.is_finite() {
            return Err(ModelError::Diverged {
                model: super::ModelKind::Dnn,
                epoch: Some(epoch),
                hint: DIVERGED_HINT,
            });
        }
        let val_auprc = valid.map(|(vx, vy)| {
            let view = ArrayView2::from_shape((vy.len(), n_inputs), vx)
                .expect("validation features match the label count");
            net.predict(view, &mut val_scores);
            crate::metrics::average_precision(&val_scores, vy)
        });
        on_epoch(&Epoch {
            epoch,
            train_loss: mean_loss,
            val_auprc,
        });
        if let Some(ap) = val_auprc {
            let ap = if ap.is_nan() { 0.0 } else { ap };
            if best.as_ref().is_none_or(|(b, _)| ap > *b) {
                best = Some((ap, net.clone()));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= p.patience {
                    break;
                }
            }
        }
    }
    Ok(best.map_or(net, |(_, m)| m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DnnParams {
        DnnParams {
            hidden_units: vec![8, 4],
            epochs: 30,
            batch_size: 16,
            learning_rate: 0.01,
            optimizer: Optimizer::Adam,
            l2: 0.0,
            pos_weight: 1.0,
            seed: 7,
            patience: 100,
            leak: 0.3,
        }
    }

    /// Two features; fraud when x0 + x1 > 1 — a line an MLP must learn.
    fn toy(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = Rng::seed_from_u64(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b) = (rng.random::<f64>() as f32, rng.random::<f64>() as f32);
            x.extend([a * 2.0 - 1.0, b * 2.0 - 1.0]);
            y.push(u8::from(a + b > 1.0));
        }
        (x, y)
    }

    #[test]
    fn learns_a_separable_problem_with_each_optimizer() {
        let (x, y) = toy(2000, 1);
        for (opt, lr) in [
            (Optimizer::Adam, 0.01),
            (Optimizer::Adagrad, 0.1),
            (Optimizer::Sgd, 0.5),
        ] {
            let p = DnnParams {
                optimizer: opt,
                learning_rate: lr,
                ..params()
            };
            let net = fit(&p, &x, &y, 2, None, &mut |_| {}, &|| false).unwrap();
            let mut s = vec![0f32; y.len()];
            net.predict(ArrayView2::from_shape((y.len(), 2), &x).unwrap(), &mut s);
            let auc = crate::metrics::auc_roc(&s, &y);
            assert!(auc > 0.98, "{opt:?}: auc {auc}");
        }
    }

    #[test]
    fn seeded_and_single_row_matches_batch() {
        let (x, y) = toy(500, 2);
        let a = fit(&params(), &x, &y, 2, None, &mut |_| {}, &|| false).unwrap();
        let b = fit(&params(), &x, &y, 2, None, &mut |_| {}, &|| false).unwrap();
        assert_eq!(a, b, "same seed, same weights");
        let mut s = vec![0f32; y.len()];
        a.predict(ArrayView2::from_shape((y.len(), 2), &x).unwrap(), &mut s);
        for i in 0..y.len() {
            let one = a.predict_row(&x[i * 2..i * 2 + 2]);
            assert!((one - s[i]).abs() < 1e-5, "{one} vs {}", s[i]);
        }
    }

    #[test]
    fn early_stopping_reports_epochs_and_honours_stop() {
        let (x, y) = toy(400, 3);
        let (vx, vy) = toy(200, 4);
        let mut seen = Vec::new();
        let p = DnnParams {
            patience: 2,
            ..params()
        };
        fit(
            &p,
            &x,
            &y,
            2,
            Some((&vx, &vy)),
            &mut |e| seen.push(e.clone()),
            &|| false,
        )
        .unwrap();
        assert!(!seen.is_empty() && seen.iter().all(|e| e.val_auprc.is_some()));
        let e = fit(&p, &x, &y, 2, None, &mut |_| {}, &|| true).unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Interrupted {
                    done: 0,
                    total: 30,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    /// A huge SGD step once gave NaN weights and, through the metrics, an
    /// endless loop (issue 10, item 1); or, finite, a dead network with
    /// AUC 0.5 that trained "successfully". With `l2 = 1` each step
    /// multiplies the weights by `1 - learning_rate * l2 = -999`: infinite
    /// within an epoch; without it the loss blows up.
    #[test]
    fn a_diverging_fit_is_an_error_that_names_the_learning_rate() {
        let (x, y) = toy(400, 5);
        let (vx, vy) = toy(100, 6);
        for l2 in [1.0, 0.0] {
            let p = DnnParams {
                optimizer: Optimizer::Sgd,
                learning_rate: 1000.0,
                l2,
                ..params()
            };
            let mut epochs = 0;
            let e = fit(
                &p,
                &x,
                &y,
                2,
                Some((&vx, &vy)),
                &mut |_| epochs += 1,
                &|| false,
            )
            .unwrap_err();
            assert!(
                matches!(e, ModelError::Diverged { epoch: Some(1), .. }),
                "l2 {l2}: {e:?}"
            );
            assert!(e.to_string().contains("learning_rate"), "{e}");
            assert_eq!(
                epochs, 0,
                "stopped in the diverging epoch, before reporting it"
            );
        }
    }

    /// One input, one hidden unit `h = act(x)`, logit `-h`: a unit that
    /// fires on "normal" (positive) inputs and votes against fraud.
    fn one_unit(leak: &str) -> Mlp {
        let json = format!(
            r#"{{"layers": [{{"inputs": 1, "outputs": 1, "weights": [1.0], "bias": [0.0]}},
                {{"inputs": 1, "outputs": 1, "weights": [-1.0], "bias": [0.0]}}]{leak}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn leaky_units_extrapolate_where_relu_caps_at_the_bias() {
        // Written before leaky units (no "leak"): plain ReLU, so every
        // negative input silences the unit and scores sigmoid(0).
        let relu = one_unit("");
        assert_eq!(relu.leak(), 0.0);
        let leaky = one_unit(r#", "leak": 0.3"#);
        for x in [-1f32, -10.0, -100.0] {
            assert!((relu.predict_row(&[x]) - 0.5).abs() < 1e-6);
            let want = sigmoid(0.3 * -x);
            assert!((leaky.predict_row(&[x]) - want).abs() < 1e-6, "{x}");
            let mut batch = vec![0f32; 40];
            leaky.predict(
                ArrayView2::from_shape((40, 1), &[x; 40]).unwrap(),
                &mut batch,
            );
            assert!(batch.iter().all(|s| (s - want).abs() < 1e-6));
        }
        // above zero both are the identity
        assert!((leaky.predict_row(&[2.0]) - sigmoid(-2.0)).abs() < 1e-6);
        let back: Mlp = serde_json::from_str(&serde_json::to_string(&leaky).unwrap()).unwrap();
        assert_eq!(back, leaky);
        for bad in [r#", "leak": 1.0"#, r#", "leak": -0.1"#] {
            let json = format!(
                r#"{{"layers": [{{"inputs": 1, "outputs": 1, "weights": [1.0], "bias": [0.0]}}]{bad}}}"#
            );
            assert!(serde_json::from_str::<Mlp>(&json).is_err(), "{bad}");
        }
    }

    /// Rare frauds (about 3 %) lie just outside a square of normal
    /// transactions. A transaction much further out is the most obvious
    /// fraud of all: leaky units score it near 1, as they do the frauds they
    /// were fitted on.
    #[test]
    fn rare_frauds_far_from_normal_traffic_score_confidently() {
        let mut rng = Rng::seed_from_u64(11);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..6000 {
            let (a, b) = (
                rng.random::<f32>() * 2.0 - 1.0,
                rng.random::<f32>() * 2.0 - 1.0,
            );
            if i % 32 == 0 {
                // a fraud: pushed out to 1.5..2.5 along a random diagonal
                let r = 1.5 + rng.random::<f32>();
                x.extend([a.signum() * r, b.signum() * r]);
                y.push(1);
            } else {
                x.extend([a, b]);
                y.push(0);
            }
        }
        let p = DnnParams {
            hidden_units: vec![10, 20, 10],
            epochs: 10,
            batch_size: 64,
            learning_rate: 0.003,
            ..params()
        };
        let net = fit(&p, &x, &y, 2, None, &mut |_| {}, &|| false).unwrap();
        assert_eq!(net.leak(), 0.3);
        let far = [[6f32, 6.0], [-6.0, 6.0], [6.0, -6.0], [-6.0, -6.0]];
        let scores: Vec<f32> = far.iter().map(|r| net.predict_row(r)).collect();
        assert!(scores.iter().all(|&s| s >= 0.95), "{scores:?}");
        let inside = net.predict_row(&[0.0, 0.0]);
        assert!(inside < 0.05, "{inside}");
    }

    #[test]
    fn stored_form_round_trips_and_is_checked() {
        let net = Mlp::init(29, &[10, 20, 10], &mut Rng::seed_from_u64(1));
        let json = serde_json::to_string(&net).unwrap();
        let back: Mlp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, net);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["layers"][1]["inputs"] = 11.into();
        assert!(serde_json::from_value::<Mlp>(v).is_err());
    }
}

//! Criterion benches of the attributions (issue 13, item 4): one row and a
//! 1,000-row batch explained by the forest (100 trees, depth ≤ 12, the
//! defaults), the booster (130 trees of 31 leaves) and their blend — the
//! shape of the default model on the Kaggle data — fitted on synthetic lab
//! rows. With `CCFRAUD_EXPLAIN_MODEL_DIR` set to a model folder, its
//! artifact's models are benched instead (e.g. a real `ccfraud train`).
//!
//! `cargo bench --bench explain`

use ccfraud::data::N_FEATURES;
use ccfraud::metrics::Report;
use ccfraud::model::blend::{Blend, Member};
use ccfraud::model::forest::{Forest, ForestParams};
use ccfraud::model::gbdt::{self, GbdtParams};
use ccfraud::model::{Artifact, Estimator, EvaluatedOn, ModelKind, Provenance, TrainedModel};
use ccfraud::Rng;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng as _, SeedableRng};
use std::hint::black_box;

fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let mut rng = Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * N_FEATURES);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let fraud = rng.random::<f64>() < 0.01;
        for j in 0..N_FEATURES {
            x.push(
                (rng.sample::<f64, _>(rand_distr::StandardNormal)
                    + if fraud && j % 4 == 0 { 1.5 } else { 0.0 }) as f32,
            );
        }
        y.push(u8::from(fraud));
    }
    (x, y)
}

fn model(estimator: Estimator) -> TrainedModel {
    let provenance = Provenance {
        params: serde_json::Value::Null,
        fit_seconds: 0.0,
        validation: Report::new(&[], &[], 0.5),
        evaluation: Report::new(&[], &[], 0.5),
        evaluated_on: EvaluatedOn::Test,
        intervals: None,
        calibration: None,
    };
    TrainedModel::new(
        0.5,
        None,
        estimator,
        provenance,
        std::sync::Arc::new(ccfraud::schema::Schema::lab()),
    )
    .expect("a valid model")
}

/// The models to bench: a model folder's, or synthetic default-sized ones.
fn models() -> Vec<TrainedModel> {
    if let Some(dir) = std::env::var_os("CCFRAUD_EXPLAIN_MODEL_DIR") {
        let a = Artifact::load(std::path::Path::new(&dir)).expect("a model folder");
        return a.models().to_vec();
    }
    let (x, y) = data(100_000, 1);
    let fp = ForestParams {
        n_trees: 100,
        max_depth: 12,
        min_samples_leaf: 1,
        normal_fraction: 0.25,
        seed: 42,
    };
    let forest = model(Estimator::Forest(
        Forest::fit(&fp, &x, &y, N_FEATURES, &|| false).expect("forest fits"),
    ));
    let gp = GbdtParams {
        rounds: 130,
        early_stopping_rounds: 0,
        ..GbdtParams::default()
    };
    let cats = [None; N_FEATURES];
    let booster =
        gbdt::fit(&gp, &x, &y, N_FEATURES, &cats, None, &mut |_| {}, &|| false).expect("gbdt fits");
    let gbdt = model(Estimator::Gbdt(booster));
    let members = vec![
        Member {
            model: ModelKind::Gbdt,
            weight: 0.6,
        },
        Member {
            model: ModelKind::Forest,
            weight: 0.4,
        },
    ];
    let blend = Blend::new(members, &[forest.clone(), gbdt.clone()]).expect("a blend");
    let blend = model(Estimator::Blend(blend));
    vec![forest, gbdt, blend]
}

/// CPU time this thread has used (not wall time: the figure does not
/// depend on what else the machine runs, as long as it has a core).
fn thread_cpu() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn explain(c: &mut Criterion) {
    let ms = models();
    let (x, _) = data(1000, 2);
    for m in &ms {
        // one row at a time, on this thread
        let t = thread_cpu();
        for r in x.chunks(N_FEATURES).take(300) {
            black_box(m.explain(r));
        }
        let per_row = (thread_cpu() - t) / 300;
        eprintln!("{}: {per_row:?} of CPU a row, one row a call", m.kind());
    }
    let mut g = c.benchmark_group("explain");
    g.sample_size(20);
    for m in &ms {
        if let Estimator::Forest(f) = m.estimator() {
            let nodes: usize = f.trees().iter().map(|t| t.nodes.len()).sum();
            eprintln!("forest: {} trees, {nodes} nodes", f.trees().len());
        }
        for n in [1usize, 1000] {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(m.kind().name(), n), &n, |b, &n| {
                b.iter(|| black_box(m.explain(black_box(&x[..n * N_FEATURES]))))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, explain);
criterion_main!(benches);

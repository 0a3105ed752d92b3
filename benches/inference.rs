//! Criterion benches of the hot paths: model inference per batch size (DNN,
//! logistic, forest), request parsing, and one DNN training epoch on a
//! synthetic 227,845-row set (the size of the standard training split).

use ccfraud::data::N_FEATURES;
use ccfraud::metrics::Report;
use ccfraud::model::dnn::{self, DnnParams, Optimizer};
use ccfraud::model::forest::{Forest, ForestParams};
use ccfraud::model::logistic::Logistic;
use ccfraud::model::scaler::Scaler;
use ccfraud::model::{Estimator, EvaluatedOn, Model, Provenance, TrainedModel};
use ccfraud::serve::request::{parse, Format};
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
                    + if fraud && j % 4 == 0 { 2.0 } else { 0.0 }) as f32,
            );
        }
        y.push(u8::from(fraud));
    }
    (x, y)
}

fn model(estimator: Estimator, scaler: Option<Scaler>) -> TrainedModel {
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
        scaler,
        estimator,
        provenance,
        std::sync::Arc::new(ccfraud::schema::Schema::lab()),
    )
    .expect("a valid model")
}

fn dnn_params(epochs: usize) -> DnnParams {
    DnnParams {
        hidden_units: vec![10, 20, 10],
        epochs,
        batch_size: 256,
        learning_rate: 1e-3,
        optimizer: Optimizer::Adam,
        l2: 0.0,
        pos_weight: 1.0,
        seed: 1,
        patience: 100,
        leak: 0.3,
    }
}

fn inference(c: &mut Criterion) {
    let (x, y) = data(20_000, 1);
    let scaler = Scaler::fit(&x, N_FEATURES);
    let xs = scaler.transform(&x);
    let net = dnn::fit(
        &dnn_params(1),
        &xs,
        &y,
        N_FEATURES,
        None,
        &mut |_| {},
        &|| false,
    )
    .unwrap();
    let lr = Logistic::fit(
        &ccfraud::model::logistic::LogisticParams {
            l2: 1.0,
            max_iterations: 50,
            pos_weight: 1.0,
        },
        &xs,
        &y,
        N_FEATURES,
        &|| false,
    )
    .unwrap();
    let forest = Forest::fit(
        &ForestParams {
            n_trees: 100,
            max_depth: 12,
            min_samples_leaf: 1,
            normal_fraction: 0.25,
            seed: 1,
        },
        &x,
        &y,
        N_FEATURES,
        &|| false,
    )
    .unwrap();
    let models = [
        model(Estimator::Dnn(net), Some(scaler.clone())),
        model(Estimator::Logistic(lr), Some(scaler.clone())),
        model(Estimator::Forest(forest), None),
    ];
    let mut g = c.benchmark_group("predict");
    for m in &models {
        for &n in &[1usize, 32, 1000, 10_000] {
            let rows = &x[..n * N_FEATURES];
            let mut out = vec![0f32; n];
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(m.kind().name(), n), &n, |b, _| {
                b.iter(|| m.predict_proba(black_box(rows), &mut out))
            });
        }
    }
    g.finish();
}

fn parsing(c: &mut Criterion) {
    let (x, _) = data(10_000, 2);
    let row = |i: usize| {
        x[i * N_FEATURES..(i + 1) * N_FEATURES]
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let single = format!("[{}]", row(0));
    let csv: String = (0..10_000).map(|i| row(i) + "\n").collect();
    let lab = std::sync::Arc::new(ccfraud::schema::Schema::lab());
    let mut g = c.benchmark_group("parse");
    g.bench_function("json_single", |b| {
        b.iter(|| parse(Format::Json, black_box(single.as_bytes()), &lab).unwrap())
    });
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("csv_10000", |b| {
        b.iter(|| parse(Format::Csv, black_box(csv.as_bytes()), &lab).unwrap())
    });
    g.finish();
}

fn training(c: &mut Criterion) {
    let (x, y) = data(227_845, 3);
    let xs = Scaler::fit(&x, N_FEATURES).transform(&x);
    let mut g = c.benchmark_group("train");
    g.sample_size(10);
    g.bench_function("dnn_epoch_227845", |b| {
        b.iter(|| {
            dnn::fit(
                &dnn_params(1),
                &xs,
                &y,
                N_FEATURES,
                None,
                &mut |_| {},
                &|| false,
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, inference, parsing, training);
criterion_main!(benches);

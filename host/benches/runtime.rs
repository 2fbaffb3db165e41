//! Micro-benchmarks of the runtime stage, on the bundled price-sensitivity plugin:
//!
//! - `compile`: a plugin compiled and prepared by Cranelift (first loads, and every
//!   version in the end) and by Winch (swaps);
//! - `call`: one-row predict in a fresh instance with the pooling allocator, in a fresh
//!   instance allocated on demand, and in a warm (reused) pooled instance, of Cranelift's
//!   code and of Winch's;
//! - `json_to_rows`: a `/predict` body parsed and converted into plugin rows;
//! - `batch_predict`: scoring 1, 64 and 1024 rows in one call (throughput per row), as
//!   the host serves them (`predict-columns`, the answer turned into predictions);
//! - `batch_predict_winch`: the same, of Winch's code;
//! - `batch_predict_rows`: the same through the plugin's row-by-row `predict` export.
//!
//! `cargo bench -p predict-host --bench runtime` (add `-- <filter>` for one group).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use plugin_artifacts::PRICE_SENSITIVITY_WASM;
use predict_host::api::rows_from_json;
use predict_host::runtime::{
    Allocation, Answer, Compiler, Field, ModelInfo, Plugin, Prediction, Runtime, SandboxLimits,
    predictions_from_scores,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime as Executor;

/// The runbook's seed basket.
const SEED: &str = r#"{"BASKET_SIZE":"M","BASKET_TYPE":"MIXED","STORE_REGION":"LONDON","STORE_FORMAT":"LS","SPEND":125.50,"QUANTITY":3,"PROD_CODE_20":"FOOD","PROD_CODE_30":"FRESH"}"#;
const BATCH_SIZES: [usize; 3] = [1, 64, 1024];

fn new_runtime(allocation: Allocation, calls_per_instance: u32) -> Arc<Runtime> {
    let limits = SandboxLimits::DEFAULT
        .with_call_timeout(Duration::from_secs(1))
        .with_concurrent_calls(4)
        .with_calls_per_instance(calls_per_instance);
    Runtime::with_allocation(limits, None, allocation).expect("runtime")
}

/// A serving plugin compiled by `compiler` on a runtime of its own; `calls_per_instance`
/// 1 means a fresh instance for every call.
fn plugin(allocation: Allocation, calls_per_instance: u32, compiler: Compiler) -> Plugin {
    let plugin = new_runtime(allocation, calls_per_instance)
        .prepare(PRICE_SENSITIVITY_WASM, "bench", "bench", compiler)
        .expect("bundled plugin");
    assert_eq!(plugin.compiler(), compiler);
    plugin.set_serving(true);
    plugin
}

/// A JSON array of `rows` copies of the seed basket.
fn batch_body(rows: usize) -> String {
    format!("[{}]", vec![SEED; rows].join(","))
}

/// Plugin calls are async (they yield at epoch ticks); the benchmarks drive them on a
/// single-threaded executor, as a request task would.
fn executor() -> Executor {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("executor")
}

fn rows(info: &ModelInfo, body: &str) -> Vec<Vec<Field>> {
    rows_from_json(body, &info.inputs, usize::MAX).expect("rows").0
}

/// Scores `rows` as the host serves a request: by column when the plugin can, the
/// answer turned into one prediction per row.
fn score(tokio: &Executor, plugin: &Plugin, info: &ModelInfo, rows: &[Vec<Field>]) -> Vec<Prediction> {
    match tokio.block_on(plugin.predict(rows, &info.inputs)).expect("call").expect("answer") {
        Answer::Predictions(predictions) => predictions,
        Answer::Scores(scores) => predictions_from_scores(scores, &info.labels, rows.len()).expect("shape"),
    }
}

fn compile(c: &mut Criterion) {
    let runtime = new_runtime(Allocation::Pooling, u32::MAX);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for compiler in [Compiler::Cranelift, Compiler::Winch] {
        group.bench_function(compiler.name(), |b| {
            b.iter(|| {
                black_box(
                    runtime.prepare(PRICE_SENSITIVITY_WASM, "bench", "bench", compiler).expect("plugin"),
                )
            })
        });
    }
    group.finish();
}

fn call(c: &mut Criterion) {
    let tokio = executor();
    let mut group = c.benchmark_group("call");
    let variants = [
        ("pooling_fresh_instance", Allocation::Pooling, 1, Compiler::Cranelift),
        ("on_demand_fresh_instance", Allocation::OnDemand, 1, Compiler::Cranelift),
        ("pooling_warm_instance", Allocation::Pooling, u32::MAX, Compiler::Cranelift),
        ("pooling_warm_instance_winch", Allocation::Pooling, u32::MAX, Compiler::Winch),
    ];
    for (name, allocation, calls_per_instance, compiler) in variants {
        let plugin = plugin(allocation, calls_per_instance, compiler);
        let info = tokio.block_on(plugin.info()).expect("info");
        let row = rows(&info, SEED);
        group.bench_function(name, |b| b.iter(|| black_box(score(&tokio, &plugin, &info, black_box(&row)))));
    }
    group.finish();
}

fn json_to_rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_to_rows");
    let bundled = plugin(Allocation::Pooling, 1, Compiler::Cranelift);
    let inputs = executor().block_on(bundled.info()).expect("info").inputs;
    for size in BATCH_SIZES {
        let body = batch_body(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter(|| black_box(rows_from_json(black_box(body), &inputs, usize::MAX).expect("rows")))
        });
    }
    group.finish();
}

fn batch_predict(c: &mut Criterion) {
    let tokio = executor();
    let cranelift = plugin(Allocation::Pooling, u32::MAX, Compiler::Cranelift);
    let winch = plugin(Allocation::Pooling, u32::MAX, Compiler::Winch);
    let info = tokio.block_on(cranelift.info()).expect("info");
    for (name, plugin) in [("batch_predict", &cranelift), ("batch_predict_winch", &winch)] {
        let mut group = c.benchmark_group(name);
        for size in BATCH_SIZES {
            let batch = rows(&info, &batch_body(size));
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::from_parameter(size), &batch, |b, batch| {
                b.iter(|| black_box(score(&tokio, plugin, &info, black_box(batch))))
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("batch_predict_rows");
    for size in BATCH_SIZES {
        let batch = rows(&info, &batch_body(size));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &batch, |b, batch| {
            b.iter(|| {
                black_box(
                    tokio
                        .block_on(cranelift.predict_rows(black_box(batch)))
                        .expect("call")
                        .expect("predictions"),
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = runtime;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = compile, call, json_to_rows, batch_predict
}
criterion_main!(runtime);

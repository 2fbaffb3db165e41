//! Swaps between two different plugins under continuous load: no request fails, every
//! answer names the version that produced it, and no answer mixes versions. Between the
//! bundled plugin and a fault fixture, and between the hand-written plugin and the same
//! model family packaged from a scikit-learn ONNX export.

use crate::process::HostProcess;
use crate::{EXCLUSIVE, plugin_dir_env, quantile};
use plugin_artifacts::fixtures;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ROWS: usize = 4;

/// Two plugins that take the same batch: odd versions are the first, even ones the
/// second, told apart by `is_even` on an answered row.
struct Pair {
    odd: Vec<u8>,
    even: Vec<u8>,
    is_even: Box<dyn Fn(&Value) -> bool + Send + Sync>,
}

impl Pair {
    /// Publishes `version` into `dir` the documented way: write aside, then rename.
    fn publish(&self, dir: &Path, version: u32) {
        let bytes = if version.is_multiple_of(2) { &self.even } else { &self.odd };
        let incoming = dir.join(".incoming");
        std::fs::write(&incoming, bytes).unwrap();
        std::fs::rename(incoming, dir.join(format!("model-{version}.wasm"))).unwrap();
    }
}

/// One answer as a client saw it.
struct Answer {
    status: u16,
    header: String,
    body: Value,
}

/// A batch both plugins accept: the seed basket, plus the fixture's `action`.
fn batch() -> Value {
    let row = json!({
        "BASKET_SIZE": "M", "BASKET_TYPE": "MIXED", "STORE_REGION": "LONDON", "STORE_FORMAT": "LS",
        "SPEND": 125.50, "QUANTITY": 3, "PROD_CODE_20": "FOOD", "PROD_CODE_30": "FRESH", "action": "ok"
    });
    Value::Array(vec![row; ROWS])
}

/// Checks one answer; returns the version that produced it.
fn check(answer: &Answer, pair: &Pair) -> u32 {
    assert_eq!(answer.status, 200, "failed request: {}", answer.body);
    let rows = answer.body.as_array().expect("a batch answer");
    assert_eq!(rows.len(), ROWS);
    let version: u32 = answer.header.parse().expect("x-model-version names the version");
    for row in rows {
        assert_eq!(row["model_version"], answer.header, "a row from another version: {}", answer.body);
        assert_eq!(
            (pair.is_even)(row),
            version.is_multiple_of(2),
            "version {version} answered like the other plugin: {row}"
        );
    }
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_fail_nothing_and_never_mix_versions() {
    let pair = Pair {
        odd: plugin_artifacts::PRICE_SENSITIVITY_WASM.to_vec(),
        even: std::fs::read(fixtures::MISBEHAVE).unwrap(),
        is_even: Box::new(|row| row["prediction"] == "OK"),
    };
    swaps_under_load(Arc::new(pair), 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_between_a_hand_written_and_a_packaged_onnx_plugin_fail_nothing() {
    let exported = crate::examples::exported("logistic");
    let scratch = tempfile::tempdir().unwrap();
    let packaged = scratch.path().join("packaged.wasm");
    crate::examples::package(&exported, &packaged);
    // The seed basket's probability of UM tells the models apart: 0.99936 from the
    // bundled one, 0.99295 from the scikit-learn pipeline.
    let pair = Pair {
        odd: plugin_artifacts::PRICE_SENSITIVITY_WASM.to_vec(),
        even: std::fs::read(&packaged).unwrap(),
        is_even: Box::new(|row| row["probabilities"]["UM"].as_f64().unwrap() < 0.996),
    };
    swaps_under_load(Arc::new(pair), 10).await;
}

/// `swaps` swaps between `pair`'s plugins while four clients send batches.
async fn swaps_under_load(pair: Arc<Pair>, swaps: u32) {
    let _exclusive = EXCLUSIVE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    pair.publish(dir.path(), 1);
    let host = Arc::new(HostProcess::start(&plugin_dir_env(dir.path(), &[])));
    host.wait_ready(Duration::from_secs(30)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let response =
                        host.client.post(host.url("/predict")).json(&batch()).send().await.unwrap();
                    let status = response.status().as_u16();
                    let header =
                        response.headers().get("x-model-version").map(|v| v.to_str().unwrap().to_string());
                    let body = response.json().await.unwrap_or(Value::Null);
                    answers.push(Answer { status, header: header.unwrap_or_default(), body });
                }
                answers
            })
        })
        .collect();

    let mut swap_times = Vec::new();
    for version in 2..=swaps + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let published = Instant::now();
        pair.publish(dir.path(), version);
        while host.serving_version().await != version.to_string() {
            assert!(published.elapsed() < Duration::from_secs(10), "version {version} never served");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        swap_times.push(published.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for client in clients {
        let answers = client.await.unwrap();
        let versions: Vec<u32> = answers.iter().map(|a| check(a, &pair)).collect();
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "a client went back a version: {versions:?}");
        total += answers.len();
    }
    let seen_all = host.serving_version().await == (swaps + 1).to_string();
    assert!(seen_all);
    println!(
        "{swaps} swaps under load: {total} batch requests, all 200; publish-to-serving p50 {:?}, max {:?}",
        quantile(&mut swap_times, 0.5),
        quantile(&mut swap_times, 1.0)
    );
}

//! Twenty swaps between two different plugins under continuous load: no request fails,
//! every answer names the version that produced it, and no answer mixes versions.

use crate::process::HostProcess;
use crate::{EXCLUSIVE, plugin_dir_env, quantile};
use plugin_artifacts::fixtures;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SWAPS: u32 = 20;
const ROWS: usize = 4;

/// Odd versions are the price-sensitivity model, even ones the fixture that answers `OK`.
fn plugin_for(version: u32) -> (&'static str, Vec<u8>) {
    if !version.is_multiple_of(2) {
        ("price-sensitivity", plugin_artifacts::PRICE_SENSITIVITY_WASM.to_vec())
    } else {
        ("misbehave", std::fs::read(fixtures::MISBEHAVE).unwrap())
    }
}

/// Publishes `version` into `dir` the documented way: write aside, then rename.
fn publish(dir: &Path, version: u32) {
    let (name, bytes) = plugin_for(version);
    let incoming = dir.join(".incoming");
    std::fs::write(&incoming, bytes).unwrap();
    std::fs::rename(incoming, dir.join(format!("{name}-{version}.wasm"))).unwrap();
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
fn check(answer: &Answer) -> u32 {
    assert_eq!(answer.status, 200, "failed request: {}", answer.body);
    let rows = answer.body.as_array().expect("a batch answer");
    assert_eq!(rows.len(), ROWS);
    let version: u32 = answer.header.parse().expect("x-model-version names the version");
    for row in rows {
        assert_eq!(row["model_version"], answer.header, "a row from another version: {}", answer.body);
        let is_fixture = row["prediction"] == "OK";
        assert_eq!(
            is_fixture,
            version.is_multiple_of(2),
            "version {version} answered like the other plugin: {row}"
        );
    }
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_fail_nothing_and_never_mix_versions() {
    let _exclusive = EXCLUSIVE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), 1);
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
    for version in 2..=SWAPS + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let published = Instant::now();
        publish(dir.path(), version);
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
        let versions: Vec<u32> = answers.iter().map(check).collect();
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "a client went back a version: {versions:?}");
        total += answers.len();
    }
    let seen_all = host.serving_version().await == (SWAPS + 1).to_string();
    assert!(seen_all);
    println!(
        "{SWAPS} swaps under load: {total} batch requests, all 200; publish-to-serving p50 {:?}, max {:?}",
        quantile(&mut swap_times, 0.5),
        quantile(&mut swap_times, 1.0)
    );
}

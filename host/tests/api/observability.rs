//! What operators watch: Prometheus metrics that parse with the reference parser and
//! move as known requests arrive, and JSON log lines with a request id per request and
//! one line per swap, never a request body.

use crate::helpers::{install_fixture, within};
use crate::process::{HostProcess, env_of};
use plugin_artifacts::fixtures;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// Parses a scrape with the Prometheus project's own Python parser; returns every sample
/// as `name{label="value",…}` (labels sorted) → value.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
"#;
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with prometheus-client (scripts/test.sh installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "not Prometheus text:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn scrape(host: &HostProcess) -> HashMap<String, f64> {
    let response = host.client.get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_exposition(&response.text().await.unwrap())
}

async fn predict(host: &HostProcess, body: Value, request_id: Option<&str>) -> reqwest::Response {
    let mut request = host.client.post(host.url("/predict")).json(&body);
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    request.send().await.unwrap()
}

fn misbehave_host(dir: &std::path::Path) -> HostProcess {
    install_fixture(dir, "misbehave", fixtures::MISBEHAVE);
    HostProcess::start(&env_of(&[("PLUGIN_DIR", dir.to_str().unwrap()), ("CALL_TIMEOUT_MS", "200")]))
}

fn log_entries(host: &HostProcess) -> Vec<Value> {
    parsed(&host.logs.lock().unwrap())
}

fn parsed(lines: &[String]) -> Vec<Value> {
    lines.iter().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

#[tokio::test]
async fn metrics_parse_and_move_with_known_requests() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    host.wait_ready(Duration::from_secs(30)).await;
    let before = scrape(&host).await;

    for _ in 0..3 {
        assert_eq!(predict(&host, json!({"action": "ok"}), None).await.status(), 200);
    }
    assert_eq!(predict(&host, json!({"action": "spin"}), None).await.status(), 504);
    assert_eq!(predict(&host, json!({"action": "trap"}), None).await.status(), 500);
    assert_eq!(predict(&host, json!({"wrong": "shape"}), None).await.status(), 422);
    // A version that cannot load: refused, counted, and the serving version stays.
    std::fs::write(dir.path().join("misbehave-2.wasm"), b"not a component").unwrap();
    let refused =
        within(Duration::from_secs(5), || async { host.log_text().contains("model version refused") });
    refused.await.expect("version 2 refused");
    let after = scrape(&host).await;

    let delta = |key: &str| after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0);
    let http =
        |status: u16| format!(r#"http_requests_total{{method="POST",route="/predict",status="{status}"}}"#);
    assert_eq!(delta(&http(200)), 3.0, "{after:#?}");
    assert_eq!(delta(&http(504)), 1.0);
    assert_eq!(delta(&http(500)), 1.0);
    assert_eq!(delta(&http(422)), 1.0);
    let latency = r#"http_request_duration_seconds_count{method="POST",route="/predict",status="200"}"#;
    assert_eq!(delta(latency), 3.0);
    let failures = |kind: &str| format!(r#"plugin_call_failures_total{{kind="{kind}",model_version="1"}}"#);
    assert_eq!(delta(&failures("timeout")), 1.0);
    assert_eq!(delta(&failures("trap")), 1.0);
    // The rejected row never reached the plugin; the other five calls did.
    assert_eq!(delta(r#"plugin_call_duration_seconds_count{model_version="1"}"#), 5.0);
    assert_eq!(delta(r#"model_load_failures_total{kind="component"}"#), 1.0);
    let serving =
        after.iter().find(|(k, _)| k.starts_with("model_serving{") && k.contains(r#"model_version="1""#));
    assert_eq!(serving.map(|(_, v)| *v), Some(1.0), "serving version gauge");
    assert!(after.get("model_swaps_total{}").copied().unwrap_or(0.0) >= 1.0);
    assert!(after.contains_key("http_requests_in_flight{}"), "in-flight gauge exported");
}

#[tokio::test]
async fn every_request_is_logged_with_its_id_and_a_swap_writes_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    host.wait_ready(Duration::from_secs(30)).await;

    // An incoming id is kept and returned; without one, a fresh id is made and returned.
    let response =
        predict(&host, json!({"action": "ok", "note": "SECRET-BODY-VALUE"}), Some("req-abc-123")).await;
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    let response = predict(&host, json!({"action": "trap"}), None).await;
    let minted = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(minted.len(), 36, "a UUID: {minted}");

    let request_lines = |id: &str| -> Vec<Value> {
        log_entries(&host).into_iter().filter(|e| e["span"]["request_id"] == id).collect()
    };
    let logged = within(Duration::from_secs(5), || async {
        !request_lines("req-abc-123").is_empty() && request_lines(&minted).len() >= 2
    });
    logged.await.expect("request lines logged");
    let finished = request_lines("req-abc-123");
    assert!(finished.iter().any(|e| e["status"] == 200 && e["span"]["path"] == "/predict"), "{finished:?}");
    // The failure's own line carries the request id too.
    assert!(
        request_lines(&minted).iter().any(|e| e["message"] == "prediction failed"),
        "{:?}",
        request_lines(&minted)
    );
    assert!(!host.log_text().contains("SECRET-BODY-VALUE"), "a request body reached the log");

    // A swap: exactly one JSON line naming the version.
    std::fs::copy(fixtures::MISBEHAVE, dir.path().join("misbehave-2.wasm")).unwrap();
    let swapped = within(Duration::from_secs(5), || async { host.serving_version().await == "2" });
    swapped.await.expect("version 2 served");
    let swap_lines = || -> Vec<Value> {
        log_entries(&host)
            .into_iter()
            .filter(|e| e["message"] == "model version swapped in" && e["version"] == "2")
            .collect()
    };
    // The line may still wait in its worker thread's batch (written when the thread
    // runs out of work) or in the pipe.
    let logged = within(Duration::from_secs(5), || async { !swap_lines().is_empty() });
    logged.await.expect("swap line logged");
    let swaps = swap_lines();
    assert_eq!(swaps.len(), 1, "{swaps:?}");
    assert_eq!(swaps[0]["replaced"], "1");
    // A swap compiles with Winch; the version is then compiled again with Cranelift.
    assert_eq!(swaps[0]["compiler"], "winch", "{swaps:?}");
    let recompiled = within(Duration::from_secs(10), || async {
        log_entries(&host).iter().any(|e| {
            e["message"] == "model version recompiled" && e["version"] == "2" && e["compiler"] == "cranelift"
        })
    });
    recompiled.await.expect("version 2 recompiled with Cranelift");
    assert_eq!(host.get_json("/model/info").await.1["compiler"], "cranelift");
}

/// Busy worker threads write their log lines in batches: under a burst every request still
/// gets exactly one whole line, all of them written by the time the host exits.
#[tokio::test]
async fn a_burst_is_logged_line_for_line_by_the_time_the_host_exits() {
    const CLIENTS: usize = 16;
    const PER_CLIENT: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    host.wait_ready(Duration::from_secs(30)).await;

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, url) = (host.client.clone(), host.url("/predict"));
        clients.push(tokio::spawn(async move {
            for n in 0..PER_CLIENT {
                let response = http
                    .post(&url)
                    .header("x-request-id", format!("burst-{client}-{n}"))
                    .json(&json!({"action": "ok"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    // Stop at once: whatever a worker still holds must reach stderr before the exit.
    let logs = std::sync::Arc::clone(&host.logs);
    let status = tokio::task::spawn_blocking(move || host.terminate()).await.unwrap();
    assert!(status.success(), "{status:?}");

    let burst_ids = |lines: &[String]| -> std::collections::HashSet<String> {
        parsed(lines)
            .iter()
            .filter(|e| e["message"] == "finished processing request")
            .filter_map(|e| e["span"]["request_id"].as_str().filter(|id| id.starts_with("burst-")))
            .map(str::to_string)
            .collect()
    };
    // The process has exited; its last bytes may still be on their way through the pipe.
    let all_logged = within(Duration::from_secs(5), || async {
        burst_ids(&logs.lock().unwrap()).len() >= CLIENTS * PER_CLIENT
    });
    let complete = all_logged.await.is_some();
    let lines = logs.lock().unwrap().clone();
    assert!(complete, "{} of {} request lines logged", burst_ids(&lines).len(), CLIENTS * PER_CLIENT);
    let torn: Vec<_> = lines.iter().filter(|l| serde_json::from_str::<Value>(l).is_err()).collect();
    assert!(torn.is_empty(), "lines that are not whole JSON: {torn:?}");
    let lines_per_request = parsed(&lines)
        .iter()
        .filter(|e| e["message"] == "finished processing request" && e["span"]["request_id"] == "burst-3-7")
        .count();
    assert_eq!(lines_per_request, 1);
}

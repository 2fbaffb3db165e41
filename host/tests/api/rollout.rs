//! Rolling a new version out in phases, with real plugins on a real host: a candidate
//! (`candidate`, the next version of `misbehave`) judged in shadow and canary beside the
//! stable version, promoted when healthy, rolled back when a threshold breaks, and
//! steered through the operator API. Clients never see a failure along the way.

use crate::helpers::{TestApp, spawn_ready_app, within};
use crate::process::run_tool;
use plugin_artifacts::fixtures;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const TOKEN: &str = "rollout-test-token";
/// Candidate calls a phase needs before it is judged, in the tests that judge.
const MIN_REQUESTS: &str = "200";
/// Concurrent clients of the load.
const CLIENTS: usize = 8;

/// A host on a plugin directory holding `misbehave` as version 1, rolling new versions
/// out in phases with the thresholds of `flags`.
async fn host(dir: &Path, flags: &[&str]) -> TestApp {
    std::fs::copy(fixtures::MISBEHAVE, dir.join("misbehave-1.wasm")).unwrap();
    let mut args = vec![
        "--plugin-dir",
        dir.to_str().unwrap(),
        "--admin-token",
        TOKEN,
        "--rollout-strategy",
        "phased",
        "--call-timeout-ms",
        "5000",
    ];
    args.extend_from_slice(flags);
    spawn_ready_app(&args).await
}

/// Writes `fixture` into `dir` as `misbehave-<version>` (its policy first, the plugin by
/// rename, as publishers are told to).
fn offer(dir: &Path, version: u32, fixture: &str, policy: Option<Value>) {
    if let Some(policy) = policy {
        std::fs::write(dir.join(format!("misbehave-{version}.rollout.json")), policy.to_string()).unwrap();
    }
    let partial = dir.join(format!(".misbehave-{version}.partial"));
    std::fs::copy(fixture, &partial).unwrap();
    std::fs::rename(partial, dir.join(format!("misbehave-{version}.wasm"))).unwrap();
}

/// `/model/info`'s rollout, once `check` holds of it (within 60 s).
async fn rollout_when(app: &TestApp, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..3000 {
        last = app.info().await["rollout"].clone();
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("rollout never reached {what}: {last:#}");
}

fn in_phase(version: &str, phase: &str) -> impl Fn(&Value) -> bool {
    let (version, phase) = (version.to_string(), phase.to_string());
    move |r| r["candidate_version"] == *version && r["phase"] == *phase && r["outcome"].is_null()
}

fn ended(version: &str, outcome: &str) -> impl Fn(&Value) -> bool {
    let (version, outcome) = (version.to_string(), outcome.to_string());
    move |r| r["candidate_version"] == *version && r["outcome"] == *outcome
}

/// `/predict` of one row asking `action`, with an optional routing key: status, the
/// version that answered (header) and the body's bytes.
async fn predict(app: &TestApp, action: &str, key: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut request = app.client.post(app.url("/predict")).json(&json!({ "action": action }));
    if let Some(key) = key {
        request = request.header("x-routing-key", key);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let version = response.headers().get("x-model-version").map_or("", |v| v.to_str().unwrap()).to_string();
    (status, version, response.bytes().await.unwrap().to_vec())
}

/// `clients` clients sending request `i` with `action(i)` until `stop` (or `count`
/// requests, when given); returns every (status, version) seen.
fn load(
    app: &Arc<TestApp>,
    clients: usize,
    action: fn(usize) -> String,
    count: Option<usize>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u16, String)>> {
    let (app, stop) = (Arc::clone(app), Arc::clone(stop));
    tokio::spawn(async move {
        let next = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients).map(|_| {
            let (app, stop, next) = (Arc::clone(&app), Arc::clone(&stop), Arc::clone(&next));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if count.is_some_and(|n| i >= n) {
                        break;
                    }
                    let (status, version, _) = predict(&app, &action(i), None).await;
                    seen.push((status, version));
                }
                seen
            })
        });
        let mut seen = Vec::new();
        for client in clients.collect::<Vec<_>>() {
            seen.extend(client.await.unwrap());
        }
        seen
    })
}

async fn admin(app: &TestApp, action: &str) -> (u16, Value) {
    let response =
        app.client.post(app.url(&format!("/admin/rollout/{action}"))).bearer_auth(TOKEN).send().await;
    let response = response.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn actions(rollout: &Value) -> Vec<String> {
    rollout["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_answers_its_share_and_a_routing_key_keeps_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let never = "1000000000";
    let app = host(dir.path(), &["--rollout-shadow-percent", "0", "--rollout-min-requests", never]).await;
    offer(dir.path(), 2, fixtures::CANDIDATE, Some(json!({"canary_percent": 10})));
    rollout_when(&app, "canary", in_phase("2", "canary")).await;

    let app = Arc::new(app);
    let seen =
        load(&app, CLIENTS, |_| "ok".into(), Some(10_000), &Arc::new(AtomicBool::new(false))).await.unwrap();
    assert_eq!(seen.len(), 10_000);
    assert!(seen.iter().all(|(status, _)| *status == 200), "every request answered");
    let by_candidate = seen.iter().filter(|(_, version)| version == "2").count();
    let share = by_candidate as f64 / 100.0;
    println!("canary at 10%: the candidate answered {share}% of 10,000 requests");
    assert!((8.0..=12.0).contains(&share), "the candidate answered {share}% of 10,000 requests");
    assert_eq!(by_candidate + seen.iter().filter(|(_, v)| v == "1").count(), 10_000);

    // With a key, each caller stays on one version, whichever route it comes by.
    let mut versions: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..4 {
        for caller in 0..250 {
            let key = format!("caller-{caller}");
            let version = if round % 2 == 0 {
                predict(&app, "ok", Some(&key)).await.1
            } else {
                let body = json!({"id": key, "inputs": [{"name": "action", "shape": [1], "datatype": "BYTES", "data": ["ok"]}]});
                let response = app.post_json("/v2/models/misbehave/infer", &body).await;
                assert_eq!(response.status(), 200);
                let body: Value = response.json().await.unwrap();
                body["model_version"].as_str().unwrap().to_string()
            };
            versions.entry(key).or_default().push(version);
        }
    }
    assert!(versions.values().all(|seen| seen.iter().all(|v| *v == seen[0])), "a key changed version");
    let keys_on_candidate = versions.values().filter(|seen| seen[0] == "2").count();
    println!("{keys_on_candidate} of 250 keys on the candidate, each on one version for 4 requests");
    assert!((5..=50).contains(&keys_on_candidate), "{keys_on_candidate} of 250 keys on the candidate");

    // Over gRPC, with Triton's client: by metadata, parameter or request id.
    let script = format!("{}/tests/api/rollout_grpc.py", env!("CARGO_MANIFEST_DIR"));
    let grpc = app.grpc_address.to_string();
    let output = tokio::task::spawn_blocking(move || run_tool("python3", &[&script, &grpc, "misbehave"]));
    let output = output.await.unwrap();
    assert!(output.contains("keys per version:"), "{output}");

    // Metrics are the process's, shared by the tests running beside this one: the series
    // exist, whatever their values.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("rollout_phase{phase=\"canary\"}"), "{metrics}");
    assert!(metrics.contains("rollout_calls_total{model_version=\"2\",role=\"candidate\",outcome=\"ok\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_shadow_clients_get_the_stable_answer_and_agreement_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let app = host(dir.path(), &["--rollout-min-requests", "1000000000"]).await;
    // One row in five is one the candidate answers differently.
    let action = |i: usize| if i.is_multiple_of(5) { format!("differ-{i}") } else { format!("ok-{i}") };
    let mut before = Vec::new();
    for i in 0..50 {
        before.push(predict(&app, &action(i), None).await);
    }
    offer(dir.path(), 2, fixtures::CANDIDATE, None);
    rollout_when(&app, "shadow", in_phase("2", "shadow")).await;

    for (i, expected) in before.iter().enumerate() {
        let answer = predict(&app, &action(i), None).await;
        assert_eq!(answer, *expected, "request {i}: the shadowed answer differs from the stable one");
    }
    // Agreement is counted by row: batches of five rows, one of which the candidate
    // labels differently, make it 80% whichever copies shadow work had to skip.
    for i in 0..400 {
        let batch: Vec<Value> = (0..5).map(|row| json!({ "action": action(5 * i + row) })).collect();
        let response = app.post_json("/predict", &json!(batch)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-model-version"], "1");
    }
    // Every shadowed request ends up compared, or counted as skipped.
    let settled = rollout_when(&app, "450 shadowed requests", |r| {
        let figures = &r["figures"];
        let requests =
            figures["candidate_requests"].as_u64().unwrap() + figures["shadow_skipped"].as_u64().unwrap();
        requests == 450
    });
    let figures = settled.await["figures"].clone();
    let compared = figures["compared_rows"].as_u64().unwrap();
    assert!(compared >= 100, "only {compared} of 2,050 rows were compared: {figures}");
    let agreement = figures["agreement"].as_f64().unwrap();
    println!("shadow: agreement {agreement} over {compared} compared rows (expected 0.80): {figures}");
    assert!((0.79..=0.81).contains(&agreement), "agreement {agreement}, expected 0.80: {figures}");
    assert_eq!(figures["candidate_failures"], 0);
}

/// Runs load against a candidate that breaks a threshold: it must be rolled back with
/// `reason`, refused, and no client request may fail at any point.
async fn rolled_back(flags: &[&str], action: fn(usize) -> String, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = flags.to_vec();
    flags.extend(["--rollout-min-requests", MIN_REQUESTS, "--rollout-min-duration", "2s"]);
    let app = Arc::new(host(dir.path(), &flags).await);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(&app, CLIENTS, action, None, &stop);
    offer(dir.path(), 2, fixtures::CANDIDATE, None);
    let rollout = rollout_when(&app, "a rollback", ended("2", "roll_back")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = traffic.await.unwrap();

    let failed: Vec<_> = seen.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    let last = rollout["decisions"].as_array().unwrap().last().unwrap().clone();
    println!("{} requests, none failed; rolled back: {}", seen.len(), last["reason"]);
    assert!(last["reason"].as_str().unwrap().contains(reason), "{last}");
    let info = app.info().await;
    assert_eq!(info["model_version"], "1");
    let refusal =
        info["load_errors"].as_array().unwrap().iter().find(|e| e["version"] == "2").unwrap().clone();
    assert_eq!(refusal["kind"], "rollout");
    assert!(refusal["reason"].as_str().unwrap().contains(reason));
    // Refused for good: a rescan does not judge it again.
    let reload = app.client.post(app.url("/admin/reload")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(reload.status(), 200);
    let after = app.info().await;
    assert_eq!(after["model_version"], "1");
    assert_eq!(after["rollout"]["outcome"], "roll_back");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("rollout_decisions_total{action=\"roll_back\"}"));
    assert!(!metrics.contains("model_load_failures_total{kind=\"rollout\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_failing_five_percent_in_canary_is_rolled_back_unseen_by_clients() {
    // Straight to a canary at half the traffic, so candidate failures hit the client
    // path and are retried on the stable version.
    let flags = ["--rollout-shadow-percent", "0", "--rollout-canary-percent", "50"];
    let action = |i: usize| if i.is_multiple_of(20) { format!("fail-{i}") } else { "ok".into() };
    rolled_back(&flags, action, "candidate calls failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_five_times_slower_at_p99_is_rolled_back() {
    // Latency is judged in the canary, where both versions answer clients side by side.
    let flags = ["--rollout-shadow-percent", "0", "--rollout-canary-percent", "50"];
    rolled_back(&flags, |_| "work".into(), "p99 plugin-call time").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_agreeing_on_too_few_labels_is_rolled_back() {
    let action = |i: usize| if i.is_multiple_of(5) { format!("differ-{i}") } else { "ok".into() };
    rolled_back(&[], action, "chose the stable version's label on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_candidate_is_promoted_and_operators_can_pause_abort_and_promote() {
    let dir = tempfile::tempdir().unwrap();
    let flags =
        ["--rollout-min-requests", "100", "--rollout-min-duration", "1s", "--rollout-canary-percent", "50"];
    let app = Arc::new(host(dir.path(), &flags).await);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(&app, CLIENTS, |i| format!("ok-{i}"), None, &stop);

    // Healthy: shadow, then canary, then promoted on its figures alone.
    offer(dir.path(), 2, fixtures::CANDIDATE, None);
    let rollout = rollout_when(&app, "promotion", ended("2", "promote")).await;
    assert_eq!(actions(&rollout), ["start", "advance", "promote"]);
    assert_eq!(app.info().await["model_version"], "2");
    assert_eq!(app.info().await["previous_version"], "1");

    // Paused: held in shadow well past its minimum duration, then let go.
    offer(dir.path(), 3, fixtures::MISBEHAVE, None);
    rollout_when(&app, "shadow", in_phase("3", "shadow")).await;
    let (status, paused) = admin(&app, "pause").await;
    assert_eq!((status, &paused["held"]), (200, &json!(true)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = app.info().await["rollout"].clone();
    assert_eq!((&held["phase"], &held["held"]), (&json!("shadow"), &json!(true)), "{held:#}");
    assert!(held["figures"]["candidate_requests"].as_u64().unwrap() >= 100, "judged, but held: {held:#}");
    let (status, _) = admin(&app, "resume").await;
    assert_eq!(status, 200);
    rollout_when(&app, "canary", in_phase("3", "canary")).await;

    // Aborted: dropped and refused (its bytes, whatever version carries them); version 2
    // goes on serving.
    let (status, aborted) = admin(&app, "abort").await;
    assert_eq!((status, &aborted["outcome"]), (200, &json!("abort")));
    let info = app.info().await;
    assert_eq!(info["model_version"], "2");
    assert!(
        info["load_errors"].as_array().unwrap().iter().any(|e| e["version"] == "3" && e["kind"] == "rollout")
    );

    // Promoted by hand, whatever its figures.
    offer(dir.path(), 4, fixtures::CANDIDATE, Some(json!({"min_duration": "1h"})));
    rollout_when(&app, "shadow", in_phase("4", "shadow")).await;
    let (status, promoted) = admin(&app, "promote").await;
    assert_eq!((status, &promoted["outcome"]), (200, &json!("promote")));
    assert_eq!(app.info().await["model_version"], "4");
    let (status, none) = admin(&app, "promote").await;
    assert_eq!((status, none["error"].as_str().unwrap()), (409, "no rollout is in progress"));

    stop.store(true, Ordering::Relaxed);
    let seen = traffic.await.unwrap();
    assert!(seen.iter().all(|(status, _)| *status == 200), "a request failed during the rollouts");
    for version in ["1", "2", "4"] {
        assert!(seen.iter().any(|(_, v)| v == version), "version {version} never answered");
    }

    let anonymous = app.client.post(app.url("/admin/rollout/promote")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let status = app.client.get(app.url("/admin/rollout")).bearer_auth(TOKEN).send().await.unwrap();
    let status: Value = status.json().await.unwrap();
    assert_eq!((&status["candidate_version"], &status["outcome"]), (&json!("4"), &json!("promote")));
}

#[tokio::test]
async fn a_version_with_a_broken_policy_or_other_inputs_is_refused_and_stable_serves() {
    let dir = tempfile::tempdir().unwrap();
    let app = host(dir.path(), &[]).await;
    offer(dir.path(), 2, fixtures::CANDIDATE, Some(json!({"canary_percent": 150})));
    let refused = within(Duration::from_secs(30), || async {
        app.info().await["load_errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["version"] == "2" && e["kind"] == "policy")
    });
    assert!(refused.await.is_some());
    let info = app.info().await;
    let reason = info["load_errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("canary_percent is 150"), "{reason}");
    assert_eq!(info["model_version"], "1");

    // The bundled model reads other fields: it cannot be judged on misbehave's rows.
    crate::helpers::install_price_sensitivity(dir.path(), "3");
    let refused = within(Duration::from_secs(30), || async {
        app.info().await["load_errors"].as_array().unwrap().iter().any(|e| e["version"] == "3")
    });
    assert!(refused.await.is_some());
    let info = app.info().await;
    let error = info["load_errors"].as_array().unwrap().iter().find(|e| e["version"] == "3").unwrap().clone();
    assert_eq!(error["kind"], "policy");
    assert!(error["reason"].as_str().unwrap().contains("differ from the serving version's"), "{error}");
    assert_eq!(info["model_version"], "1");
}

//! Misbehaving plugins, each a real component built from `tests/fixtures`: every fault
//! gets its documented status, and the request right after it is served normally.
//! Plugins that want more than their inputs, or are broken, are refused at load.

use crate::helpers::{TestApp, install_fixture, spawn_ready_app, within};
use crate::process::{HostProcess, env_of};
use plugin_artifacts::fixtures;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn misbehaving_app(extra: &[&str]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "misbehave", fixtures::MISBEHAVE);
    let mut args = vec!["--plugin-dir", dir.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    (spawn_ready_app(&args).await, dir)
}

async fn assert_next_request_served(app: &TestApp) {
    let (status, body) = app.predict(&json!({"action": "ok"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prediction"], "OK");
}

#[tokio::test]
async fn infinite_loop_answers_504_within_the_deadline() {
    let (app, _dir) = misbehaving_app(&["--call-timeout-ms", "200"]).await;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = app.predict(&json!({"action": "spin"})).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 504, "{body}");
        assert!(body["error"].as_str().unwrap().contains("deadline"), "{body}");
        assert!(elapsed >= Duration::from_millis(200), "cut early: {elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "cut late: {elapsed:?}");
        assert_next_request_served(&app).await;
    }
    app.stop().await;
}

/// The label the misbehave fixture answers to `action`.
async fn answer(app: &TestApp, action: &str) -> String {
    let (status, body) = app.predict(&json!({"action": action})).await;
    assert_eq!(status, 200, "{action}: {body}");
    body["prediction"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_instance_serves_again_after_a_clean_return_and_never_after_a_fault() {
    let (app, _dir) = misbehaving_app(&["--call-timeout-ms", "300"]).await;
    // Calls in sequence take the most recently returned instance: the second `mark`
    // runs where the first one did.
    assert_eq!(answer(&app, "mark").await, "EMPTY");
    assert_eq!(answer(&app, "mark").await, "SEEN");
    // Each fault poisons its instance first; had it been kept, the next call would run
    // in it and see the poison.
    for (fault, status) in [("poison-trap", 500), ("poison-spin", 504), ("poison-grow", 500)] {
        let (got, body) = app.predict(&json!({"action": fault})).await;
        assert_eq!(got, status, "{fault}: {body}");
        assert_eq!(answer(&app, "poisoned").await, "EMPTY", "after {fault}");
    }
    app.stop().await;

    // With one call per instance, no call sees another's state.
    let (app, _dir) = misbehaving_app(&["--plugin-calls-per-instance", "1"]).await;
    for _ in 0..3 {
        assert_eq!(answer(&app, "mark").await, "EMPTY");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_runtime_fault_gets_its_status_and_the_next_request_is_served() {
    let (app, _dir) = misbehaving_app(&["--call-timeout-ms", "2000"]).await;
    let cases = [
        ("trap", 500, "trapped"),
        ("grow", 500, "memory limit of 64 MiB"),
        ("recurse", 500, "trapped"),
        ("huge", 500, "invalid answer"),
        ("nan", 500, "invalid answer"),
        ("negative", 500, "invalid answer"),
        ("unnormalised", 500, "invalid answer"),
        ("unknown-label", 500, "invalid answer"),
        ("wrong-count", 500, "invalid answer"),
        ("internal", 500, "internal error"),
    ];
    for (action, status, message) in cases {
        let (got, body) = app.predict(&json!({"action": action})).await;
        assert_eq!(got, status, "{action}: {body}");
        assert!(body["error"].as_str().unwrap().contains(message), "{action}: {body}");
        assert_eq!(body["model_version"], "1", "{action}: {body}");
        assert_next_request_served(&app).await;
    }
    // Slow but within its deadline: answered.
    let (status, body) = app.predict(&json!({"action": "slow"})).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn plugins_see_no_environment_and_cannot_flood_the_log() {
    let (app, _dir) = misbehaving_app(&[]).await;
    let (status, body) = app.predict(&json!({"action": "env"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prediction"], "EMPTY", "the plugin saw environment variables");
    // 4 MB to each of stdout and stderr: kept up to the cap, the rest dropped, no failure.
    let (status, body) = app.predict(&json!({"action": "shout"})).await;
    assert_eq!(status, 200, "{body}");
    assert_next_request_served(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn load_beyond_the_concurrency_bound_is_shed_with_retry_after() {
    let (app, _dir) = misbehaving_app(&["--max-concurrent-calls", "2", "--call-timeout-ms", "1000"]).await;
    let app = std::sync::Arc::new(app);
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { app.predict(&json!({"action": "spin"})).await.0 })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app.post_json("/predict", &json!({"action": "ok"})).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    for spinner in spinners {
        assert_eq!(spinner.await.unwrap(), 504);
    }
    assert_next_request_served(&app).await;
}

#[tokio::test]
async fn hostile_and_broken_plugins_are_refused_at_load() {
    let cases = [
        ("reads-files", fixtures::READS_FILES, "wasi:filesystem"),
        ("opens-sockets", fixtures::OPENS_SOCKETS, "wasi:sockets"),
        ("calls-http", fixtures::CALLS_HTTP, "wasi:http/outgoing-handler"),
        ("trap-in-info", fixtures::TRAP_IN_INFO, "info() failed"),
        ("fails-own-sample", fixtures::FAILS_OWN_SAMPLE, "scoring its own sample failed"),
        ("other-world", fixtures::OTHER_WORLD, "does not implement"),
        (
            "columns-disagree",
            fixtures::COLUMNS_DISAGREE,
            "predict-columns answers \"NO\" where predict answers \"YES\"",
        ),
    ];
    for (name, path, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        install_fixture(dir.path(), name, path);
        let dir_arg = dir.path().to_str().unwrap();
        let app = spawn_ready_app(&["--plugin-dir", dir_arg]).await;
        // The bundled plugin serves instead; the refusal is on record.
        let info = app.info().await;
        assert_eq!(info["source"]["kind"], "bundled", "{name}: {info}");
        let reason = info["last_load_error"]["reason"].as_str().unwrap_or_default().to_string();
        assert!(reason.contains(expected), "{name}: {reason}");
        app.stop().await;
    }
}

/// A load that misses its deadline may have been starved of CPU rather than be broken:
/// it is tried again at the next checks, and refused for good at the third miss.
#[tokio::test]
async fn a_load_that_misses_its_deadline_is_tried_three_times_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "spins-in-info", fixtures::SPINS_IN_INFO);
    let dir_arg = dir.path().to_str().unwrap();
    let args = ["--plugin-dir", dir_arg, "--plugin-dir-rescan-secs", "1", "--call-timeout-ms", "100"];
    let app = spawn_ready_app(&args).await;
    let reason = |info: &Value| info["last_load_error"]["reason"].as_str().unwrap_or_default().to_string();
    let first = reason(&app.info().await);
    assert!(first.contains("exceeded its deadline"), "{first}");
    assert!(first.contains("attempt 1 of 3; tried again at the next check"), "{first}");

    let refused = app.wait_until(Duration::from_secs(15), |app| async move {
        reason(&app.info().await).contains("attempt 3 of 3; refused")
    });
    assert!(refused.await, "not refused after three attempts: {}", app.info().await);
    // Refused for good: later rescans do not try it again.
    let at = app.info().await["last_load_error"]["at"].clone();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let info = app.info().await;
    assert_eq!(info["last_load_error"]["at"], at, "tried again after the refusal: {info}");
    assert_eq!(info["source"]["kind"], "bundled", "{info}");
    app.stop().await;
}

#[tokio::test]
async fn plugin_output_reaches_the_host_log_tagged_with_the_version_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "misbehave", fixtures::MISBEHAVE);
    let env = env_of(&[
        ("PLUGIN_DIR", dir.path().to_str().unwrap()),
        ("PLUGIN_OUTPUT_LIMIT_BYTES", "4096"),
        ("CALL_TIMEOUT_MS", "2000"),
    ]);
    let host = HostProcess::start(&env);
    host.wait_ready(Duration::from_secs(30)).await;
    // 4 MB to each of stdout and stderr.
    let response =
        host.client.post(host.url("/predict")).json(&json!({"action": "shout"})).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let output_lines = || -> Vec<Value> {
        let logs = host.logs.lock().unwrap();
        logs.iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["message"] == "plugin output")
            .collect()
    };
    let logged = within(Duration::from_secs(5), || async { output_lines().len() >= 2 });
    logged.await.expect("plugin output logged");
    for entry in output_lines() {
        assert_eq!(entry["plugin"], "1", "tagged with the version: {entry}");
        assert!(["stdout", "stderr"].contains(&entry["stream"].as_str().unwrap()), "{entry}");
        let kept = entry["output"].as_str().unwrap().len();
        assert!(kept > 0 && kept <= 4096, "kept {kept} bytes");
        let dropped = entry["dropped_bytes"].as_u64().unwrap();
        assert!(kept as u64 + dropped >= 4 * 1024 * 1024 - 4096, "dropped {dropped} bytes");
    }
}

#[tokio::test]
async fn a_plugins_long_texts_are_cut_in_answers_and_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "misbehave", fixtures::MISBEHAVE);
    // Writing and lifting 20 MB takes longer than the default 100 ms deadline on a busy
    // machine; the deadline is not what this test is about.
    let plugin_dir = dir.path().to_str().unwrap();
    let host = HostProcess::start(&env_of(&[("PLUGIN_DIR", plugin_dir), ("CALL_TIMEOUT_MS", "5000")]));
    host.wait_ready(Duration::from_secs(30)).await;
    // A 10 MiB refusal, a 10 MiB internal error, and a 20 MB label in an answer.
    for (action, status, total) in
        [("long-refusal", 422, 10 << 20), ("long-failure", 500, 10 << 20), ("huge", 500, 0)]
    {
        let response =
            host.client.post(host.url("/predict")).json(&json!({"action": action})).send().await.unwrap();
        assert_eq!(response.status(), status, "{action}");
        let body = response.bytes().await.unwrap();
        assert!(body.len() < 16 << 10, "{action}: a {} byte answer", body.len());
        let error = serde_json::from_slice::<Value>(&body).unwrap()["error"].as_str().unwrap().to_string();
        assert!(error.contains(" bytes in all]"), "{action}: {error}");
        if total > 0 {
            assert!(error.contains(&format!("[cut: {total} bytes in all]")), "{action}: {error}");
        }
    }
    let cut_lines = within(Duration::from_secs(5), || async {
        host.logs.lock().unwrap().iter().filter(|l| l.contains(" bytes in all]")).count() >= 2
    });
    assert!(cut_lines.await.is_some(), "the failures were not logged:\n{}", host.log_text());
    let longest = host.logs.lock().unwrap().iter().map(String::len).max().unwrap();
    assert!(longest < 16 << 10, "a log line of {longest} bytes");
}

//! Misbehaving plugins: a runaway loop is cut at its deadline (504), a trap answers
//! 500, and in both cases the next request is served normally.

use crate::helpers::{install_fixture, spawn_ready_app};
use plugin_artifacts::fixtures;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn infinite_loop_answers_504_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "spin-forever", fixtures::SPIN_FOREVER);
    let dir_arg = dir.path().to_str().unwrap();
    let app = spawn_ready_app(&["--plugin-dir", dir_arg, "--call-timeout-ms", "200"]).await;

    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = app.predict(&json!({"action": "spin"})).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 504, "{body}");
        assert!(body["error"].as_str().unwrap().contains("deadline"), "{body}");
        assert!(elapsed >= Duration::from_millis(200), "cut early: {elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "cut late: {elapsed:?}");

        let (status, body) = app.predict(&json!({"action": "ok"})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["prediction"], "OK");
    }
    app.stop().await;
}

#[tokio::test]
async fn trap_answers_500_and_the_next_request_is_served() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "trap-in-predict", fixtures::TRAP_IN_PREDICT);
    let app = spawn_ready_app(&["--plugin-dir", dir.path().to_str().unwrap()]).await;

    for _ in 0..3 {
        let (status, body) = app.predict(&json!({"action": "trap"})).await;
        assert_eq!(status, 500, "{body}");
        assert!(body["error"].as_str().unwrap().contains("trapped"), "{body}");
        assert_eq!(body["model_version"], "1");

        let (status, body) = app.predict(&json!([{"action": "ok"}, {"action": "ok"}])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.as_array().unwrap().len(), 2);
    }
    app.stop().await;
}

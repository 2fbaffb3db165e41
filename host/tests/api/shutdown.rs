//! Graceful shutdown of the real binary: on SIGTERM readiness turns false, in-flight
//! requests finish, and the process exits cleanly.

use crate::helpers::install_fixture;
use plugin_artifacts::fixtures;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_turns_not_ready_and_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "spin-forever", fixtures::SPIN_FOREVER);
    let mut child = Command::new(env!("CARGO_BIN_EXE_predict-host"))
        .arg("serve")
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("PLUGIN_DIR", dir.path())
        .env("LOG_FORMAT", "json")
        .env("CALL_TIMEOUT_MS", "1500")
        .env("SHUTDOWN_DELAY_SECS", "1")
        .env("DRAIN_TIMEOUT_SECS", "10")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start predict-host");

    // The first log line with an address is the listener.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("log line").unwrap();
        let entry: Value = serde_json::from_str(&line).expect("JSON log line");
        if entry["message"] == "listening" {
            break entry["address"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), format!("{base}/predict"));
        async move { client.post(url).json(&json!({"action": "spin"})).send().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());

    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client.get(format!("{base}/ready")).send().await.expect("still accepting during the delay");
    assert_eq!(ready.status(), 503, "not ready while shutting down");

    let finished = in_flight.await.unwrap().expect("in-flight request answered, not dropped");
    assert_eq!(finished.status(), 504, "the spinning call ran to its deadline");

    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "clean exit: {exit}");
    assert!(client.get(format!("{base}/health")).send().await.is_err(), "listener closed");
}

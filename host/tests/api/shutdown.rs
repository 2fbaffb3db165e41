//! Graceful shutdown of the real binary: on SIGTERM readiness turns false, in-flight
//! requests finish, and the process exits cleanly.

use crate::helpers::install_fixture;
use crate::process::{HostProcess, env_of};
use plugin_artifacts::fixtures;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn sigterm_turns_not_ready_and_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "misbehave", fixtures::MISBEHAVE);
    let env = env_of(&[
        ("PLUGIN_DIR", dir.path().to_str().unwrap()),
        ("CALL_TIMEOUT_MS", "1500"),
        ("SHUTDOWN_DELAY_SECS", "1"),
        ("DRAIN_TIMEOUT_SECS", "10"),
    ]);
    let host = HostProcess::start(&env);
    host.wait_ready(Duration::from_secs(30)).await;

    let in_flight = tokio::spawn({
        let (client, url) = (host.client.clone(), host.url("/predict"));
        async move { client.post(url).json(&json!({"action": "spin"})).send().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    host.send_sigterm();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = host.get_json("/ready").await;
    assert_eq!(status, 503, "not ready while shutting down");

    let finished = in_flight.await.unwrap().expect("in-flight request answered, not dropped");
    assert_eq!(finished.status(), 504, "the spinning call ran to its deadline");

    let (client, health) = (host.client.clone(), host.url("/health"));
    let exit = tokio::task::spawn_blocking(move || host.wait_exit()).await.unwrap();
    assert!(exit.success(), "clean exit: {exit}");
    assert!(client.get(health).send().await.is_err(), "listener closed");
}

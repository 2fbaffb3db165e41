//! Graceful shutdown of the real binary: on SIGTERM readiness turns false, in-flight
//! requests (HTTP and gRPC) finish, and the process exits cleanly.

use crate::helpers::install_fixture;
use crate::process::{HostProcess, env_of};
use plugin_artifacts::fixtures;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::time::Duration;

/// A host serving the misbehaving fixture, whose `spin` action runs to the 1.5 s call
/// deadline; it keeps serving `delay` seconds after SIGTERM, then drains for up to 10 s.
async fn spinning_host(delay: &str) -> (HostProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "misbehave", fixtures::MISBEHAVE);
    let env = env_of(&[
        ("PLUGIN_DIR", dir.path().to_str().unwrap()),
        ("CALL_TIMEOUT_MS", "1500"),
        ("SHUTDOWN_DELAY_SECS", delay),
        ("DRAIN_TIMEOUT_SECS", "10"),
    ]);
    let host = HostProcess::start(&env);
    host.wait_ready(Duration::from_secs(30)).await;
    (host, dir)
}

#[tokio::test]
async fn sigterm_turns_not_ready_and_lets_in_flight_requests_finish() {
    let (host, _dir) = spinning_host("1").await;
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

/// A ModelInfer call to the misbehaving fixture that spins until the call deadline.
const SPIN: &str = r#"
import sys, numpy as np, tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException
tensor = grpcclient.InferInput("action", [1], "BYTES")
tensor.set_data_from_numpy(np.array([b"spin"], dtype=np.object_))
client = grpcclient.InferenceServerClient(url=sys.argv[1])
assert client.is_server_ready()
print("sending", flush=True)
try:
    client.infer("misbehave", [tensor])
    print("answered")
except InferenceServerException as error:
    print(error.status())
"#;

#[tokio::test]
async fn sigterm_lets_an_in_flight_grpc_call_finish() {
    // The listener closes at once: the call is drained, not merely served on.
    let (host, _dir) = spinning_host("0").await;
    let mut client = std::process::Command::new("python3")
        .args(["-c", SPIN, &host.grpc])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let sending = tokio::task::spawn_blocking(move || (lines.next(), lines)).await.unwrap();
    let (first, mut lines) = sending;
    assert_eq!(first.unwrap().unwrap(), "sending");
    // The call is on its way, and spins for 1.5 s: stop the host under it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.send_sigterm();
    let outcome = tokio::task::spawn_blocking(move || lines.next()).await.unwrap().unwrap().unwrap();
    // It ran to its deadline and was answered with that, not cut off.
    assert_eq!(outcome, "StatusCode.DEADLINE_EXCEEDED");
    assert!(client.wait().unwrap().success());
    let exit = tokio::task::spawn_blocking(move || host.wait_exit()).await.unwrap();
    assert!(exit.success(), "clean exit: {exit}");
}

//! The Open Inference Protocol over gRPC, with the clients users run: `tritonclient.grpc`
//! for every RPC, typed and raw tensors, malformed requests, health and metrics
//! (`triton_grpc.py`); a hot swap under gRPC load with no failed call; and the call
//! bounds (concurrency shed with UNAVAILABLE, the deadline with DEADLINE_EXCEEDED). (The drain of
//! an in-flight call on SIGTERM is in `shutdown.rs`.)

use crate::helpers::{install_fixture, install_price_sensitivity, spawn_ready_app};
use crate::process::{HostProcess, env_of, run_tool};
use plugin_artifacts::fixtures;
use serde_json::Value;
use std::time::Duration;

const MODEL: &str = "price-sensitivity";

fn script(name: &str) -> String {
    format!("{}/tests/api/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `python3 args…` off the runtime (the host under test may share it).
async fn python(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_tool("python3", &args)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn tritonclient_grpc_works_unchanged_and_malformed_calls_get_precise_statuses() {
    let app = spawn_ready_app(&["--max-batch-rows", "300"]).await;
    let args = vec![
        script("triton_grpc.py"),
        app.address.to_string(),
        app.grpc_address.to_string(),
        MODEL.into(),
        "300".into(),
    ];
    let output = python(args).await;
    assert!(output.contains("every answer equals /predict's"), "{output}");
    app.stop().await;
}

#[tokio::test]
async fn a_swap_under_grpc_load_fails_no_call() {
    let dir = tempfile::tempdir().unwrap();
    install_price_sensitivity(dir.path(), "1");
    let host = HostProcess::start(&env_of(&[("PLUGIN_DIR", dir.path().to_str().unwrap())]));
    host.wait_ready(Duration::from_secs(30)).await;
    let load = tokio::spawn(python(vec![
        script("grpc_load.py"),
        host.grpc.clone(),
        MODEL.into(),
        "4".into(),
        "4".into(),
    ]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (from, to) =
        (dir.path().join("price-sensitivity-1.wasm"), dir.path().join("price-sensitivity-2.wasm"));
    std::fs::copy(from, to).unwrap();
    let report: Value = serde_json::from_str(load.await.unwrap().trim()).unwrap();
    assert_eq!(report["failures"], 0, "{report}");
    let versions = report["versions"].as_object().unwrap();
    assert!(versions.contains_key("1") && versions.contains_key("2"), "{report}");
    println!("gRPC calls across the swap: {}", report["requests"]);
}

/// Two ModelInfer calls to the misbehaving fixture, the second while the first spins.
const TWO_AT_ONCE: &str = r#"
import sys, threading, time, numpy as np, tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException
def call(outcomes):
    tensor = grpcclient.InferInput("action", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"spin"], dtype=np.object_))
    try:
        grpcclient.InferenceServerClient(url=sys.argv[1]).infer("misbehave", [tensor])
        outcomes.append("answered")
    except InferenceServerException as error:
        outcomes.append(error.status())
first, second = [], []
spinning = threading.Thread(target=call, args=(first,))
spinning.start()
time.sleep(0.5)
call(second)
spinning.join()
print(first[0], second[0])
"#;

#[tokio::test]
async fn grpc_calls_past_the_concurrency_bound_are_shed_and_a_spin_meets_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    install_fixture(dir.path(), "misbehave", fixtures::MISBEHAVE);
    let env = env_of(&[
        ("PLUGIN_DIR", dir.path().to_str().unwrap()),
        ("CALL_TIMEOUT_MS", "1500"),
        ("MAX_CONCURRENT_CALLS", "1"),
    ]);
    let host = HostProcess::start(&env);
    host.wait_ready(Duration::from_secs(30)).await;
    let outcome = python(vec!["-c".into(), TWO_AT_ONCE.into(), host.grpc.clone()]).await;
    assert_eq!(outcome.trim(), "StatusCode.DEADLINE_EXCEEDED StatusCode.UNAVAILABLE");
    let metrics = host.client.get(host.url("/metrics")).send().await;
    let text = metrics.unwrap().text().await.unwrap();
    assert!(text.contains(r#"grpc_requests_total{rpc="ModelInfer",code="UNAVAILABLE"} 1"#), "{text}");
    assert!(text.contains("requests_shed_total 1"), "{text}");
}

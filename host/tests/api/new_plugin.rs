//! The path for those who write a plugin: `predict-host new-plugin`, then the build
//! command docs/plugins.md gives, then a host serving the result.

use crate::examples::root;
use crate::process::{HostProcess, cli_ok, env_of};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn a_new_plugin_builds_as_the_readme_says_and_serves() {
    let scratch = tempfile::tempdir().unwrap();
    let crate_dir = scratch.path().join("basket-scorecard");
    cli_ok(&["new-plugin", crate_dir.to_str().unwrap()], &env_of(&[]));

    // The generated crate pins the wit-bindgen the host's own plugins use.
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let pin = format!("wit-bindgen = {{ version = \"={}\"", predict_host::commands::WIT_BINDGEN_VERSION);
    assert!(workspace.contains(&pin), "the workspace pins another wit-bindgen than new-plugin writes");

    // The build command of docs/plugins.md, in the crate, as a user runs it.
    let dir = crate_dir.clone();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(dir)
            // This test runs under cargo: nothing of the outer build applies.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .status()
            .expect("cargo")
    })
    .await
    .unwrap();
    assert!(status.success(), "the new plugin does not build");

    let plugins = tempfile::tempdir().unwrap();
    let wasm = crate_dir.join("target/wasm32-wasip2/release/basket_scorecard.wasm");
    std::fs::copy(&wasm, plugins.path().join("basket-scorecard-1.wasm"))
        .expect("the plugin where docs/plugins.md says");
    let host = HostProcess::start(&env_of(&[("PLUGIN_DIR", plugins.path().to_str().unwrap())]));
    host.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(host.get_json("/model/info").await.1["name"], "basket-scorecard");

    let basket = json!({"SPEND": 125.5, "QUANTITY": 3, "STORE_FORMAT": "LS"});
    let response = host.client.post(host.url("/predict")).json(&basket).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(["LA", "MM", "UM"].contains(&answer["prediction"].as_str().unwrap()), "{answer}");
    let total: f64 = answer["probabilities"].as_object().unwrap().values().map(|p| p.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9, "{answer}");

    let response = host.client.post(host.url("/predict")).json(&json!({"SPEND": 10})).send().await.unwrap();
    assert_eq!(response.status(), 422);
}

//! Hot reload from the plugin directory: new versions swap in under load with no failed
//! request; broken files and non-predictor components are refused and change nothing.

use crate::helpers::{TestApp, install_price_sensitivity, seed_payload, spawn_ready_app};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a continuous client saw: every (status, model_version) in order.
struct Observed {
    answers: Vec<(u16, String)>,
}

/// Sends the seed basket from `clients` concurrent loops until `stop` is set.
fn continuous_load(
    app: &Arc<TestApp>,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Observed>> {
    (0..clients)
        .map(|_| {
            let (app, stop) = (Arc::clone(app), Arc::clone(stop));
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let response = app.client.post(app.url("/predict")).json(&seed_payload()).send().await;
                    match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: Value = r.json().await.unwrap_or(Value::Null);
                            answers.push((status, body["model_version"].as_str().unwrap_or("").to_string()));
                        }
                        Err(e) => answers.push((0, e.to_string())),
                    }
                }
                Observed { answers }
            })
        })
        .collect()
}

async fn serving_version(app: &TestApp) -> String {
    app.info().await["model_version"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_version_swaps_in_under_load_with_no_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    install_price_sensitivity(dir.path(), "1");
    let app = Arc::new(spawn_ready_app(&["--plugin-dir", dir.path().to_str().unwrap()]).await);
    assert_eq!(serving_version(&app).await, "1");
    assert_eq!(
        app.info().await["compiler"],
        "cranelift",
        "nothing was serving: the first version gets Cranelift"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let clients = continuous_load(&app, 4, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let copied = Instant::now();
    std::fs::copy(dir.path().join("price-sensitivity-1.wasm"), dir.path().join("price-sensitivity-2.wasm"))
        .unwrap();
    let switched = app
        .wait_until(Duration::from_secs(5), |app| async move {
            app.predict(&seed_payload()).await.1["model_version"] == "2"
        })
        .await;
    let switch_time = copied.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    assert!(switched, "version 2 never served");
    println!("copy-to-serving: {switch_time:?}");
    assert!(switch_time < Duration::from_secs(2), "switch took {switch_time:?}");
    for client in clients {
        let observed = client.await.unwrap();
        assert!(observed.answers.len() > 10, "client made progress");
        let failed: Vec<_> = observed.answers.iter().filter(|(status, _)| *status != 200).collect();
        assert!(failed.is_empty(), "failed requests during swap: {failed:?}");
        // Each client sees 1 until it sees 2, then only 2.
        let first_two = observed.answers.iter().position(|(_, v)| v == "2").expect("client saw version 2");
        assert!(observed.answers[..first_two].iter().all(|(_, v)| v == "1"));
        assert!(observed.answers[first_two..].iter().all(|(_, v)| v == "2"));
    }
    let info = app.info().await;
    assert_eq!(info["previous_version"], "1");
    assert_eq!(info["world"], "mlops:predictor/batch-predictor@1.1.0", "the bundled plugin scores by column");
    // Swapped in with Winch's code, the version moves onto Cranelift's once the CPU is idle.
    let recompiled = app
        .wait_until(Duration::from_secs(10), |app| async move { app.info().await["compiler"] == "cranelift" })
        .await;
    assert!(recompiled, "still on {}", app.info().await["compiler"]);
    let (status, body) = app.predict(&seed_payload()).await;
    assert_eq!((status, body["model_version"].as_str()), (200, Some("2")));
    Arc::into_inner(app).expect("clients are done").stop().await;
}

#[tokio::test]
async fn broken_and_foreign_files_are_refused_and_the_serving_version_stays() {
    let dir = tempfile::tempdir().unwrap();
    install_price_sensitivity(dir.path(), "2");
    let app = spawn_ready_app(&["--plugin-dir", dir.path().to_str().unwrap()]).await;
    assert_eq!(serving_version(&app).await, "2");

    let wasm = plugin_artifacts::PRICE_SENSITIVITY_WASM;
    let truncated = &wasm[..wasm.len() / 2];
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("3", truncated.to_vec(), "not a valid WebAssembly component"),
        ("4", b"this is not wasm at all".to_vec(), "not a valid WebAssembly component"),
        ("5", std::fs::read(plugin_artifacts::fixtures::OTHER_WORLD).unwrap(), "does not implement"),
        // A core module is valid WebAssembly but not a component.
        ("6", b"\0asm\x01\0\0\0".to_vec(), "not a valid WebAssembly component"),
    ];
    for (version, bytes, expected) in cases {
        std::fs::write(dir.path().join(format!("price-sensitivity-{version}.wasm")), bytes).unwrap();
        let refused = app
            .wait_until(Duration::from_secs(5), |app| async move {
                app.info().await["last_load_error"]["version"] == version
            })
            .await;
        assert!(refused, "version {version} was not refused");
        let info = app.info().await;
        let reason = info["last_load_error"]["reason"].as_str().unwrap();
        assert!(reason.contains(expected), "version {version}: {reason}");
        assert_eq!(info["model_version"], "2", "serving version stays");
        let (status, body) = app.predict(&seed_payload()).await;
        assert_eq!((status, body["model_version"].as_str()), (200, Some("2")));
    }
    app.stop().await;
}

/// Files the source must neither wait on nor read whole, named as higher versions: a
/// named pipe (opening one for reading waits for a writer) and a file past the size limit.
/// Both are skipped unread, and a good version added after them still swaps in.
#[tokio::test]
async fn a_named_pipe_and_an_oversized_file_are_skipped_without_holding_up_the_source() {
    let dir = tempfile::tempdir().unwrap();
    install_price_sensitivity(dir.path(), "1");
    let app = spawn_ready_app(&["--plugin-dir", dir.path().to_str().unwrap()]).await;

    let pipe = dir.path().join("price-sensitivity-9.wasm");
    let made = std::process::Command::new("mkfifo").arg(&pipe).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let oversized = std::fs::File::create(dir.path().join("price-sensitivity-8.wasm")).unwrap();
    oversized.set_len(predict_host::artifact::MAX_PLUGIN_BYTES + 1).unwrap(); // sparse: no disk used
    install_price_sensitivity(dir.path(), "3");

    let swapped =
        app.wait_until(Duration::from_secs(10), |app| async move { serving_version(app).await == "3" });
    assert!(swapped.await, "version 3 did not swap in: {}", app.info().await);
    let info = app.info().await;
    let errors = info["load_errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["version"] != "8" && e["version"] != "9"), "read and refused: {info}");
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_serving_file_falls_back_to_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    install_price_sensitivity(dir.path(), "1");
    install_price_sensitivity(dir.path(), "2");
    let app = spawn_ready_app(&["--plugin-dir", dir.path().to_str().unwrap()]).await;
    assert_eq!(serving_version(&app).await, "2");

    std::fs::remove_file(dir.path().join("price-sensitivity-2.wasm")).unwrap();
    let back = app.wait_until(Duration::from_secs(5), |app| async move { serving_version(app).await == "1" });
    assert!(back.await, "did not fall back to version 1");

    std::fs::remove_file(dir.path().join("price-sensitivity-1.wasm")).unwrap();
    let bundled = plugin_artifacts::PRICE_SENSITIVITY_VERSION;
    let back = app.wait_until(Duration::from_secs(5), |app| async move {
        app.info().await["source"]["kind"] == "bundled"
    });
    assert!(back.await, "did not fall back to the bundled plugin");
    assert_eq!(serving_version(&app).await, bundled);
    app.stop().await;
}

#[tokio::test]
async fn the_swap_compiler_and_the_wait_before_recompiling_are_settings() {
    // Past the default wait (3 s), a version swapped in with Winch would be recompiled;
    // with a wait of an hour it still runs Winch's code. With Cranelift for swaps, the
    // version runs Cranelift's code from its swap on.
    let settings: [(&[&str], Duration, &str); 2] = [
        (&["--tier-up-after", "1h"], Duration::from_millis(3500), "winch"),
        (&["--swap-compiler", "cranelift"], Duration::ZERO, "cranelift"),
    ];
    for (extra, after, expected) in settings {
        let dir = tempfile::tempdir().unwrap();
        install_price_sensitivity(dir.path(), "1");
        let mut args = vec!["--plugin-dir", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let app = spawn_ready_app(&args).await;
        install_price_sensitivity(dir.path(), "2");
        let swapped =
            app.wait_until(Duration::from_secs(5), |app| async move { serving_version(app).await == "2" });
        assert!(swapped.await, "{extra:?}: version 2 never served");
        tokio::time::sleep(after).await;
        assert_eq!(app.info().await["compiler"], expected, "{extra:?}");
        let (status, body) = app.predict(&seed_payload()).await;
        assert_eq!((status, body["model_version"].as_str()), (200, Some("2")), "{extra:?}");
        app.stop().await;
    }
}

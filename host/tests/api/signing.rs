//! Signed plugins: with `PLUGIN_PUBLIC_KEY` set, only plugins whose signature verifies
//! over their digest load; unsigned, wrongly signed and tampered ones are refused while
//! the serving version stays. Without a key, `/model/info` still says what is signed.

use crate::helpers::{TestApp, seed_payload, spawn_ready_app};
use predict_host::artifact::sha256_hex;
use predict_host::artifact::signature::PluginSigner;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Writes `<dir>/price-sensitivity-<version>.wasm`, its signature first when given, so the
/// watcher never sees the plugin without the signature meant for it.
fn install(dir: &Path, version: &str, bytes: &[u8], signature: Option<&str>) {
    let wasm = dir.join(format!("price-sensitivity-{version}.wasm"));
    if let Some(signature) = signature {
        std::fs::write(dir.join(format!("price-sensitivity-{version}.wasm.sig")), signature).unwrap();
    }
    std::fs::write(wasm, bytes).unwrap();
}

async fn refusal_of(app: &TestApp, version: &str) -> Option<String> {
    let info = app.info().await;
    let errors = info["load_errors"].as_array().cloned().unwrap_or_default();
    errors.iter().find(|e| e["version"] == version).map(|e| e["reason"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn with_a_public_key_only_correctly_signed_plugins_load() {
    let publisher = PluginSigner::generate();
    let stranger = PluginSigner::generate();
    let wasm = plugin_artifacts::PRICE_SENSITIVITY_WASM;
    let digest = sha256_hex(wasm);
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "1", wasm, Some(&publisher.sign(&digest)));
    let key = publisher.public_key().to_base64();
    let app =
        spawn_ready_app(&["--plugin-dir", dir.path().to_str().unwrap(), "--plugin-public-key", &key]).await;
    let info = app.info().await;
    assert_eq!(info["model_version"], "1");
    assert_eq!((info["signed"].as_bool(), info["signature_verified"].as_bool()), (Some(true), Some(true)));

    let other_plugin = std::fs::read(plugin_artifacts::fixtures::MISBEHAVE).unwrap();
    let cases: [(&str, &[u8], Option<String>, &str); 4] = [
        ("2", wasm, None, "unsigned"),
        ("3", wasm, Some(stranger.sign(&digest)), "does not verify"),
        // Tampered: other bytes under the publisher's signature of the original ones.
        ("4", &other_plugin, Some(publisher.sign(&digest)), "does not verify"),
        ("5", wasm, Some("bm90IGEgc2lnbmF0dXJl".into()), "not base64 of a 64-byte"),
    ];
    for (version, bytes, signature, expected) in cases {
        install(dir.path(), version, bytes, signature.as_deref());
        let refused =
            app.wait_until(
                Duration::from_secs(5),
                |app| async move { refusal_of(app, version).await.is_some() },
            );
        assert!(refused.await, "version {version} was not refused");
        let reason = refusal_of(&app, version).await.unwrap();
        assert!(reason.contains(expected), "version {version}: {reason}");
        let (status, body) = app.predict(&seed_payload()).await;
        assert_eq!((status, body["model_version"].as_str()), (200, Some("1")), "serving version stays");
    }

    install(dir.path(), "6", wasm, Some(&publisher.sign(&digest)));
    let switched =
        app.wait_until(Duration::from_secs(5), |app| async move { app.info().await["model_version"] == "6" });
    assert!(switched.await, "a correctly signed version was not served");
    app.stop().await;
}

#[tokio::test]
async fn without_a_key_digests_suffice_and_info_says_whether_the_plugin_is_signed() {
    let wasm = plugin_artifacts::PRICE_SENSITIVITY_WASM;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "1", wasm, None);
    let app = spawn_ready_app(&["--plugin-dir", dir.path().to_str().unwrap()]).await;
    let flags = |info: Value| (info["signed"].as_bool(), info["signature_verified"].as_bool());
    assert_eq!(flags(app.info().await), (Some(false), Some(false)));

    install(dir.path(), "2", wasm, Some(&PluginSigner::generate().sign(&sha256_hex(wasm))));
    let switched =
        app.wait_until(Duration::from_secs(5), |app| async move { app.info().await["model_version"] == "2" });
    assert!(switched.await);
    // Signed, but nothing to verify it against.
    assert_eq!(flags(app.info().await), (Some(true), Some(false)));
    app.stop().await;
}

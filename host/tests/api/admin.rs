//! The operator API: absent without `ADMIN_TOKEN`, 401 without the right bearer token,
//! and with it: list versions, pin (held against newer files), unpin, roll back, reload.

use crate::helpers::{TestApp, install_price_sensitivity, seed_payload, spawn_ready_app};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "an-operator-token-for-tests";

/// `(method, path)` of every admin endpoint.
const ENDPOINTS: [(&str, &str); 5] = [
    ("GET", "/admin/versions"),
    ("POST", "/admin/pin"),
    ("POST", "/admin/unpin"),
    ("POST", "/admin/rollback"),
    ("POST", "/admin/reload"),
];

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call(app, method, path, Some(TOKEN), body).await
}

async fn serving(app: &TestApp) -> String {
    let (status, body) = app.predict(&seed_payload()).await;
    assert_eq!(status, 200, "{body}");
    body["model_version"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn without_admin_token_the_admin_api_does_not_exist() {
    let app = spawn_ready_app(&[]).await;
    for (method, path) in ENDPOINTS {
        let (status, body) = call(&app, method, path, Some(TOKEN), None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert!(body["error"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn every_admin_endpoint_needs_the_token() {
    let app = spawn_ready_app(&["--admin-token", TOKEN]).await;
    for (method, path) in ENDPOINTS {
        for token in [None, Some("wrong-token"), Some("")] {
            let response = {
                let mut request = app.client.request(method.parse().unwrap(), app.url(path));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                request.json(&json!({"version": 1})).send().await.unwrap()
            };
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].is_string(), "{body}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn operators_pin_unpin_roll_back_and_list_versions() {
    let dir = tempfile::tempdir().unwrap();
    install_price_sensitivity(dir.path(), "1");
    install_price_sensitivity(dir.path(), "2");
    let dir_arg = dir.path().to_str().unwrap();
    let app = spawn_ready_app(&["--plugin-dir", dir_arg, "--admin-token", TOKEN]).await;
    assert_eq!(serving(&app).await, "2");

    let (status, versions) = admin(&app, "GET", "/admin/versions", None).await;
    assert_eq!(status, 200, "{versions}");
    assert_eq!(versions["serving"]["version"], "2");
    assert!(versions["pinned"].is_null());
    let available: Vec<_> =
        versions["available"].as_array().unwrap().iter().map(|v| v["version"].clone()).collect();
    assert_eq!(available[..2], [json!("2"), json!("1")], "{versions}");
    assert_eq!(versions["available"][2]["location"], "bundled");

    // Pin an older version: it serves, and a newer file does not replace it, even on reload.
    let (status, body) = admin(&app, "POST", "/admin/pin", Some(json!({"version": 1}))).await;
    assert_eq!((status, &body["serving"], &body["pinned"]), (200, &json!("1"), &json!("1")), "{body}");
    assert_eq!(serving(&app).await, "1");
    install_price_sensitivity(dir.path(), "3");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = admin(&app, "POST", "/admin/reload", None).await;
    assert_eq!((status, &body["serving"]), (200, &json!("1")), "{body}");
    assert_eq!(serving(&app).await, "1", "the pin holds against a newer version");

    // Unknown versions and bad bodies are refused; the pin stays.
    let (status, body) = admin(&app, "POST", "/admin/pin", Some(json!({"version": 9}))).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = admin(&app, "POST", "/admin/pin", Some(json!({"release": 2}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(serving(&app).await, "1");

    // Unpin: follows the directory again, at once.
    let (status, body) = admin(&app, "POST", "/admin/unpin", None).await;
    assert_eq!((status, &body["serving"], &body["pinned"]), (200, &json!("3"), &Value::Null), "{body}");
    assert_eq!(serving(&app).await, "3");

    // Roll back: the previous loaded version serves again, pinned; again goes forward.
    let (status, body) = admin(&app, "POST", "/admin/rollback", None).await;
    assert_eq!((status, &body["serving"], &body["pinned"]), (200, &json!("1"), &json!("1")), "{body}");
    assert_eq!(serving(&app).await, "1");
    let (status, body) = admin(&app, "POST", "/admin/rollback", None).await;
    assert_eq!((status, &body["serving"]), (200, &json!("3")), "{body}");

    // A broken file shows up among the refused versions, with its reason.
    admin(&app, "POST", "/admin/unpin", None).await;
    std::fs::write(dir.path().join("price-sensitivity-4.wasm"), b"not a component").unwrap();
    let (status, _) = admin(&app, "POST", "/admin/reload", None).await;
    assert_eq!(status, 200);
    let (_, versions) = admin(&app, "GET", "/admin/versions", None).await;
    let refused = &versions["refused"][0];
    assert_eq!(refused["version"], "4", "{versions}");
    assert!(refused["reason"].as_str().unwrap().contains("not a valid WebAssembly component"));
    assert_eq!(versions["serving"]["version"], "3");
    assert_eq!(app.info().await["pinned"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn rollback_without_a_previous_version_is_a_conflict() {
    let app = spawn_ready_app(&["--admin-token", TOKEN]).await;
    let (status, body) = admin(&app, "POST", "/admin/rollback", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no previous version"));
    app.stop().await;
}

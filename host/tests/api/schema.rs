//! The OpenAPI document describes the bodies the server really sends: a sample of real
//! answers, errors from handlers and from middleware among them, each validated against
//! the schema documented for its route and status, with no member the schema leaves out.

use crate::helpers::{TestApp, seed_payload, spawn_app, spawn_ready_app};
use crate::process::write_file;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

const TOKEN: &str = "schema-test-token";

/// A copy of the document's components in which every object schema admits only the
/// members it lists (`unevaluatedProperties: false`), except those other schemas extend
/// through `allOf`, which the extending schema closes instead.
fn strict_components(doc: &Value) -> Value {
    let mut extended = BTreeSet::new();
    collect_extended(&doc["components"], &mut extended);
    let mut components = doc["components"].clone();
    for (name, schema) in components["schemas"].as_object_mut().unwrap() {
        close(schema, extended.contains(name));
    }
    components
}

/// Names of the schemas that some `allOf` refers to.
fn collect_extended(value: &Value, extended: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for part in map.get("allOf").and_then(Value::as_array).into_iter().flatten() {
                if let Some(name) = part["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
                    extended.insert(name.to_string());
                }
            }
            map.values().for_each(|v| collect_extended(v, extended));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_extended(v, extended)),
        _ => {}
    }
}

/// Closes `schema` and the object schemas inside it; `open` leaves this level open.
fn close(schema: &mut Value, open: bool) {
    match schema {
        Value::Object(map) => {
            let lists_members = map.contains_key("properties") || map.contains_key("allOf");
            if lists_members && !open && !map.contains_key("additionalProperties") {
                map.insert("unevaluatedProperties".into(), json!(false));
            }
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    // The parts of an allOf are closed by the schema that joins them.
                    ("allOf", Value::Array(parts)) => parts.iter_mut().for_each(|p| close(p, true)),
                    (_, child) => close(child, false),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| close(v, open)),
        _ => {}
    }
}

/// Checks `body`, answered with `status` by `method path`, against the document.
fn assert_documented(doc: &Value, components: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    let schema = &response["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{method} {path} documents no JSON body for {status}: {response}");
    let mut root = Map::new();
    root.insert("allOf".into(), json!([schema]));
    root.insert("unevaluatedProperties".into(), json!(false));
    root.insert("components".into(), components.clone());
    let root = Value::Object(root);
    let validator = jsonschema::validator_for(&root).expect("the schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {body}\ndoes not fit {schema}:\n{}",
        errors.join("\n")
    );
}

/// Sends a request and returns the status and the JSON body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

async fn document(app: &TestApp) -> Value {
    app.get("/openapi.json").await.json().await.unwrap()
}

#[tokio::test]
async fn the_documented_bodies_are_the_bodies_sent() {
    let app = spawn_ready_app(&["--admin-token", TOKEN, "--max-body-bytes", "4096"]).await;
    let doc = document(&app).await;
    let components = strict_components(&doc);
    let c = &app.client;
    let url = |path: &str| app.url(path);
    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(TOKEN);
    let model = app.info().await["name"].as_str().unwrap().to_string();
    let mut batch = vec![seed_payload(); 3];
    let mut missing = seed_payload();
    missing.as_object_mut().unwrap().remove("SPEND");
    batch[1]["SPEND"] = json!("a lot");
    let tensors = json!({"inputs": [{"name": "SPEND", "shape": [1], "datatype": "FP64", "data": [1.0]}]});

    let samples: Vec<(&str, &str, reqwest::RequestBuilder, u16)> = vec![
        ("get", "/health", c.get(url("/health")), 200),
        ("get", "/ready", c.get(url("/ready")), 200),
        ("get", "/model/info", c.get(url("/model/info")), 200),
        ("post", "/predict", c.post(url("/predict")).json(&seed_payload()), 200),
        ("post", "/predict", c.post(url("/predict")).json(&vec![seed_payload(); 2]), 200),
        (
            "post",
            "/predict",
            c.post(url("/predict")).header("content-type", "application/json").body("{"),
            400,
        ),
        ("post", "/predict", c.post(url("/predict")).body("{}"), 415),
        ("post", "/predict", c.post(url("/predict")).json(&json!({"pad": "x".repeat(8192)})), 413),
        ("post", "/predict", c.post(url("/predict")).json(&missing), 422),
        ("post", "/predict", c.post(url("/predict")).json(&batch), 422),
        ("get", "/admin/versions", admin(c.get(url("/admin/versions"))), 200),
        ("get", "/admin/versions", c.get(url("/admin/versions")), 401),
        ("post", "/admin/reload", admin(c.post(url("/admin/reload"))), 200),
        ("post", "/admin/rollback", admin(c.post(url("/admin/rollback"))), 409),
        ("post", "/admin/pin", admin(c.post(url("/admin/pin"))).json(&json!({"release": 1})), 422),
        ("post", "/admin/pin", admin(c.post(url("/admin/pin"))).json(&json!({"version": 99})), 404),
        ("post", "/admin/unpin", admin(c.post(url("/admin/unpin"))), 200),
        ("get", "/v2", c.get(url("/v2")), 200),
        ("get", "/v2/models/{name}", c.get(url(&format!("/v2/models/{model}"))), 200),
        ("get", "/v2/models/{name}", c.get(url("/v2/models/nothing")), 404),
        ("get", "/v2/models/{name}/ready", c.get(url(&format!("/v2/models/{model}/ready"))), 200),
        (
            "post",
            "/v2/models/{name}/infer",
            c.post(url(&format!("/v2/models/{model}/infer"))).json(&tensors),
            400,
        ),
    ];
    for (method, path, request, status) in samples {
        let (got, body) = send(request).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_documented(&doc, &components, method, path, status, &body);
    }
    // Pinned, then the pin's answer.
    let version = app.info().await["model_version"].clone();
    let (got, body) = send(admin(c.post(url("/admin/pin"))).json(&json!({ "version": version }))).await;
    assert_eq!(got, 200, "{body}");
    assert_documented(&doc, &components, "post", "/admin/pin", 200, &body);
    app.stop().await;
}

#[tokio::test]
async fn with_no_version_loaded_the_documented_bodies_are_the_bodies_sent() {
    // A plugin directory holding only a file that is not a plugin: the refusal is in the
    // answers, as a typed record.
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "price-sensitivity-1.wasm", b"not a component");
    let dir = dir.path().to_str().unwrap();
    let app = spawn_app(&["--plugin-dir", dir, "--bundled-plugin", "false"]).await;
    let refused = app
        .wait_until(std::time::Duration::from_secs(30), |app| async move {
            let (_, body) = send(app.client.post(app.url("/predict")).json(&seed_payload())).await;
            !body["last_load_error"].is_null()
        })
        .await;
    assert!(refused, "the broken file was not refused");
    let doc = document(&app).await;
    let components = strict_components(&doc);
    let c = &app.client;
    for (method, path, request) in [
        ("get", "/ready", c.get(app.url("/ready"))),
        ("get", "/model/info", c.get(app.url("/model/info"))),
        ("post", "/predict", c.post(app.url("/predict")).json(&seed_payload())),
    ] {
        let (got, body) = send(request).await;
        assert_eq!(got, 503, "{method} {path}: {body}");
        assert_documented(&doc, &components, method, path, 503, &body);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_rollouts_bodies_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin_artifacts::fixtures::MISBEHAVE, dir.path().join("misbehave-1.wasm")).unwrap();
    let flags = [
        "--plugin-dir",
        dir.path().to_str().unwrap(),
        "--admin-token",
        TOKEN,
        "--rollout-strategy",
        "phased",
    ];
    let app = spawn_ready_app(&flags).await;
    let doc = document(&app).await;
    let components = strict_components(&doc);
    let (c, url) = (&app.client, |path: &str| app.url(path));
    let (status, body) = send(c.get(url("/admin/rollout")).bearer_auth(TOKEN)).await;
    assert_eq!(status, 404);
    assert_documented(&doc, &components, "get", "/admin/rollout", status, &body);

    std::fs::copy(plugin_artifacts::fixtures::CANDIDATE, dir.path().join("misbehave-2.wasm")).unwrap();
    let judging = crate::helpers::within(std::time::Duration::from_secs(30), || async {
        app.info().await["rollout"]["candidate_version"] == "2"
    });
    assert!(judging.await.is_some());
    for _ in 0..20 {
        assert_eq!(
            c.post(url("/predict")).json(&json!({"action": "ok"})).send().await.unwrap().status(),
            200
        );
    }
    let samples: Vec<(&str, &str, reqwest::RequestBuilder, u16)> = vec![
        ("get", "/model/info", c.get(url("/model/info")), 200),
        ("get", "/admin/rollout", c.get(url("/admin/rollout")).bearer_auth(TOKEN), 200),
        ("post", "/admin/rollout/pause", c.post(url("/admin/rollout/pause")).bearer_auth(TOKEN), 200),
        ("post", "/admin/rollout/resume", c.post(url("/admin/rollout/resume")).bearer_auth(TOKEN), 200),
        ("post", "/admin/rollout/promote", c.post(url("/admin/rollout/promote")).bearer_auth(TOKEN), 200),
        ("post", "/admin/rollout/abort", c.post(url("/admin/rollout/abort")).bearer_auth(TOKEN), 409),
        ("get", "/model/info", c.get(url("/model/info")), 200),
    ];
    for (method, path, request, status) in samples {
        let (got, body) = send(request).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_documented(&doc, &components, method, path, status, &body);
    }
    assert_eq!(app.info().await["rollout"]["outcome"], "promote");
}

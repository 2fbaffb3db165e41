//! The OpenAPI description and the docs page: a valid OpenAPI 3 document listing every
//! route the server answers, a `/predict` schema the seed basket validates against, and
//! Swagger UI rendered by headless Chromium with nothing fetched from outside the host.
//! (The schema-driven fuzzer runs with the soak tests.)

use crate::helpers::{TestApp, seed_payload, spawn_ready_app};
use crate::process::{run_tool, write_file};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "docs-test-token";

/// Every route the server answers (with `ADMIN_TOKEN` set), as `(method, path)`.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/predict"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/model/info"),
    ("get", "/model/metrics"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/docs/"),
    ("get", "/docs/{file}"),
    ("get", "/admin/versions"),
    ("post", "/admin/pin"),
    ("post", "/admin/unpin"),
    ("post", "/admin/rollback"),
    ("post", "/admin/reload"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("get", "/v2/models/{name}/versions/{version}"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
    ("post", "/v2/models/{name}/versions/{version}/infer"),
];

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_every_route() {
    let app = spawn_ready_app(&["--admin-token", TOKEN]).await;
    let doc = document(&app).await;
    let scratch = tempfile::tempdir().unwrap();
    let path = write_file(scratch.path(), "openapi.json", doc.to_string().as_bytes());
    run_tool("openapi-spec-validator", &[&path]);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);

    let paths = doc["paths"].as_object().unwrap();
    for (method, route) in ROUTES {
        assert!(
            paths.get(*route).and_then(|p| p.get(*method)).is_some(),
            "{method} {route} is not documented"
        );
    }
    // And every documented operation is answered (not the router's 404 or 405).
    let serving = app.info().await["model_version"].as_str().unwrap().to_string();
    for (route, operations) in paths {
        let url = route
            .replace("{name}", "price-sensitivity")
            .replace("{version}", &serving)
            .replace("{file}", "swagger-ui.css");
        for method in operations.as_object().unwrap().keys() {
            let request = app.client.request(method.to_uppercase().parse().unwrap(), app.url(&url));
            let response = request.bearer_auth(TOKEN).json(&json!({})).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert!(status != 405 && !body.contains("no such route"), "{method} {url}: {status} {body}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_seed_basket_validates_against_the_predict_schema() {
    let app = spawn_ready_app(&[]).await;
    let doc = document(&app).await;
    let operation = &doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(operation["example"], seed_payload(), "the seed basket is the example");
    let schema = json!({ "$ref": operation["schema"]["$ref"], "components": doc["components"] });
    let validator = jsonschema::validator_for(&schema).expect("the request schema compiles");
    assert!(validator.is_valid(&seed_payload()), "{:?}", validator.validate(&seed_payload()).err());
    assert!(validator.is_valid(&json!([seed_payload(), seed_payload()])));

    // The schema says something: these fail it.
    let mut missing = seed_payload();
    missing.as_object_mut().unwrap().remove("BASKET_SIZE");
    let mut wrong_type = seed_payload();
    wrong_type["SPEND"] = json!("a lot");
    for invalid in [missing, wrong_type, json!([]), json!("basket")] {
        assert!(!validator.is_valid(&invalid), "{invalid} validated");
    }
    app.stop().await;
}

/// Requests a page made (its initiator), from a Chromium net log.
fn page_requests(net_log: &Path, origin: &str) -> Vec<String> {
    let log: Value = serde_json::from_slice(&std::fs::read(net_log).unwrap()).expect("net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].as_u64().unwrap();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job) && e["params"]["initiator"] == origin)
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_docs_page_renders_offline_in_headless_chromium() {
    let app = spawn_ready_app(&[]).await;
    let origin = format!("http://{}", app.address);
    let work = tempfile::tempdir().unwrap();
    let net_log = work.path().join("net-log.json");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs.png");
    let _ = std::fs::remove_file(&screenshot);
    // Every host name but the server's own fails to resolve: a page needing a CDN breaks.
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=15000",
        "--window-size=1280,1800",
    ];
    let page = format!("{origin}/docs/");
    let profile = format!("--user-data-dir={}", work.path().join("profile").display());
    let chromium = |extra: &[&str]| {
        let mut args: Vec<&str> = common.to_vec();
        args.push(&profile);
        args.extend_from_slice(extra);
        args.push(&page);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new("chromium").args(&args).output().expect("chromium (scripts/test.sh installs it)")
        })
    };
    let dom = chromium(&["--dump-dom", &format!("--log-net-log={}", net_log.display())]).await.unwrap();
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    let shot = chromium(&[&format!("--screenshot={}", screenshot.display())]).await.unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));

    // The operations list rendered: Swagger UI ran and read /openapi.json.
    for path in ["/predict", "/model/info", "/metrics", "/v2/models/{name}/infer"] {
        assert!(dom.contains(&format!(r#"data-path="{path}""#)), "{path} not rendered:\n{dom:.2000}");
    }
    assert!(dom.contains("predict-host"), "title not rendered");
    let fetched = page_requests(&net_log, &origin);
    assert!(fetched.iter().any(|u| u.ends_with("/openapi.json")), "{fetched:?}");
    assert!(fetched.iter().any(|u| u.ends_with("/swagger-ui-bundle.js")), "{fetched:?}");
    let outside: Vec<_> = fetched.iter().filter(|u| !u.starts_with(&format!("{origin}/"))).collect();
    assert!(outside.is_empty(), "the docs page fetched from outside the host: {outside:?}");
    let size = std::fs::metadata(&screenshot).expect("screenshot written").len();
    assert!(size > 20_000, "screenshot of {size} bytes is blank");
    println!("docs screenshot: {} ({size} bytes)", screenshot.display());
    app.stop().await;
}

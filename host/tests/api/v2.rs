//! The Open Inference Protocol (KServe V2 REST): metadata and health, inference that
//! agrees with `/predict` row for row, and a precise 4xx for every kind of bad request.

use crate::helpers::{TestApp, seed_payload, spawn_app, spawn_ready_app};
use serde_json::{Value, json};

const MODEL: &str = "price-sensitivity";
const LABELS: [&str; 3] = ["LA", "MM", "UM"];
const TEXT_FIELDS: [&str; 6] =
    ["BASKET_SIZE", "BASKET_TYPE", "STORE_REGION", "STORE_FORMAT", "PROD_CODE_20", "PROD_CODE_30"];

async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// One tensor per field of `rows`, in the datatypes a V2 client would pick: BYTES for
/// text, FP32 for SPEND, INT64 with shape `[batch, 1]` (nested data) for QUANTITY.
fn tensors(rows: &[Value]) -> Value {
    let batch = rows.len();
    let column = |field: &str| rows.iter().map(|row| row[field].clone()).collect::<Vec<_>>();
    let mut inputs: Vec<Value> = TEXT_FIELDS
        .iter()
        .map(|field| json!({"name": field, "shape": [batch], "datatype": "BYTES", "data": column(field)}))
        .collect();
    inputs.push(json!({"name": "SPEND", "shape": [batch], "datatype": "FP32", "data": column("SPEND")}));
    let quantity: Vec<Value> = column("QUANTITY").into_iter().map(|q| json!([q])).collect();
    inputs.push(json!({"name": "QUANTITY", "shape": [batch, 1], "datatype": "INT64", "data": quantity}));
    json!({ "inputs": inputs })
}

fn infer_path(version: Option<&str>) -> String {
    match version {
        Some(version) => format!("/v2/models/{MODEL}/versions/{version}/infer"),
        None => format!("/v2/models/{MODEL}/infer"),
    }
}

/// `POST` of `body` to the model's infer route; the version header must name the version.
async fn infer(app: &TestApp, body: &Value) -> Value {
    let response = app.post_json(&infer_path(None), body).await;
    assert_eq!(response.status(), 200);
    let version = response.headers()["x-model-version"].to_str().unwrap().to_string();
    assert_eq!(version, plugin_artifacts::PRICE_SENSITIVITY_VERSION);
    response.json().await.expect("JSON body")
}

fn output<'a>(body: &'a Value, name: &str) -> &'a Value {
    let outputs = body["outputs"].as_array().expect("outputs");
    outputs.iter().find(|o| o["name"] == name).unwrap_or_else(|| panic!("no output {name}: {body}"))
}

/// Asserts that row `row` of a V2 answer is the `/predict` answer `expected`.
fn assert_same_answer(v2: &Value, row: usize, expected: &Value) {
    let labels = output(v2, "label")["data"].as_array().unwrap();
    assert_eq!(labels[row], expected["prediction"], "label of row {row}");
    let probabilities = output(v2, "probabilities")["data"].as_array().unwrap();
    for (i, label) in LABELS.iter().enumerate() {
        let got = probabilities[row * LABELS.len() + i].as_f64().unwrap();
        let want = expected["probabilities"][label].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-12, "row {row}, {label}: {got} against /predict's {want}");
    }
}

#[tokio::test]
async fn v2_metadata_and_health_describe_the_serving_model() {
    let app = spawn_ready_app(&[]).await;
    let version = plugin_artifacts::PRICE_SENSITIVITY_VERSION;

    let (status, server) = get_json(&app, "/v2").await;
    assert_eq!(status, 200);
    assert_eq!(
        server,
        json!({"name": "predict-host", "version": env!("CARGO_PKG_VERSION"), "extensions": []})
    );
    assert_eq!(get_json(&app, "/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(get_json(&app, "/v2/health/ready").await, (200, json!({"ready": true})));

    for prefix in [format!("/v2/models/{MODEL}"), format!("/v2/models/{MODEL}/versions/{version}")] {
        let (status, metadata) = get_json(&app, &prefix).await;
        assert_eq!(status, 200, "{prefix}: {metadata}");
        assert_eq!(metadata["name"], MODEL);
        assert_eq!(metadata["versions"], json!([version]));
        assert_eq!(metadata["platform"], "wasm-component");
        let inputs = metadata["inputs"].as_array().unwrap();
        assert_eq!(inputs.len(), 8, "{metadata}");
        for input in inputs {
            let name = input["name"].as_str().unwrap();
            let datatype = if TEXT_FIELDS.contains(&name) { "BYTES" } else { "FP64" };
            assert_eq!(input["datatype"], datatype, "{input}");
            assert_eq!(input["shape"], json!([-1]), "{input}");
        }
        let numbers: Vec<&str> =
            inputs.iter().filter(|i| i["datatype"] == "FP64").map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(numbers, ["SPEND", "QUANTITY"]);
        assert_eq!(
            metadata["outputs"],
            json!([
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
            ])
        );

        let (status, ready) = get_json(&app, &format!("{prefix}/ready")).await;
        assert_eq!((status, ready), (200, json!({"name": MODEL, "ready": true})), "{prefix}/ready");
    }
    app.stop().await;
}

#[tokio::test]
async fn v2_infer_of_the_seed_basket_matches_predict() {
    let app = spawn_ready_app(&[]).await;
    let (status, expected) = app.predict(&seed_payload()).await;
    assert_eq!(status, 200, "{expected}");

    let mut request = tensors(&[seed_payload()]);
    request["id"] = json!("basket-1");
    let body = infer(&app, &request).await;
    assert_eq!(body["model_name"], MODEL);
    assert_eq!(body["model_version"], plugin_artifacts::PRICE_SENSITIVITY_VERSION);
    assert_eq!(body["id"], "basket-1");
    let names: Vec<&str> =
        body["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["label", "probabilities"]);
    assert_eq!(output(&body, "label")["datatype"], "BYTES");
    assert_eq!(output(&body, "label")["shape"], json!([1]));
    assert_eq!(output(&body, "probabilities")["datatype"], "FP64");
    assert_eq!(output(&body, "probabilities")["shape"], json!([1, 3]));
    assert_same_answer(&body, 0, &expected);

    // The same tensors under the serving version, with no id and only the probabilities.
    let mut request = tensors(&[seed_payload()]);
    request["outputs"] = json!([{"name": "probabilities"}]);
    let path = infer_path(Some(plugin_artifacts::PRICE_SENSITIVITY_VERSION));
    let response = app.post_json(&path, &request).await;
    assert_eq!(response.status(), 200);
    let only: Value = response.json().await.unwrap();
    assert!(only.get("id").is_none(), "no id asked, none echoed: {only}");
    let outputs = only["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{only}");
    assert_eq!(outputs[0]["name"], "probabilities");
    assert_eq!(outputs[0]["data"], output(&body, "probabilities")["data"]);
    app.stop().await;
}

#[tokio::test]
async fn v2_batch_of_64_matches_predict_row_for_row() {
    let app = spawn_ready_app(&[]).await;
    let sizes = ["S", "M", "L"];
    let types = ["SMALL_SHOP", "TOP_UP", "FULL_SHOP", "MIXED"];
    let regions = ["LONDON", "WALES", "SCOTLAND", "MIDLANDS"];
    let formats = ["LS", "MS", "SS", "XLS"];
    let rows: Vec<Value> = (0..64u32)
        .map(|i| {
            let k = i as usize;
            let mut row = seed_payload();
            row["SPEND"] = json!(1.5 + f64::from(i) * 4.25);
            row["QUANTITY"] = json!(1 + i % 13);
            row["BASKET_SIZE"] = json!(sizes[k % 3]);
            row["BASKET_TYPE"] = json!(types[(k / 3) % 4]);
            row["STORE_REGION"] = json!(regions[(k / 2) % 4]);
            row["STORE_FORMAT"] = json!(formats[(k / 5) % 4]);
            row
        })
        .collect();
    let (status, expected) = app.predict(&Value::Array(rows.clone())).await;
    assert_eq!(status, 200, "{expected}");
    let expected = expected.as_array().unwrap();

    let body = infer(&app, &tensors(&rows)).await;
    assert_eq!(output(&body, "label")["shape"], json!([64]));
    assert_eq!(output(&body, "probabilities")["shape"], json!([64, 3]));
    assert_eq!(output(&body, "probabilities")["data"].as_array().unwrap().len(), 64 * 3);
    for (row, expected) in expected.iter().enumerate() {
        assert_same_answer(&body, row, expected);
    }
    let labels: std::collections::HashSet<&str> =
        output(&body, "label")["data"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(labels.len() >= 2, "varied rows get varied labels: {labels:?}");
    app.stop().await;
}

/// Asserts a JSON error body with `status`, and returns its message.
async fn expect_error(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let body: Value = response.json().await.expect("JSON error body");
    let error = body["error"].as_str().unwrap_or_else(|| panic!("no error message: {body}"));
    assert!(!error.is_empty());
    error.to_string()
}

/// The seed basket's tensors with `change` applied to the input named `name`.
fn seed_with(name: &str, change: impl FnOnce(&mut Value)) -> Value {
    let mut request = tensors(&[seed_payload()]);
    let inputs = request["inputs"].as_array_mut().unwrap();
    change(inputs.iter_mut().find(|i| i["name"] == name).unwrap());
    request
}

#[tokio::test]
async fn v2_bad_requests_get_precise_json_errors() {
    let app = spawn_ready_app(&[]).await;
    let path = infer_path(None);
    let refused = |body: Value, status: u16| {
        let app = &app;
        let path = &path;
        async move { expect_error(app.post_json(path, &body).await, status).await }
    };

    let error = refused(seed_with("SPEND", |i| i["datatype"] = json!("BYTES")), 400).await;
    assert!(error.contains("SPEND") && error.contains("BYTES"), "{error}");
    let error = refused(seed_with("SPEND", |i| i["shape"] = json!([2])), 400).await;
    assert!(error.contains("SPEND") && error.contains("holds 2"), "{error}");
    let error = refused(seed_with("SPEND", |i| i["shape"] = json!([1, 2])), 400).await;
    assert!(error.contains("SPEND") && error.contains("[1, 2]"), "{error}");
    let error = refused(seed_with("SPEND", |i| i["name"] = json!("SPENDING")), 400).await;
    assert!(error.contains("unknown input \"SPENDING\""), "{error}");

    let error = refused(seed_with("QUANTITY", |i| i["datatype"] = json!("BOOL")), 400).await;
    assert!(error.contains("QUANTITY") && error.contains("BOOL"), "{error}");
    let int8 = seed_with("QUANTITY", |i| {
        i["datatype"] = json!("INT8");
        i["data"] = json!([[300]]);
    });
    let error = refused(int8, 400).await;
    assert!(error.contains("QUANTITY") && error.contains("got 300"), "{error}");
    let error = refused(seed_with("QUANTITY", |i| i["data"] = json!([[2.5]])), 400).await;
    assert!(error.contains("QUANTITY") && error.contains("got 2.5"), "{error}");
    let error = refused(seed_with("STORE_REGION", |i| i["data"] = json!([7])), 400).await;
    assert!(error.contains("STORE_REGION") && error.contains("must be a string"), "{error}");
    let error = refused(seed_with("SPEND", |i| i["data"] = json!(["125.5"])), 400).await;
    assert!(error.contains("SPEND") && error.contains("got a string"), "{error}");
    let error = refused(
        seed_with("SPEND", |i| {
            i["shape"] = json!([2]);
            i["data"] = json!([1.0, 2.0]);
        }),
        400,
    )
    .await;
    assert!(error.contains("SPEND") && error.contains("same batch"), "{error}");
    let error = refused(seed_with("BASKET_SIZE", |i| i["shape"] = json!("1")), 400).await;
    assert!(error.contains("BASKET_SIZE") && error.contains("shape"), "{error}");
    let mut twice = tensors(&[seed_payload()]);
    let first = twice["inputs"][0].clone();
    twice["inputs"].as_array_mut().unwrap().push(first);
    let error = refused(twice, 400).await;
    assert!(error.contains("BASKET_SIZE") && error.contains("twice"), "{error}");
    let error = refused(json!({"id": "x"}), 400).await;
    assert!(error.contains("inputs"), "{error}");
    // The plugin's own range check is a bad request too.
    let error = refused(seed_with("QUANTITY", |i| i["data"] = json!([[-3]])), 400).await;
    assert!(error.contains("QUANTITY"), "{error}");
    let error = expect_error(app.post_raw(&path, "application/json", "{\"inputs\": [").await, 400).await;
    assert!(error.contains("JSON"), "{error}");

    let mut missing = tensors(&[seed_payload()]);
    missing["inputs"].as_array_mut().unwrap().retain(|i| i["name"] != "QUANTITY");
    let error = refused(missing, 400).await;
    assert!(error.contains("missing") && error.contains("QUANTITY"), "{error}");

    let mut outputs = tensors(&[seed_payload()]);
    outputs["outputs"] = json!([{"name": "label"}, {"name": "confidence"}]);
    let error = refused(outputs, 400).await;
    assert!(error.contains("unknown output \"confidence\""), "{error}");

    let error =
        expect_error(app.post_json("/v2/models/no-such-model/infer", &tensors(&[seed_payload()])).await, 404)
            .await;
    assert!(error.contains("no-such-model"), "{error}");
    let error = expect_error(app.get("/v2/models/no-such-model").await, 404).await;
    assert!(error.contains("no-such-model"), "{error}");
    let error =
        expect_error(app.post_json(&infer_path(Some("0.0.0-nope")), &tensors(&[seed_payload()])).await, 404)
            .await;
    assert!(error.contains("0.0.0-nope"), "{error}");
    expect_error(app.get(&format!("/v2/models/{MODEL}/versions/0.0.0-nope/ready")).await, 404).await;

    let binary = app
        .client
        .post(app.url(&path))
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", "120")
        .body(tensors(&[seed_payload()]).to_string())
        .send()
        .await
        .unwrap();
    let error = expect_error(binary, 400).await;
    assert!(error.contains("binary tensor data extension is not supported"), "{error}");
    let error = refused(seed_with("SPEND", |i| i["parameters"] = json!({"binary_data_size": 4})), 400).await;
    assert!(error.contains("binary tensor data extension"), "{error}");

    let error =
        expect_error(app.post_raw(&path, "text/plain", tensors(&[seed_payload()]).to_string()).await, 415)
            .await;
    assert!(error.contains("application/json"), "{error}");

    // Still serving after all of that.
    let body = infer(&app, &tensors(&[seed_payload()])).await;
    assert_eq!(output(&body, "label")["shape"], json!([1]));
    app.stop().await;
}

#[tokio::test]
async fn v2_without_a_model_is_live_but_not_ready() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let app = spawn_app(&["--plugin-dir", dir, "--bundled-plugin", "false"]).await;
    assert_eq!(get_json(&app, "/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(get_json(&app, "/v2/health/ready").await, (503, json!({"ready": false})));
    expect_error(app.get(&format!("/v2/models/{MODEL}")).await, 503).await;
    expect_error(app.get(&format!("/v2/models/{MODEL}/ready")).await, 503).await;
    let error = expect_error(app.post_json(&infer_path(None), &tensors(&[seed_payload()])).await, 503).await;
    assert!(error.contains("no model"), "{error}");
    app.stop().await;
}

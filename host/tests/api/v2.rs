//! The Open Inference Protocol (KServe V2 REST): metadata and health, inference that
//! agrees with `/predict` row for row, and a precise 4xx for every kind of bad request.

use crate::helpers::{TestApp, seed_payload, spawn_app, spawn_ready_app};
use crate::process::run_tool;
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
        json!({"name": "predict-host", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]})
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

    // A JSON body is read as JSON whatever its Content-Type says, as Triton does.
    let response = app.post_raw(&path, "text/plain", tensors(&[seed_payload()]).to_string()).await;
    assert_eq!(response.status(), 200);

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

/// The seed basket's request with SPEND (FP64) and BASKET_SIZE (BYTES) moved into binary
/// data after the JSON header, as `tritonclient.http` sends them by default; `tamper`
/// may change the header and the binary part before they are joined.
async fn send_binary(app: &TestApp, tamper: impl FnOnce(&mut Value, &mut Vec<u8>)) -> reqwest::Response {
    let mut request = tensors(&[seed_payload()]);
    let mut binary = Vec::new();
    for input in request["inputs"].as_array_mut().unwrap() {
        let start = binary.len();
        match input["name"].as_str().unwrap() {
            "SPEND" => {
                input["datatype"] = json!("FP64");
                binary.extend_from_slice(&125.5f64.to_le_bytes());
            }
            "BASKET_SIZE" => {
                binary.extend_from_slice(&1u32.to_le_bytes());
                binary.extend_from_slice(b"M");
            }
            _ => continue,
        }
        input.as_object_mut().unwrap().remove("data");
        input["parameters"] = json!({"binary_data_size": binary.len() - start});
    }
    tamper(&mut request, &mut binary);
    let header = request.to_string();
    let length = header.len();
    let mut body = header.into_bytes();
    body.extend_from_slice(&binary);
    app.client
        .post(app.url(&infer_path(None)))
        .header("inference-header-content-length", length.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A change to a binary request's JSON header and binary part.
type Tamper = dyn FnOnce(&mut Value, &mut Vec<u8>);

#[tokio::test]
async fn v2_binary_tensors_in_and_out_and_precise_errors_for_malformed_ones() {
    let app = spawn_ready_app(&[]).await;
    let expected = app.predict(&seed_payload()).await.1;

    // Binary in, every output in binary.
    let response =
        send_binary(&app, |request, _| request["parameters"] = json!({"binary_data_output": true})).await;
    assert_eq!(response.status(), 200);
    let length: usize =
        response.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let body = response.bytes().await.unwrap();
    let header: Value = serde_json::from_slice(&body[..length]).unwrap();
    let sizes: Vec<u64> = header["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["parameters"]["binary_data_size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [4 + 2, 3 * 8], "{header}");
    let binary = &body[length..];
    assert_eq!(binary.len(), 30);
    assert_eq!(&binary[..4], &2u32.to_le_bytes());
    assert_eq!(std::str::from_utf8(&binary[4..6]).unwrap(), expected["prediction"]);
    for (k, label) in LABELS.iter().enumerate() {
        let x = f64::from_le_bytes(binary[6 + 8 * k..14 + 8 * k].try_into().unwrap());
        assert_eq!(x, expected["probabilities"][label].as_f64().unwrap(), "{label}");
    }
    // Binary in, JSON out.
    let response = send_binary(&app, |_, _| {}).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("inference-header-content-length").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(output(&body, "label")["data"], json!([expected["prediction"]]));

    let cases: Vec<(Box<Tamper>, &str)> = vec![
        (Box::new(|_, binary| binary.truncate(binary.len() - 1)), "only 7 are left"),
        (Box::new(|_, binary| binary.push(0)), "1 bytes of binary data after"),
        (
            Box::new(|request, _| request["inputs"][6]["datatype"] = json!("FP32")),
            "1 element(s) of 4 bytes, 4 bytes in all, but its binary data is 8 bytes",
        ),
        (
            Box::new(|_, binary| binary[0..4].copy_from_slice(&9u32.to_le_bytes())),
            "element 0 declares 9 bytes",
        ),
        (Box::new(|_, binary| binary[4] = 0xff), "element 0 is not UTF-8"),
        (Box::new(|_, binary| binary[5..13].copy_from_slice(&f64::NAN.to_le_bytes())), "not a finite number"),
        (
            Box::new(|request, _| request["inputs"][6]["parameters"]["binary_data_size"] = json!(-8)),
            "must be a count of bytes",
        ),
        (Box::new(|request, _| request["inputs"][6]["data"] = json!([1.0])), "both \"data\" and"),
        (
            Box::new(|request, _| request["parameters"] = json!({"binary_data_output": "yes"})),
            "true or false",
        ),
    ];
    for (tamper, message) in cases {
        let error = expect_error(send_binary(&app, tamper).await, 400).await;
        assert!(error.contains(message), "expected {message:?} in {error:?}");
    }
    // The header's own length, wrong.
    for (length, message) in [("abc", "a count of bytes"), ("99999", "holds only")] {
        let response = app
            .client
            .post(app.url(&infer_path(None)))
            .header("inference-header-content-length", length)
            .body(tensors(&[seed_payload()]).to_string())
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 400).await;
        assert!(error.contains(message), "{length}: {error}");
    }
    // Still serving after all of that.
    let response = send_binary(&app, |_, _| {}).await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn tritonclient_http_works_unchanged_with_binary_and_json_tensors() {
    let app = spawn_ready_app(&[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/triton_clients.py");
    let address = app.address.to_string();
    let output =
        tokio::task::spawn_blocking(move || run_tool("python3", &[script, &address, MODEL])).await.unwrap();
    assert!(output.contains("every answer equals /predict's"), "{output}");
    app.stop().await;
}

//! `POST /predict`: the seed basket, batches, and every kind of bad input.

use crate::helpers::{seed_payload, spawn_ready_app};
use serde_json::{Value, json};

fn assert_prediction(body: &Value) {
    let label = body["prediction"].as_str().expect("prediction label");
    assert!(["LA", "MM", "UM"].contains(&label), "label {label}");
    let probabilities = body["probabilities"].as_object().expect("probabilities");
    let keys: Vec<&str> = probabilities.keys().map(String::as_str).collect();
    assert_eq!(keys, ["LA", "MM", "UM"]);
    let total: f64 = probabilities.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() <= 1e-6, "probabilities sum to {total}");
    let best = probabilities.iter().max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).unwrap()).unwrap();
    assert_eq!(best.0, label, "label is the most probable class");
}

#[tokio::test]
async fn seed_basket_gets_a_label_probabilities_and_version() {
    let app = spawn_ready_app(&[]).await;
    let response = app.post_json("/predict", &seed_payload()).await;
    assert_eq!(response.status(), 200);
    let header = response.headers()["x-model-version"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    assert_prediction(&body);
    assert_eq!(body["model_version"], plugin_artifacts::PRICE_SENSITIVITY_VERSION);
    assert_eq!(header, plugin_artifacts::PRICE_SENSITIVITY_VERSION);
    app.stop().await;
}

#[tokio::test]
async fn batch_of_100_answers_each_row_in_order() {
    let app = spawn_ready_app(&[]).await;
    let sizes = ["S", "M", "L"];
    let regions = ["LONDON", "WALES", "SCOTLAND", "MIDLANDS"];
    let rows: Vec<Value> = (0..100)
        .map(|i| {
            let mut row = seed_payload();
            row["SPEND"] = json!(2.0 + f64::from(i) * 3.7);
            row["QUANTITY"] = json!(1 + i % 17);
            row["BASKET_SIZE"] = json!(sizes[i as usize % 3]);
            row["STORE_REGION"] = json!(regions[i as usize % 4]);
            row
        })
        .collect();
    let (status, batch) = app.predict(&Value::Array(rows.clone())).await;
    assert_eq!(status, 200);
    let batch = batch.as_array().expect("array answer");
    assert_eq!(batch.len(), 100);
    let mut labels = std::collections::HashSet::new();
    for (row, answer) in rows.iter().zip(batch) {
        assert_prediction(answer);
        let (status, single) = app.predict(row).await;
        assert_eq!(status, 200);
        assert_eq!(&single, answer, "batch answer matches the row's own answer");
        labels.insert(answer["prediction"].as_str().unwrap().to_string());
    }
    assert!(labels.len() >= 2, "varied rows get varied labels: {labels:?}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_category_is_scored_not_refused() {
    let app = spawn_ready_app(&[]).await;
    let mut row = seed_payload();
    row["STORE_REGION"] = json!("ATLANTIS");
    let (status, body) = app.predict(&row).await;
    assert_eq!(status, 200, "{body}");
    assert_prediction(&body);
    app.stop().await;
}

/// Asserts a JSON error body with `status`, and returns it.
async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = response.json().await.expect("JSON error body");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    body
}

#[tokio::test]
async fn bad_inputs_get_precise_errors_and_the_server_keeps_answering() {
    let app = spawn_ready_app(&[]).await;
    let json_type = "application/json";

    let body = expect_error(app.post_raw("/predict", json_type, "{\"BASKET_SIZE\": ").await, 400).await;
    assert!(body["error"].as_str().unwrap().contains("JSON"), "{body}");
    expect_error(app.post_raw("/predict", "text/plain", seed_payload().to_string()).await, 415).await;
    for shape in [json!("a string"), json!(42), json!(null), json!([1, 2]), json!([seed_payload(), "x"])] {
        expect_error(app.post_json("/predict", &shape).await, 422).await;
    }
    let body = expect_error(app.post_json("/predict", &json!([])).await, 422).await;
    assert!(body["error"].as_str().unwrap().contains("empty"), "{body}");

    let fields: Vec<String> = seed_payload().as_object().unwrap().keys().cloned().collect();
    for field in &fields {
        let mut row = seed_payload();
        row.as_object_mut().unwrap().remove(field);
        let body = expect_error(app.post_json("/predict", &row).await, 422).await;
        assert_eq!(body["field"], json!(field), "{body}");
        assert!(body["error"].as_str().unwrap().contains("missing"), "{body}");

        let numeric = seed_payload()[field].is_number();
        for wrong in
            [if numeric { json!("12") } else { json!(12) }, json!(true), json!({"a": 1}), json!(null)]
        {
            let mut row = seed_payload();
            row[field] = wrong.clone();
            let body = expect_error(app.post_json("/predict", &row).await, 422).await;
            assert_eq!(body["field"], json!(field), "{wrong} for {field}: {body}");
        }
    }

    // A batch names the offending row.
    let mut bad = seed_payload();
    bad["SPEND"] = json!("lots");
    let body = expect_error(app.post_json("/predict", &json!([seed_payload(), bad])).await, 422).await;
    assert_eq!(body["row"], 1);

    // The plugin's own range check is the caller's fault too.
    let mut negative = seed_payload();
    negative["QUANTITY"] = json!(-3);
    let body = expect_error(app.post_json("/predict", &negative).await, 422).await;
    assert!(body["error"].as_str().unwrap().contains("QUANTITY"), "{body}");

    let huge = vec![b' '; 10 * 1024 * 1024];
    expect_error(app.post_raw("/predict", json_type, huge).await, 413).await;

    expect_error(app.get("/predict").await, 405).await;
    expect_error(app.get("/no/such/route").await, 404).await;

    let (status, body) = app.predict(&seed_payload()).await;
    assert_eq!(status, 200, "still serving after bad input: {body}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_sending_gets_a_json_408_and_the_server_keeps_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_ready_app(&["--request-timeout-secs", "1"]).await;
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    // Promises 100 bytes of body, sends 10, then waits.
    let head =
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(format!("{head}{{\"BASKET_S").as_bytes()).await.unwrap();

    let mut response = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buffer = [0u8; 4096];
        // The answer is complete once its JSON body has closed.
        while !response.ends_with(b"}") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    let response = String::from_utf8_lossy(&response);
    assert!(read.is_ok(), "no complete answer within 10 s: {response:?}");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");

    let (status, body) = app.predict(&seed_payload()).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

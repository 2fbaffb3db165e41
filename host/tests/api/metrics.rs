//! `/model/metrics` serves the trainer's held-out evaluation, and those numbers hold:
//! the test split, scored through the running server, gives the same accuracy.

use crate::helpers::spawn_ready_app;
use price_sensitivity_model::dataset;
use price_sensitivity_model::{FIELDS, LABELS, Value as FieldValue};
use serde_json::{Map, Value, json};

#[tokio::test]
async fn metrics_are_the_trainers_and_reproduce_on_the_held_out_split() {
    let app = spawn_ready_app(&[]).await;
    let response = app.get("/model/metrics").await;
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.unwrap();
    let published: Value = serde_json::from_str(plugin_artifacts::PRICE_SENSITIVITY_METRICS).unwrap();
    assert_eq!(served, published);

    let test = dataset::published().test;
    assert_eq!(served["n_test"], json!(test.len()));
    let rows: Vec<Value> = test
        .iter()
        .map(|example| {
            let mut row = Map::new();
            for (field, value) in FIELDS.iter().zip(&example.values) {
                let value = match value {
                    FieldValue::Number(x) => json!(x),
                    FieldValue::Text(code) => json!(code),
                };
                row.insert(field.name.to_string(), value);
            }
            Value::Object(row)
        })
        .collect();
    let (status, answers) = app.predict(&Value::Array(rows)).await;
    assert_eq!(status, 200, "{answers}");
    let answers = answers.as_array().unwrap();
    let correct = test
        .iter()
        .zip(answers)
        .filter(|(example, answer)| answer["prediction"] == LABELS[example.label])
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    let claimed = served["accuracy"].as_f64().unwrap();
    assert!((accuracy - claimed).abs() < 1e-12, "re-derived {accuracy}, published {claimed}");
    // A real model: far better than always guessing the commonest class.
    let majority = (0..LABELS.len()).map(|k| test.iter().filter(|e| e.label == k).count()).max().unwrap();
    assert!(accuracy > majority as f64 / test.len() as f64 + 0.1, "accuracy {accuracy}");
    app.stop().await;
}

//! The ceiling predict-host is measured against: the same HTTP stack (axum, tokio), the
//! same request parsed into a typed struct, and a fixed JSON answer of the same shape,
//! with no model and no sandbox. Whatever predict-host spends beyond this is the price
//! of the plugin.
//!
//! `bench-ceiling <port>` listens on 127.0.0.1.

use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// The seed basket, field for field.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)] // parsed to pay the cost of parsing, never read
struct Basket {
    basket_size: String,
    basket_type: String,
    store_region: String,
    store_format: String,
    spend: f64,
    quantity: f64,
    prod_code_20: String,
    prod_code_30: String,
}

async fn predict(Json(_basket): Json<Basket>) -> Json<Value> {
    Json(json!({
        "prediction": "UM",
        "probabilities": {"LA": 0.0000002, "MM": 0.0006, "UM": 0.9994},
        "model_version": "ceiling",
    }))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, Router::new().route("/predict", post(predict))).await.expect("serve");
}

//! Health, readiness, and what the serving version is: `/health`, `/ready`,
//! `/model/info`, `/model/metrics`.

use super::AppState;
use super::error::ApiError;
use crate::artifact::Origin;
use crate::model::LoadedModel;
use crate::runtime::FieldType;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Liveness: the process answers HTTP.
#[utoipa::path(get, path = "/health", tag = "model",
    responses((status = 200, description = "The process answers", body = Object, example = json!({"status": "ok"}))))]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: a version is loaded and the process is not draining.
#[utoipa::path(get, path = "/ready", tag = "model", responses(
    (status = 200, description = "Ready to serve", body = Object,
        example = json!({"status": "ready", "model_version": "1"})),
    (status = 503, description = "No version loaded yet, or shutting down", body = super::docs::ErrorBody),
))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let version = state.slot.current().map(|m| m.version.clone());
    if state.slot.is_ready() {
        (StatusCode::OK, Json(json!({ "status": "ready", "model_version": version }))).into_response()
    } else {
        let body = json!({ "status": "not ready", "model_version": version, "error": "no model version is loaded, or shutting down" });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// What the serving version is: name, version, source, digest, schema, labels, signature,
/// pin, previous version and recent load failures.
#[utoipa::path(get, path = "/model/info", tag = "model", responses(
    (status = 200, description = "The serving version", body = Object),
    (status = 503, description = "No version is loaded", body = super::docs::ErrorBody),
))]
pub async fn info(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let model = state.slot.current().ok_or_else(|| state.no_model())?;
    let mut body = describe(&model);
    body["previous_version"] = json!(state.slot.previous().map(|m| m.version.clone()));
    body["pinned"] = json!(state.slot.pinned());
    body["last_load_error"] = json!(state.slot.last_failure().as_deref());
    body["load_errors"] = json!(state.slot.failures());
    body["source_error"] = json!(state.slot.source_error().as_deref());
    Ok(Json(body))
}

/// The held-out metrics published with the serving version, exactly as published.
#[utoipa::path(get, path = "/model/metrics", tag = "model", responses(
    (status = 200, description = "Held-out evaluation of the serving version", body = Object),
    (status = 404, description = "No metrics were published with this version", body = super::docs::ErrorBody),
    (status = 503, description = "No version is loaded", body = super::docs::ErrorBody),
))]
pub async fn metrics(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let model = state.slot.current().ok_or_else(|| state.no_model())?;
    match &model.metrics {
        Some(metrics) => Ok(Json(metrics.clone())),
        None => {
            Err(ApiError::NotFound(format!("no metrics were published with model version {}", model.version)))
        }
    }
}

fn describe(model: &LoadedModel) -> Value {
    let inputs: Vec<Value> = model
        .info
        .inputs
        .iter()
        .map(|f| {
            let kind = match f.type_ {
                FieldType::Number => "number",
                FieldType::Text => "text",
            };
            json!({
                "name": f.name, "type": kind, "required": f.required,
                "categories": f.categories, "description": f.description,
            })
        })
        .collect();
    let source = match &model.origin {
        Origin::Bundled => json!({ "kind": "bundled" }),
        Origin::PluginDir { path } => json!({ "kind": "plugin-dir", "path": path }),
        Origin::Registry(d) => json!({
            "kind": "registry", "model_package_group": d.group, "model_package_version": d.version,
            "model_package_arn": d.arn, "approval_status": d.approval_status, "artifact_url": d.artifact_url,
            "wit_world": d.world,
        }),
    };
    json!({
        "name": model.info.name,
        "model_version": model.version,
        "plugin_version": model.info.version,
        "description": model.info.description,
        "world": model.plugin.world(),
        "compiler": model.plugin.compiler().name(),
        "source": source,
        "digest": model.digest,
        "signed": model.signed,
        "signature_verified": model.signature_verified,
        "loaded_at": super::format_time(model.loaded_at),
        "load_ms": model.load_time.as_secs_f64() * 1000.0,
        "inputs": inputs,
        "labels": model.info.labels,
        "has_metrics": model.metrics.is_some(),
    })
}

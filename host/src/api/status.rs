//! Health, readiness, what the serving version is, and the process's metrics: `/health`,
//! `/ready`, `/model/info`, `/model/metrics`, `/metrics`.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::artifact::Origin;
use crate::capture::CaptureStatus;
use crate::model::LoadedModel;
use crate::rollout::RolloutStatus;
use crate::runtime::FieldType;
use crate::slot::{LoadFailureRecord, ServingSlot, SourceError};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use utoipa::{OpenApi, ToSchema};

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    paths(health, ready, info, metrics, prometheus_metrics),
    tags(
        (name = "model", description = "Health and what is serving"),
        (name = "operations", description = "Metrics and this description"),
    )
)]
pub struct StatusDocs;

/// The process answers.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(get, path = "/health", tag = "model",
    responses((status = 200, description = "The process answers", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Whether this process takes traffic.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(inline)]
    status: ReadyStatus,
    /// The version serving, if any has loaded.
    model_version: Option<String>,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ReadyStatus {
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
}

/// Readiness: a version is loaded and the process is not draining.
#[utoipa::path(get, path = "/ready", tag = "model", responses(
    (status = 200, description = "Ready to serve", body = Readiness,
        example = json!({"status": "ready", "model_version": "1"})),
    (status = 503, description = "No version loaded yet, or shutting down", body = Readiness),
))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let model_version = state.slot.current().map(|m| m.version.clone());
    if state.slot.is_ready() {
        (StatusCode::OK, Json(Readiness { status: ReadyStatus::Ready, model_version, error: None }))
    } else {
        let error = Some("no model version is loaded, or shutting down");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness { status: ReadyStatus::NotReady, model_version, error }),
        )
    }
}

/// The serving version: what it is, where it came from, what it takes and answers, and
/// what happened to the versions that did not load.
#[derive(Serialize, ToSchema)]
pub struct ModelInfo {
    /// The model's name, as its plugin declares it.
    name: String,
    /// The version as its source names it.
    model_version: String,
    /// The version its plugin declares.
    plugin_version: String,
    description: String,
    /// The WIT world the plugin implements.
    world: &'static str,
    /// The compiler its code was built with (it may change as the version tiers up).
    compiler: &'static str,
    source: ModelSource,
    /// `sha256:<hex>` of its plugin.
    digest: String,
    signed: bool,
    signature_verified: bool,
    /// When it loaded (RFC 3339, UTC).
    loaded_at: String,
    /// How long loading took, in milliseconds.
    load_ms: f64,
    /// The input fields, in order.
    inputs: Vec<InputField>,
    /// The labels it chooses from.
    labels: Vec<String>,
    /// Whether `/model/metrics` has its held-out evaluation.
    has_metrics: bool,
    /// The version it replaced, kept loaded for rollback.
    previous_version: Option<String>,
    /// The version an operator pinned, if any.
    pinned: Option<String>,
    /// The latest refusal, if any.
    last_load_error: Option<LoadFailureRecord>,
    /// Versions refused and not served since, most recent first.
    load_errors: Vec<LoadFailureRecord>,
    /// The source's failure to reach its backend, if it has not answered since.
    source_error: Option<SourceError>,
    /// The rollout in progress (a candidate judged beside this version), or else the
    /// last one that ended; absent if no version was ever rolled out in phases.
    rollout: Option<RolloutStatus>,
    /// Data capture of requests and answers for model monitoring.
    capture: CaptureStatus,
}

/// Where the serving version came from.
#[derive(Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum ModelSource {
    /// The plugin compiled into this binary.
    Bundled,
    /// A file in the watched plugin directory.
    PluginDir {
        #[schema(value_type = String)]
        path: PathBuf,
    },
    /// A version of a model package group in the SageMaker Model Registry.
    Registry {
        model_package_group: String,
        model_package_version: u32,
        model_package_arn: String,
        approval_status: String,
        artifact_url: String,
        wit_world: Option<String>,
    },
}

/// One input field of the model.
#[derive(Serialize, ToSchema)]
struct InputField {
    name: String,
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: InputKind,
    required: bool,
    /// The values a text field knows; others are answered as unknown.
    categories: Vec<String>,
    description: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum InputKind {
    Number,
    Text,
}

/// What the serving version is: name, version, source, digest, schema, labels, signature,
/// pin, previous version and recent load failures.
#[utoipa::path(get, path = "/model/info", tag = "model", responses(
    (status = 200, description = "The serving version", body = ModelInfo),
    (status = 503, description = "No version is loaded", body = ErrorBody),
))]
pub async fn info(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let model = state.slot.current().ok_or_else(|| state.no_model())?;
    Ok(Json(describe(&model, &state.slot, state.capture.status())))
}

/// The held-out metrics published with the serving version, exactly as published.
#[utoipa::path(get, path = "/model/metrics", tag = "model", responses(
    (status = 200, description = "Held-out evaluation of the serving version, as published", body = Object),
    (status = 404, description = "No metrics were published with this version", body = ErrorBody),
    (status = 503, description = "No version is loaded", body = ErrorBody),
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

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn prometheus_metrics() -> impl IntoResponse {
    let text = crate::telemetry::metrics::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

fn describe(model: &LoadedModel, slot: &ServingSlot, capture: CaptureStatus) -> ModelInfo {
    let inputs = model
        .info
        .inputs
        .iter()
        .map(|f| InputField {
            name: f.name.clone(),
            kind: match f.type_ {
                FieldType::Number => InputKind::Number,
                FieldType::Text => InputKind::Text,
            },
            required: f.required,
            categories: f.categories.clone(),
            description: f.description.clone(),
        })
        .collect();
    let source = match &model.origin {
        Origin::Bundled => ModelSource::Bundled,
        Origin::PluginDir { path } => ModelSource::PluginDir { path: path.clone() },
        Origin::Registry(d) => ModelSource::Registry {
            model_package_group: d.group.clone(),
            model_package_version: d.version,
            model_package_arn: d.arn.clone(),
            approval_status: d.approval_status.clone(),
            artifact_url: d.artifact_url.clone(),
            wit_world: d.world.clone(),
        },
    };
    ModelInfo {
        name: model.info.name.clone(),
        model_version: model.version.clone(),
        plugin_version: model.info.version.clone(),
        description: model.info.description.clone(),
        world: model.plugin.world(),
        compiler: model.plugin.compiler().name(),
        source,
        digest: model.digest.clone(),
        signed: model.signed,
        signature_verified: model.signature_verified,
        loaded_at: crate::telemetry::format_time(model.loaded_at),
        load_ms: model.load_time.as_secs_f64() * 1000.0,
        inputs,
        labels: model.info.labels.clone(),
        has_metrics: model.metrics.is_some(),
        previous_version: slot.previous().map(|m| m.version.clone()),
        pinned: slot.pinned(),
        last_load_error: slot.last_failure().as_deref().cloned(),
        load_errors: slot.failures(),
        source_error: slot.source_error().as_deref().cloned(),
        rollout: slot.rollout_status(),
        capture,
    }
}

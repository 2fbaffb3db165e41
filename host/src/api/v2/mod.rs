//! The Open Inference Protocol (KServe V2 REST, as Triton and KServe serve it) over the
//! serving model: server and model metadata, health, and inference on JSON tensors or
//! with the binary tensor data extension.
//!
//! Each model input field is one tensor of shape `[batch]` or `[batch, 1]`; the answer is
//! a `label` tensor (BYTES) and a `probabilities` tensor (FP64, one column per label).
//! Bad requests are 400, as V2 clients expect, rather than the 422 of `/predict`.

mod answer;
mod binary;
mod failure;
pub mod grpc;
mod header;
mod infer;
mod schema;
mod tensors;

use super::{ApiError, AppState, ErrorBody};
use crate::model::LoadedModel;
use crate::runtime::FieldType;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use infer::model_infer;
pub use schema::*;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

const TAG: &str = "Open Inference Protocol (V2)";

/// What `GET /v2/models/{name}` reports as the platform.
const PLATFORM: &str = "wasm-component";

/// Every route of the protocol, with full paths; the caller merges them into its router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(server_live))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(model_infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(model_infer))
}

/// The OpenAPI description of [`routes`].
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        server_metadata,
        server_live,
        server_ready,
        model_metadata,
        version_metadata,
        model_ready,
        version_ready,
        infer::model_infer,
        infer::version_infer
    ),
    // Responses described by a type (`InferResponses`) do not register their bodies.
    components(schemas(InferResponse, ModelMetadata, ModelReady, ErrorBody)),
    tags((name = TAG, description = "KServe V2 REST inference, as Triton and KServe serve it: JSON tensors, and binary ones after a JSON header (Inference-Header-Content-Length)."))
)]
pub struct V2Docs;

/// What both metadata routes answer, but for their own 404 (one names the version).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description only
enum MetadataResponses {
    #[response(
        status = 200,
        description = "The serving version's input and output tensors",
        content_type = "application/json"
    )]
    Metadata(ModelMetadata),
    #[response(status = 503, description = "No model version is loaded", content_type = "application/json")]
    NoModel(ErrorBody),
}

/// What both model readiness routes answer, but for their own 404.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description only
enum ReadyResponses {
    #[response(status = 200, description = "The model is serving", content_type = "application/json")]
    Ready(ModelReady),
    #[response(status = 503, description = "No model version is loaded", content_type = "application/json")]
    NoModel(ErrorBody),
}

#[utoipa::path(
    get,
    path = "/v2",
    tag = TAG,
    responses(
        (status = 200, description = "The server's name, version and extensions", body = ServerMetadata,
            content_type = "application/json"),
    )
)]
async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["binary_tensor_data".into()],
    })
}

#[utoipa::path(
    get,
    path = "/v2/health/live",
    tag = TAG,
    responses(
        (status = 200, description = "The process answers HTTP", body = ServerLive,
            content_type = "application/json"),
    )
)]
async fn server_live() -> Json<ServerLive> {
    Json(ServerLive { live: true })
}

#[utoipa::path(
    get,
    path = "/v2/health/ready",
    tag = TAG,
    responses(
        (status = 200, description = "A model version is loaded and the server is not draining",
            body = ServerReady, content_type = "application/json"),
        (status = 503, description = "No model version is loaded yet, or the server is shutting down",
            body = ServerReady, content_type = "application/json"),
    )
)]
async fn server_ready(State(state): State<AppState>) -> (StatusCode, Json<ServerReady>) {
    let ready = state.slot.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(ServerReady { ready }))
}

#[utoipa::path(get, path = "/v2/models/{name}", tag = TAG, params(ModelName), responses(
    MetadataResponses,
    (status = 404, description = "No model of that name", body = ErrorBody, content_type = "application/json"),
))]
async fn model_metadata(
    State(state): State<AppState>,
    path: ModelPath,
) -> Result<Json<ModelMetadata>, ApiError> {
    let model = serving(&state, &path)?;
    Ok(Json(metadata(&model)))
}

/// Served by [`model_metadata`]; described apart, since it names the version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = TAG, params(ModelVersion), responses(
    MetadataResponses,
    (status = 404, description = "No model of that name, or that version is not serving", body = ErrorBody,
        content_type = "application/json"),
))]
#[allow(dead_code)] // a description only
fn version_metadata() {}

#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = TAG, params(ModelName), responses(
    ReadyResponses,
    (status = 404, description = "No model of that name", body = ErrorBody, content_type = "application/json"),
))]
async fn model_ready(State(state): State<AppState>, path: ModelPath) -> Result<Json<ModelReady>, ApiError> {
    let model = serving(&state, &path)?;
    Ok(Json(ModelReady { name: model.info.name.clone(), ready: true }))
}

/// Served by [`model_ready`]; described apart, since it names the version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = TAG, params(ModelVersion), responses(
    ReadyResponses,
    (status = 404, description = "No model of that name, or that version is not serving", body = ErrorBody,
        content_type = "application/json"),
))]
#[allow(dead_code)] // a description only
fn version_ready() {}

/// The model a route names: `{name}`, and `{version}` on the versioned routes.
#[derive(Deserialize)]
pub(super) struct ModelPath {
    name: String,
    version: Option<String>,
}

impl FromRequestParts<AppState> for ModelPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Path::<Self>::from_request_parts(parts, state).await {
            Ok(Path(path)) => Ok(path),
            // A path segment that does not decode cannot name a model.
            Err(rejection) => Err(ApiError::NotFound(format!("no such model: {}", rejection.body_text()))),
        }
    }
}

/// The path parameters of the unversioned model routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // a description only: read as a `ModelPath`
pub(super) struct ModelName {
    /// The model's name.
    name: String,
}

/// The path parameters of the versioned model routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // a description only: read as a `ModelPath`
pub(super) struct ModelVersion {
    /// The model's name.
    name: String,
    /// The model version; only the serving version is available.
    version: String,
}

/// The serving model, if it is the one `path` asks for.
pub(super) fn serving(state: &AppState, path: &ModelPath) -> Result<Arc<LoadedModel>, ApiError> {
    let model = state.slot.current().ok_or_else(|| state.no_model())?;
    let name = &path.name;
    if *name != model.info.name {
        return Err(ApiError::NotFound(format!(
            "unknown model \"{name}\"; this server serves \"{}\"",
            model.info.name
        )));
    }
    match &path.version {
        Some(version) if *version != model.version => Err(ApiError::NotFound(format!(
            "model \"{name}\" has no version \"{version}\" serving; only version \"{}\" is available",
            model.version
        ))),
        _ => Ok(model),
    }
}

fn metadata(model: &LoadedModel) -> ModelMetadata {
    let inputs = model
        .info
        .inputs
        .iter()
        .map(|spec| TensorMetadata {
            name: spec.name.clone(),
            // Numbers reach the plugin as f64, whatever datatype they arrive in.
            datatype: match spec.type_ {
                FieldType::Number => Datatype::Fp64,
                FieldType::Text => Datatype::Bytes,
            },
            shape: vec![-1],
        })
        .collect();
    let labels = i64::try_from(model.info.labels.len()).unwrap_or(i64::MAX);
    ModelMetadata {
        name: model.info.name.clone(),
        versions: vec![model.version.clone()],
        platform: PLATFORM.into(),
        inputs,
        outputs: vec![
            TensorMetadata { name: "label".into(), datatype: Datatype::Bytes, shape: vec![-1] },
            TensorMetadata {
                name: "probabilities".into(),
                datatype: Datatype::Fp64,
                shape: vec![-1, labels],
            },
        ],
    }
}

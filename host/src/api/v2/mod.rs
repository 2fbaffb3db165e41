//! The Open Inference Protocol (KServe V2 REST, as Triton and KServe serve it) over the
//! serving model: server and model metadata, health, and inference on JSON tensors.
//!
//! Each model input field is one tensor of shape `[batch]` or `[batch, 1]`; the answer is
//! a `label` tensor (BYTES) and a `probabilities` tensor (FP64, one column per label).
//! Bad requests are 400, as V2 clients expect, rather than the 422 of `/predict`.

mod schema;
mod tensors;

use super::predict::from_rejection;
use super::{ApiError, AppState, MODEL_VERSION_HEADER};
use crate::model::{LoadedModel, PredictFailure};
use crate::runtime::{FieldType, Prediction};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use schema::*;
use serde_json::Value;
use std::sync::Arc;
use tensors::{parse_request, refuse_binary, to_rows};

const TAG: &str = "Open Inference Protocol (V2)";

/// What `GET /v2/models/{name}` reports as the platform.
const PLATFORM: &str = "wasm-component";

/// The header of the binary tensor data extension, which this server does not implement.
const BINARY_HEADER: &str = "inference-header-content-length";

const BINARY_REFUSAL: &str = "the binary tensor data extension is not supported; send JSON tensors";

/// Every route of the protocol, with full paths; the caller merges them into its router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(server_live))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(version_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(version_ready))
        .route("/v2/models/{name}/infer", post(model_infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(version_infer))
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
        model_infer,
        version_infer
    ),
    // Responses described by a type (`InferResponses`) do not register their bodies.
    components(schemas(InferResponse)),
    tags((name = TAG, description = "KServe V2 REST inference, as Triton and KServe serve it: JSON tensors only."))
)]
pub struct V2Docs;

/// Why a V2 route did not answer 200: a bad request is the protocol's 400; everything
/// else is the API's usual error and status.
#[derive(Debug)]
enum Failure {
    BadRequest(String),
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(error) => (StatusCode::BAD_REQUEST, Json(V2Error { error })).into_response(),
            Self::Api(error) => error.into_response(),
        }
    }
}

/// What both inference routes answer, but for their own 404 (one names the version).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description only: answers are built by `infer`
enum InferResponses {
    #[response(status = 200, description = "One label and one row of probabilities per batch element",
        content_type = "application/json",
        headers(("x-model-version" = String, description = "The model version that answered")))]
    Inferred(InferResponse),
    #[response(
        status = 400,
        description = "Malformed JSON, or tensors that do not fit the model's inputs",
        content_type = "application/json"
    )]
    BadRequest(V2Error),
    #[response(
        status = 413,
        description = "The body exceeds the size limit",
        content_type = "application/json"
    )]
    TooLarge(V2Error),
    #[response(
        status = 415,
        description = "The body is not declared as application/json",
        content_type = "application/json"
    )]
    NotJson(V2Error),
    #[response(status = 500, description = "The model plugin failed", content_type = "application/json")]
    PluginFailed(V2Error),
    #[response(status = 503, description = "No model version is loaded, or every plugin call slot is busy",
        content_type = "application/json",
        headers(("retry-after" = String, description = "Seconds to wait, when the server is overloaded")))]
    Unavailable(V2Error),
    #[response(status = 504, description = "The model plugin timed out", content_type = "application/json")]
    TimedOut(V2Error),
}

fn bad<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::BadRequest(message.into()))
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
        extensions: Vec::new(),
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

#[utoipa::path(
    get,
    path = "/v2/models/{name}",
    tag = TAG,
    params(("name" = String, Path, description = "The model's name")),
    responses(
        (status = 200, description = "The serving version's input and output tensors", body = ModelMetadata,
            content_type = "application/json"),
        (status = 404, description = "No model of that name", body = V2Error, content_type = "application/json"),
        (status = 503, description = "No model version is loaded", body = V2Error,
            content_type = "application/json"),
    )
)]
async fn model_metadata(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let Path(name) = path.map_err(unknown_path)?;
    let model = serving(&state, &name, None)?;
    Ok(Json(metadata(&model)))
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "The model version; only the serving version is available"),
    ),
    responses(
        (status = 200, description = "The version's input and output tensors", body = ModelMetadata,
            content_type = "application/json"),
        (status = 404, description = "No model of that name, or that version is not serving", body = V2Error,
            content_type = "application/json"),
        (status = 503, description = "No model version is loaded", body = V2Error,
            content_type = "application/json"),
    )
)]
async fn version_metadata(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let Path((name, version)) = path.map_err(unknown_path)?;
    let model = serving(&state, &name, Some(&version))?;
    Ok(Json(metadata(&model)))
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/ready",
    tag = TAG,
    params(("name" = String, Path, description = "The model's name")),
    responses(
        (status = 200, description = "The model is serving", body = ModelReady, content_type = "application/json"),
        (status = 404, description = "No model of that name", body = V2Error, content_type = "application/json"),
        (status = 503, description = "No model version is loaded", body = V2Error,
            content_type = "application/json"),
    )
)]
async fn model_ready(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModelReady>, ApiError> {
    let Path(name) = path.map_err(unknown_path)?;
    let model = serving(&state, &name, None)?;
    Ok(Json(ModelReady { name: model.info.name.clone(), ready: true }))
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}/ready",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "The model version; only the serving version is available"),
    ),
    responses(
        (status = 200, description = "The version is serving", body = ModelReady,
            content_type = "application/json"),
        (status = 404, description = "No model of that name, or that version is not serving", body = V2Error,
            content_type = "application/json"),
        (status = 503, description = "No model version is loaded", body = V2Error,
            content_type = "application/json"),
    )
)]
async fn version_ready(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ModelReady>, ApiError> {
    let Path((name, version)) = path.map_err(unknown_path)?;
    let model = serving(&state, &name, Some(&version))?;
    Ok(Json(ModelReady { name: model.info.name.clone(), ready: true }))
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/infer",
    tag = TAG,
    params(("name" = String, Path, description = "The model's name")),
    request_body(content = InferRequest, content_type = "application/json",
        description = "JSON tensors, one per model input field",
        example = json!({
            "id": "basket-1",
            "inputs": [
                {"name": "BASKET_SIZE", "shape": [1], "datatype": "BYTES", "data": ["M"]},
                {"name": "BASKET_TYPE", "shape": [1], "datatype": "BYTES", "data": ["MIXED"]},
                {"name": "STORE_REGION", "shape": [1], "datatype": "BYTES", "data": ["LONDON"]},
                {"name": "STORE_FORMAT", "shape": [1], "datatype": "BYTES", "data": ["LS"]},
                {"name": "SPEND", "shape": [1], "datatype": "FP64", "data": [125.5]},
                {"name": "QUANTITY", "shape": [1, 1], "datatype": "INT64", "data": [[3]]},
                {"name": "PROD_CODE_20", "shape": [1], "datatype": "BYTES", "data": ["FOOD"]},
                {"name": "PROD_CODE_30", "shape": [1], "datatype": "BYTES", "data": ["FRESH"]}
            ]
        })),
    responses(
        InferResponses,
        (status = 404, description = "No model of that name", body = V2Error, content_type = "application/json"),
    )
)]
async fn model_infer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Failure> {
    let Path(name) = path.map_err(unknown_path)?;
    infer(state, &headers, &name, None, body).await
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/versions/{version}/infer",
    tag = TAG,
    params(
        ("name" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "The model version; only the serving version is available"),
    ),
    request_body(content = InferRequest, content_type = "application/json",
        description = "JSON tensors, one per model input field"),
    responses(
        InferResponses,
        (status = 404, description = "No model of that name, or that version is not serving", body = V2Error,
            content_type = "application/json"),
    )
)]
async fn version_infer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Failure> {
    let Path((name, version)) = path.map_err(unknown_path)?;
    infer(state, &headers, &name, Some(&version), body).await
}

/// A path segment that does not decode cannot name a model.
fn unknown_path(rejection: PathRejection) -> ApiError {
    ApiError::NotFound(format!("no such model: {}", rejection.body_text()))
}

/// The serving model, if it is the one `name` (and `version`, when given) asks for.
fn serving(state: &AppState, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, ApiError> {
    let model = state.slot.current().ok_or_else(|| state.no_model())?;
    if name != model.info.name {
        return Err(ApiError::NotFound(format!(
            "unknown model \"{name}\"; this server serves \"{}\"",
            model.info.name
        )));
    }
    match version {
        Some(version) if version != model.version => Err(ApiError::NotFound(format!(
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

async fn infer(
    state: AppState,
    headers: &HeaderMap,
    name: &str,
    version: Option<&str>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Failure> {
    // Checked before the body: a binary request is not JSON, and would otherwise be
    // refused for its content type or syntax rather than for what it is.
    if headers.contains_key(BINARY_HEADER) {
        return bad(BINARY_REFUSAL);
    }
    let Json(body) = body.map_err(|r| from_rejection(r, state.max_body_bytes))?;
    let model = serving(&state, name, version)?;
    let request = parse_request(body)?;
    refuse_binary(&request)?;
    let outputs = requested_outputs(request.outputs.as_deref())?;
    let (rows, batch) = to_rows(&request.inputs, &model.info.inputs, state.max_batch_rows)?;

    let predictions = state.score(&model, rows).await?.map_err(|failure| match failure {
        // The plugin refusing a row is the caller's fault: a bad request, as V2 has it.
        PredictFailure::InvalidInput { row, message } => {
            Failure::BadRequest(format!("batch element {row}: {message}"))
        }
        failure => Failure::Api(ApiError::Plugin { failure, version: model.version.clone() }),
    })?;

    let body = InferResponse {
        model_name: model.info.name.clone(),
        model_version: model.version.clone(),
        id: request.id,
        outputs: outputs.iter().map(|&output| output_tensor(output, &predictions, &model, batch)).collect(),
    };
    let mut response = Json(body).into_response();
    if let Ok(version) = HeaderValue::from_str(&model.version) {
        response.headers_mut().insert(MODEL_VERSION_HEADER, version);
    }
    Ok(response)
}

/// The outputs to answer with, in order: those requested, or all of them.
fn requested_outputs(requested: Option<&[RequestedOutput]>) -> Result<Vec<OutputName>, Failure> {
    let requested = match requested {
        None | Some([]) => return Ok(vec![OutputName::Label, OutputName::Probabilities]),
        Some(requested) => requested,
    };
    let mut outputs = Vec::with_capacity(requested.len());
    for output in requested {
        if outputs.contains(&output.name) {
            return bad(format!("output \"{}\" is requested twice", output.name.as_str()));
        }
        outputs.push(output.name);
    }
    Ok(outputs)
}

fn output_tensor(
    name: OutputName,
    predictions: &[Prediction],
    model: &LoadedModel,
    batch: usize,
) -> OutputTensor {
    let rows = i64::try_from(batch).unwrap_or(i64::MAX);
    match name {
        OutputName::Label => OutputTensor {
            name,
            datatype: Datatype::Bytes,
            shape: vec![rows],
            data: predictions.iter().map(|p| Value::String(p.label.clone())).collect(),
        },
        OutputName::Probabilities => {
            let labels = &model.info.labels;
            // `LoadedModel::predict` has checked that every label is scored exactly once.
            let data = predictions
                .iter()
                .flat_map(|p| {
                    labels.iter().map(|label| {
                        let score = p.scores.iter().find(|s| &s.label == label);
                        Value::from(score.map_or(0.0, |s| s.probability))
                    })
                })
                .collect();
            let columns = i64::try_from(labels.len()).unwrap_or(i64::MAX);
            OutputTensor { name, datatype: Datatype::Fp64, shape: vec![rows, columns], data }
        }
    }
}

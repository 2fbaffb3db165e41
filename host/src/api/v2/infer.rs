//! `POST /v2/models/{name}[/versions/{version}]/infer`: JSON tensors in, a `label` and a
//! `probabilities` tensor out, scored by the same plugin call as `/predict`.

use super::failure::{Failure, bad};
use super::schema::{Datatype, InferRequest, InferResponse, OutputName, OutputTensor, RequestedOutput};
use super::tensors::{BINARY_REFUSAL, parse_request, refuse_binary, to_rows};
use super::{ModelName, ModelPath, ModelVersion, TAG, serving};
use crate::api::json::{JsonBody, JsonBodyErrors};
use crate::api::{ApiError, AppState, ErrorBody, MODEL_VERSION_HEADER};
use crate::model::{LoadedModel, PredictFailure};
use crate::runtime::Prediction;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The header of the binary tensor data extension, which this server does not implement.
const BINARY_HEADER: &str = "inference-header-content-length";

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
    BadRequest(ErrorBody),
    #[response(status = 500, description = "The model plugin failed", content_type = "application/json")]
    PluginFailed(ErrorBody),
    #[response(status = 503, description = "No model version is loaded, or every plugin call slot is busy",
        content_type = "application/json",
        headers(("retry-after" = String, description = "Seconds to wait, when the server is overloaded")))]
    Unavailable(ErrorBody),
    #[response(status = 504, description = "The model plugin timed out", content_type = "application/json")]
    TimedOut(ErrorBody),
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/infer",
    tag = TAG,
    params(ModelName),
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
        JsonBodyErrors,
        (status = 404, description = "No model of that name", body = ErrorBody, content_type = "application/json"),
    )
)]
pub(super) async fn model_infer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: ModelPath,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, Failure> {
    infer(state, &headers, &path, body).await
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/versions/{version}/infer",
    tag = TAG,
    params(ModelVersion),
    request_body(content = InferRequest, content_type = "application/json",
        description = "JSON tensors, one per model input field"),
    responses(
        InferResponses,
        JsonBodyErrors,
        (status = 404, description = "No model of that name, or that version is not serving", body = ErrorBody,
            content_type = "application/json"),
    )
)]
#[allow(dead_code)] // a description only: `model_infer` serves this route
pub(super) fn version_infer() {}

async fn infer(
    state: AppState,
    headers: &HeaderMap,
    path: &ModelPath,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, Failure> {
    // Checked before the body: a binary request is not JSON, and would otherwise be
    // refused for its content type or syntax rather than for what it is.
    if headers.contains_key(BINARY_HEADER) {
        return bad(BINARY_REFUSAL);
    }
    let JsonBody(body) = body?;
    let model = serving(&state, path)?;
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

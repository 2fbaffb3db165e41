//! `POST /v2/models/{name}[/versions/{version}]/infer`: tensors in (JSON, or binary after
//! a JSON header), a `label` and a `probabilities` tensor out the same way, scored by the
//! same plugin call as `/predict`. The body is read as JSON whatever its `Content-Type`
//! says, as Triton does: its clients send none.

use super::answer::Output;
use super::binary::{self, HEADER_LENGTH};
use super::failure::{Failure, bad};
use super::schema::{BinaryOutput, InferRequest, InferResponse, OutputName, OutputTensor};
use super::tensors::{parse_request, refuse_repeats, to_rows};
use super::{ModelName, ModelPath, ModelVersion, TAG, serving};
use crate::api::rows::json_kind;
use crate::api::scoring::{Routing, Scored, request_id};
use crate::api::{ApiError, AppState, ErrorBody, MODEL_VERSION_HEADER};
use crate::model::PredictFailure;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

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
        description = "Malformed JSON, binary data that does not match its declaration, or tensors \
            that do not fit the model's inputs",
        content_type = "application/json"
    )]
    BadRequest(ErrorBody),
    #[response(
        status = 413,
        description = "The body exceeds MAX_BODY_BYTES",
        content_type = "application/json"
    )]
    TooLarge(ErrorBody),
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
        (status = 404, description = "No model of that name", body = ErrorBody, content_type = "application/json"),
    )
)]
pub(super) async fn model_infer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: ModelPath,
    body: Result<Bytes, BytesRejection>,
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Failure::Api(ApiError::PayloadTooLarge(state.max_body_bytes)),
        _ => Failure::BadRequest(format!("the body could not be read: {}", rejection.body_text())),
    })?;
    let (header, binary) = binary::split(headers, body)?;
    let header = super::header::read(&header)
        .map_err(|e| Failure::BadRequest(format!("malformed JSON: the inference header is not JSON: {e}")))?;
    let model = serving(&state, path)?;
    let request = parse_request(header, binary)?;
    let outputs = requested_outputs(&request)?;
    let (rows, _) = to_rows(&request.inputs, &model.info.inputs, state.max_batch_rows)?;

    let routing = match &path.version {
        Some(_) => Routing::Stable,
        None => Routing::from_headers(headers, routing_key(&request)),
    };
    let Scored { model, outcome, capture } = state.score(&model, rows, routing, request_id(headers)).await?;
    let predictions = outcome.map_err(|failure| match failure {
        // The plugin refusing a row is the caller's fault: a bad request, as V2 has it.
        PredictFailure::InvalidInput { row, message } => {
            Failure::BadRequest(format!("batch element {row}: {message}"))
        }
        failure => Failure::Api(ApiError::Plugin { failure, version: model.version.clone() }),
    })?;

    let mut binary = Vec::new();
    let outputs = outputs
        .iter()
        .map(|&(name, as_binary)| {
            let buffer = as_binary.then_some(&mut binary);
            output_tensor(Output::new(name, &predictions, &model), buffer)
        })
        .collect::<Vec<_>>();
    let in_binary = outputs.iter().any(|output| output.parameters.is_some());
    let body = InferResponse {
        model_name: model.info.name.clone(),
        model_version: model.version.clone(),
        id: request.id,
        outputs,
    };
    let mut response = if in_binary {
        let mut bytes = serde_json::to_vec(&body).expect("an answer serializes");
        let header_length = bytes.len();
        bytes.extend_from_slice(&binary);
        let mut response = bytes.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(HEADER_LENGTH, HeaderValue::from(header_length));
        response
    } else {
        Json(body).into_response()
    };
    if let Ok(version) = HeaderValue::from_str(&model.version) {
        response.headers_mut().insert(MODEL_VERSION_HEADER, version);
    }
    if let Some(capture) = capture {
        capture.record(model, predictions);
    }
    Ok(response)
}

/// The key a V2 request is routed by during a canary, after the `x-routing-key`
/// header: its `routing_key` parameter, or else its `id`.
pub(super) fn routing_key(request: &InferRequest) -> Option<&str> {
    let parameter = request.parameters.as_ref().and_then(|p| p.get("routing_key")).and_then(Value::as_str);
    parameter.or(request.id.as_deref())
}

/// The outputs to answer with, in order, each with whether it goes in binary: those
/// requested, or all of them. An output's own `binary_data` wins over the request's
/// `binary_data_output`.
fn requested_outputs(request: &InferRequest) -> Result<Vec<(OutputName, bool)>, Failure> {
    let all_binary = flag(request.parameters.as_ref(), "binary_data_output", "the request")?.unwrap_or(false);
    let requested = match request.outputs.as_deref() {
        None | Some([]) => return Ok(OutputName::ALL.map(|name| (name, all_binary)).to_vec()),
        Some(requested) => requested,
    };
    refuse_repeats(&requested.iter().map(|output| output.name).collect::<Vec<_>>())?;
    requested
        .iter()
        .map(|output| {
            let owner = format!("output \"{}\"", output.name.as_str());
            let as_binary = flag(output.parameters.as_ref(), "binary_data", &owner)?.unwrap_or(all_binary);
            Ok((output.name, as_binary))
        })
        .collect()
}

/// A boolean parameter, if given.
fn flag(parameters: Option<&Map<String, Value>>, key: &str, owner: &str) -> Result<Option<bool>, Failure> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(other) => bad(format!("{owner}: \"{key}\" must be true or false, got {}", json_kind(other))),
    }
}

/// One output tensor: its elements in `data`, or appended to `binary` when given.
fn output_tensor(output: Output<'_>, binary: Option<&mut Vec<u8>>) -> OutputTensor {
    let (parameters, data) = match binary {
        Some(buffer) => (Some(BinaryOutput { binary_data_size: output.encode(buffer) }), None),
        None => (None, Some(output.json())),
    };
    OutputTensor { name: output.name, datatype: output.datatype, shape: output.shape, parameters, data }
}

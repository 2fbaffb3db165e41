//! `POST /predict`: one JSON object (or an array of them) in, one prediction (or an
//! array in the same order) out, each naming the model version that answered.

use super::AppState;
use super::error::ApiError;
use crate::model::LoadedModel;
use crate::runtime::{Field, FieldSpec, FieldType, Prediction, Value as WitValue};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Response header naming the model version that answered.
pub const MODEL_VERSION_HEADER: &str = "x-model-version";

/// The prediction for one row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PredictionBody {
    /// The chosen label.
    pub prediction: String,
    /// The probability of every label; they sum to 1.
    pub probabilities: BTreeMap<String, f64>,
    /// The model version that answered.
    pub model_version: String,
}

/// A prediction, or a batch of them in request order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: answers are built from `PredictionBody`
pub enum PredictResponse {
    Row(PredictionBody),
    Batch(Vec<PredictionBody>),
}

/// Scores one row (a JSON object) or a batch (an array of objects).
#[utoipa::path(
    post,
    path = "/predict",
    tag = "predict",
    request_body(content = super::docs::PredictRequest, description = "One row, or a batch of rows",
        example = json!({"BASKET_SIZE":"M","BASKET_TYPE":"MIXED","STORE_REGION":"LONDON","STORE_FORMAT":"LS",
            "SPEND":125.50,"QUANTITY":3,"PROD_CODE_20":"FOOD","PROD_CODE_30":"FRESH"})),
    responses(
        (status = 200, description = "A prediction per row, naming the model version that answered",
            body = PredictResponse,
            headers(("x-model-version" = String, description = "The model version that answered"))),
        (status = 400, description = "The body is not JSON", body = super::docs::ErrorBody),
        (status = 413, description = "The body exceeds MAX_BODY_BYTES", body = super::docs::ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = super::docs::ErrorBody),
        (status = 422, description = "Not a row or batch; a field missing, of the wrong type, or refused by the model", body = super::docs::ErrorBody),
        (status = 500, description = "The plugin trapped, hit its memory limit, or answered outside the contract", body = super::docs::ErrorBody),
        (status = 503, description = "No model version is loaded, or every plugin call slot is busy (Retry-After)", body = super::docs::ErrorBody),
        (status = 504, description = "The plugin ran past CALL_TIMEOUT_MS", body = super::docs::ErrorBody),
    )
)]
pub async fn predict(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|r| from_rejection(r, state.max_body_bytes))?;
    let model = state.slot.current().ok_or_else(|| state.no_model())?;
    let (rows, single) = rows_from_json(&body, &model.info.inputs, state.max_batch_rows)?;

    let predictions = state
        .score(&model, rows)
        .await?
        .map_err(|failure| ApiError::Plugin { failure, version: model.version.clone() })?;

    let mut bodies = predictions.into_iter().map(|p| to_body(p, &model));
    let mut response = if single {
        Json(bodies.next()).into_response()
    } else {
        Json(bodies.collect::<Vec<_>>()).into_response()
    };
    if let Ok(version) = HeaderValue::from_str(&model.version) {
        response.headers_mut().insert(MODEL_VERSION_HEADER, version);
    }
    Ok(response)
}

fn to_body(prediction: Prediction, model: &LoadedModel) -> PredictionBody {
    PredictionBody {
        prediction: prediction.label,
        probabilities: prediction.scores.into_iter().map(|s| (s.label, s.probability)).collect(),
        model_version: model.version.clone(),
    }
}

pub(super) fn from_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(limit)
        }
        other => ApiError::MalformedJson(other.body_text()),
    }
}

/// The plugin rows of a `/predict` body, and whether it was a single row (an object)
/// rather than a batch (an array of objects).
pub fn rows_from_json(
    body: &Value,
    inputs: &[FieldSpec],
    max_rows: usize,
) -> Result<(Vec<Vec<Field>>, bool), ApiError> {
    match body {
        Value::Object(object) => Ok((vec![to_row(object, 0, inputs)?], true)),
        Value::Array(items) => Ok((to_rows(items, inputs, max_rows)?, false)),
        _ => Err(ApiError::invalid("expected a JSON object, or an array of objects")),
    }
}

fn to_rows(items: &[Value], inputs: &[FieldSpec], max_rows: usize) -> Result<Vec<Vec<Field>>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::invalid("empty batch: send at least one row"));
    }
    if items.len() > max_rows {
        return Err(ApiError::invalid(format!(
            "batch of {} rows exceeds the limit of {max_rows}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let row = u32::try_from(i).unwrap_or(u32::MAX);
            match item {
                Value::Object(object) => to_row(object, row, inputs),
                _ => Err(ApiError::invalid_row(row, None, format!("row {row}: expected a JSON object"))),
            }
        })
        .collect()
}

/// Converts one JSON object into a plugin row, checked against the model's inputs:
/// required fields present, numbers where numbers are expected, strings where text is.
/// Fields the model does not know are ignored.
fn to_row(object: &Map<String, Value>, row: u32, inputs: &[FieldSpec]) -> Result<Vec<Field>, ApiError> {
    let mut fields = Vec::with_capacity(inputs.len());
    for spec in inputs {
        let value = match (object.get(&spec.name), spec.type_) {
            (None | Some(Value::Null), _) if !spec.required => continue,
            (None, _) => {
                let message = format!("row {row}: missing required field \"{}\"", spec.name);
                return Err(ApiError::invalid_row(row, Some(&spec.name), message));
            }
            (Some(Value::Number(n)), FieldType::Number) => match n.as_f64() {
                Some(x) => WitValue::Number(x),
                None => return Err(wrong_type(row, spec, "a number out of range")),
            },
            (Some(Value::String(s)), FieldType::Text) => WitValue::Text(s.clone()),
            (Some(other), _) => return Err(wrong_type(row, spec, json_kind(other))),
        };
        fields.push(Field { name: spec.name.clone(), value });
    }
    Ok(fields)
}

fn wrong_type(row: u32, spec: &FieldSpec, got: &str) -> ApiError {
    let expected = match spec.type_ {
        FieldType::Number => "a number",
        FieldType::Text => "a string",
    };
    let message = format!("row {row}: field \"{}\" must be {expected}, got {got}", spec.name);
    ApiError::invalid_row(row, Some(&spec.name), message)
}

/// How a JSON value's kind reads in an error message.
pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

//! `POST /predict`: one JSON object (or an array of them) in, one prediction (or an
//! array in the same order) out, each naming the model version that answered.

use super::AppState;
use super::error::ApiError;
use super::rows::rows_from_json;
use crate::model::LoadedModel;
use crate::runtime::{ClassScore, Prediction};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Response header naming the model version that answered.
pub const MODEL_VERSION_HEADER: &str = "x-model-version";

/// The prediction for one row.
// Borrowed from the plugin's answer: written out without copying it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PredictionBody<'a> {
    /// The chosen label.
    pub prediction: &'a str,
    /// The probability of every label; they sum to 1.
    #[schema(value_type = BTreeMap<String, f64>)]
    pub probabilities: Probabilities<'a>,
    /// The model version that answered.
    pub model_version: &'a str,
}

/// Every label's probability, written as a JSON object with its labels in order.
pub struct Probabilities<'a>(&'a [ClassScore]);

impl Serialize for Probabilities<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn entry(score: &ClassScore) -> (&str, f64) {
            (&score.label, score.probability)
        }
        if self.0.is_sorted_by(|a, b| a.label <= b.label) {
            return serializer.collect_map(self.0.iter().map(entry));
        }
        let mut sorted: Vec<&ClassScore> = self.0.iter().collect();
        sorted.sort_by(|a, b| a.label.cmp(&b.label));
        serializer.collect_map(sorted.into_iter().map(entry))
    }
}

/// A prediction, or a batch of them in request order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: answers are built from `PredictionBody`
pub enum PredictResponse<'a> {
    Row(PredictionBody<'a>),
    Batch(Vec<PredictionBody<'a>>),
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
    body: Result<Json<Box<RawValue>>, JsonRejection>,
) -> Result<Response, ApiError> {
    // Checked as JSON by the extractor (400 if it is not), read into rows below.
    let Json(body) = body.map_err(|r| from_rejection(r, state.max_body_bytes))?;
    let model = state.slot.current().ok_or_else(|| state.no_model())?;
    let (rows, single) = rows_from_json(body.get(), &model.info.inputs, state.max_batch_rows)?;

    let predictions = state
        .score(&model, rows)
        .await?
        .map_err(|failure| ApiError::Plugin { failure, version: model.version.clone() })?;

    let mut bodies = predictions.iter().map(|p| to_body(p, &model));
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

fn to_body<'a>(prediction: &'a Prediction, model: &'a LoadedModel) -> PredictionBody<'a> {
    PredictionBody {
        prediction: &prediction.label,
        probabilities: Probabilities(&prediction.scores),
        model_version: &model.version,
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

#[cfg(test)]
mod tests {
    use super::Probabilities;
    use crate::runtime::ClassScore;

    #[test]
    fn probabilities_are_written_by_label_in_order_whatever_the_plugins_order() {
        let score = |label: &str, probability| ClassScore { label: label.into(), probability };
        for scores in [
            vec![score("LA", 0.25), score("MM", 0.5), score("UM", 0.25)],
            vec![score("UM", 0.25), score("LA", 0.25), score("MM", 0.5)],
        ] {
            let written = serde_json::to_string(&Probabilities(&scores)).unwrap();
            assert_eq!(written, r#"{"LA":0.25,"MM":0.5,"UM":0.25}"#);
        }
    }
}

//! `POST /predict`: one JSON object (or an array of them) in, one prediction (or an
//! array in the same order) out, each naming the model version that answered.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::{JsonBodyErrors, JsonText};
use super::rows::rows_from_json;
use super::scoring::{Routing, Scored, request_id};
use crate::model::{LoadedModel, ScoresByLabel};
use crate::runtime::Prediction;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use utoipa::{OpenApi, ToSchema};

/// The OpenAPI description of `/predict`. The document fills in `PredictRow` and
/// `PredictRequest` from the serving model's input schema.
#[derive(OpenApi)]
#[openapi(
    paths(predict),
    components(schemas(ErrorBody, PredictRow, PredictRequest)),
    tags((name = "predict", description = "Scoring"))
)]
pub struct PredictDocs;

/// One observation: the model's input fields by name (see `/model/info` for the schema
/// of the serving model; the document fills it in). Unknown fields are ignored.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
#[allow(dead_code)] // a schema only: rows are read against the model's own schema
pub struct PredictRow(Map<String, Value>);

/// One row, or a batch of rows answered in the same order.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: requests are read against the model's own schema
pub enum PredictRequest {
    Row(PredictRow),
    Batch(Vec<PredictRow>),
}

/// Response header naming the model version that answered.
pub const MODEL_VERSION_HEADER: &str = "x-model-version";

/// The prediction for one row.
// Borrowed from the plugin's answer: written out without copying it.
#[derive(Serialize, ToSchema)]
pub struct PredictionBody<'a> {
    /// The chosen label.
    pub prediction: &'a str,
    /// The probability of every label; they sum to 1.
    #[schema(value_type = BTreeMap<String, f64>)]
    pub probabilities: ScoresByLabel<'a>,
    /// The model version that answered.
    pub model_version: &'a str,
}

/// A prediction, or a batch of them in request order.
#[derive(Serialize, ToSchema)]
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
    params(("x-routing-key" = Option<String>, Header,
        description = "Keeps a caller on one version while a new one answers a share of requests (canary)")),
    request_body(content = PredictRequest, description = "One row, or a batch of rows",
        example = json!({"BASKET_SIZE":"M","BASKET_TYPE":"MIXED","STORE_REGION":"LONDON","STORE_FORMAT":"LS",
            "SPEND":125.50,"QUANTITY":3,"PROD_CODE_20":"FOOD","PROD_CODE_30":"FRESH"})),
    responses(
        (status = 200, description = "A prediction per row, naming the model version that answered",
            body = PredictResponse,
            headers(("x-model-version" = String, description = "The model version that answered"))),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "Not a row or batch; a field missing, of the wrong type, or refused by the model", body = ErrorBody),
        (status = 500, description = "The plugin trapped, hit its memory limit, or answered outside the contract", body = ErrorBody),
        (status = 503, description = "No model version is loaded, or every plugin call slot is busy (Retry-After)", body = ErrorBody),
        (status = 504, description = "The plugin ran past CALL_TIMEOUT_MS", body = ErrorBody),
        JsonBodyErrors,
    )
)]
pub async fn predict(
    State(state): State<AppState>,
    headers: HeaderMap,
    // Read into rows below, in one pass that answers 400 for what is not JSON.
    body: JsonText,
) -> Result<Response, ApiError> {
    let text = body.text()?;
    let Some(stable) = state.slot.current() else {
        // What is not JSON is refused as such, whether a version serves or not.
        serde_json::from_str::<IgnoredAny>(text).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        return Err(state.no_model());
    };
    let (rows, single) = rows_from_json(text, &stable.info.inputs, state.max_batch_rows)?;

    let routing = Routing::from_headers(&headers, None);
    let Scored { model, outcome, capture } =
        state.score(&stable, rows, routing, request_id(&headers)).await?;
    let predictions =
        outcome.map_err(|failure| ApiError::Plugin { failure, version: model.version.clone() })?;

    let mut bodies = predictions.iter().map(|p| to_body(p, &model));
    let mut response = if single {
        Json(bodies.next()).into_response()
    } else {
        Json(bodies.collect::<Vec<_>>()).into_response()
    };
    if let Ok(version) = HeaderValue::from_str(&model.version) {
        response.headers_mut().insert(MODEL_VERSION_HEADER, version);
    }
    if let Some(capture) = capture {
        capture.record(model, predictions);
    }
    Ok(response)
}

fn to_body<'a>(prediction: &'a Prediction, model: &'a LoadedModel) -> PredictionBody<'a> {
    PredictionBody {
        prediction: &prediction.label,
        probabilities: ScoresByLabel(&prediction.scores),
        model_version: &model.version,
    }
}

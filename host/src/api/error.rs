//! The one error type of the HTTP API and the one body every error response carries.
//! Every variant maps to one status code and an [`ErrorBody`]; plugin internals are
//! logged, not returned.

use crate::model::PredictFailure;
use crate::runtime::CallError;
use crate::slot::LoadFailureRecord;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 415: the request does not say `Content-Type: application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 413: the body is larger than the configured limit.
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// 422: well-formed JSON that does not fit the model's inputs.
    #[error("{message}")]
    InvalidInput { message: String, row: Option<u32>, field: Option<String> },
    /// 404: no such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// 401 with `WWW-Authenticate: Bearer`: an admin route without a valid token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 409: the request is valid but the current state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// 503: a dependency of the request (the model source) is not available.
    #[error("{0}")]
    Unavailable(String),
    /// 405: the route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 503: no model version has loaded yet.
    #[error("no model version is loaded")]
    NoModel { last_failure: Option<LoadFailureRecord> },
    /// 503 with `Retry-After`: every plugin call slot is busy.
    #[error("the server is at its limit of {0} concurrent predictions; retry shortly")]
    Overloaded(u32),
    /// 500 or 504: the plugin failed (trap, memory limit, bad answer) or timed out.
    #[error("{failure}")]
    Plugin { failure: PredictFailure, version: String },
}

/// Seconds a client should wait before retrying an overloaded server.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    pub fn invalid_row(row: u32, field: Option<&str>, message: String) -> Self {
        Self::InvalidInput { message, row: Some(row), field: field.map(str::to_string) }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput { message: message.into(), row: None, field: None }
    }

    /// Logs and counts what the operator should know of, whatever protocol answers it: a
    /// plugin's failure (not its refusal of a row) and a request shed.
    pub fn report(&self) {
        match self {
            Self::Plugin { failure, version } if !matches!(failure, PredictFailure::InvalidInput { .. }) => {
                tracing::error!(model_version = %version, error = %failure, "prediction failed");
            }
            Self::Overloaded(_) => crate::telemetry::metrics::request_shed(),
            _ => {}
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoModel { .. } | Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Plugin { failure, .. } => match failure {
                PredictFailure::InvalidInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                PredictFailure::Plugin(CallError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = ErrorBody::new(self.to_string());
        match &self {
            Self::InvalidInput { row, field, .. } => {
                body.row = *row;
                body.field = field.clone();
            }
            Self::NoModel { last_failure } => body.last_load_error = last_failure.clone(),
            Self::Plugin { failure, version } => {
                if let PredictFailure::InvalidInput { row, .. } = failure {
                    body.row = Some(*row);
                }
                body.model_version = Some(version.clone());
            }
            _ => {}
        }
        self.report();
        let mut response = (status, Json(body)).into_response();
        match self {
            Self::Overloaded(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            Self::Unauthorized(_) => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// The body of every error response, from handlers and middleware alike: `error` always,
/// the rest where it applies.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
    /// Index of the offending row in a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u32>,
    /// The offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The model version that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Why the last version failed to load, when none is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_load_error: Option<LoadFailureRecord>,
}

impl ErrorBody {
    pub fn new(error: String) -> Self {
        Self { error, row: None, field: None, model_version: None, last_load_error: None }
    }
}

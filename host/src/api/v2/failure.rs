//! Why a V2 route did not answer 200, and the body it answers instead.

use crate::api::{ApiError, ErrorBody};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a V2 route did not answer 200: a bad request is the protocol's 400; everything
/// else is the API's usual error and status.
#[derive(Debug)]
pub(super) enum Failure {
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
            Self::BadRequest(error) => (StatusCode::BAD_REQUEST, Json(ErrorBody::new(error))).into_response(),
            Self::Api(error) => error.into_response(),
        }
    }
}

pub(super) fn bad<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::BadRequest(message.into()))
}

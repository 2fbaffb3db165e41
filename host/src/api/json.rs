//! The JSON body extractor of every route that takes one: axum's `Json`, with its
//! rejections answered as [`ApiError`]s (415, 413, 400, 422) and the configured body limit
//! named in the 413.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A request body parsed as JSON into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge(state.max_body_bytes)
                }
                // Well-formed JSON of the wrong shape: the request's content is at fault.
                JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
                other => ApiError::MalformedJson(other.body_text()),
            }),
        }
    }
}

/// What a route that takes a [`JsonBody`] may answer for the body's size and type; each
/// route describes its own 400 and 422, which say what its body should have been.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description only: these answers are `ApiError`s
pub enum JsonBodyErrors {
    #[response(
        status = 413,
        description = "The body exceeds MAX_BODY_BYTES",
        content_type = "application/json"
    )]
    TooLarge(ErrorBody),
    #[response(
        status = 415,
        description = "Content-Type is not application/json",
        content_type = "application/json"
    )]
    NotJson(ErrorBody),
}

//! The JSON body extractors: axum's `Json`, with its rejections answered as
//! [`ApiError`]s (415, 413, 400, 422) and the configured body limit named in the 413; and
//! [`JsonText`], the same checks of type and size with the text left unparsed, for a
//! route that reads it in one pass of its own.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
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

/// A body that says it is JSON (`Content-Type: application/json`, or `+json`), within the
/// body limit, not yet parsed: `/predict` reads it straight into rows, so a first parse to
/// check it is JSON would double the work (the reader answers 400 for what is not JSON).
pub struct JsonText(Bytes);

impl JsonText {
    /// The body as text; 400 if it is not UTF-8 (so not JSON).
    pub fn text(&self) -> Result<&str, ApiError> {
        std::str::from_utf8(&self.0)
            .map_err(|e| ApiError::MalformedJson(format!("the body is not UTF-8: {e}")))
    }
}

impl FromRequest<AppState> for JsonText {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(state.max_body_bytes))
            }
            Err(r) => Err(ApiError::MalformedJson(r.body_text())),
        }
    }
}

/// Whether the request says its body is JSON, as axum's `Json` decides it.
fn json_content_type(headers: &HeaderMap) -> bool {
    let mime = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()?.parse::<mime::Mime>().ok());
    mime.is_some_and(|mime| {
        mime.type_() == "application"
            && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
    })
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

//! Middleware around every route: a request id (an incoming `x-request-id` is kept,
//! otherwise a UUID is made; either way it is returned), one log line per request in a
//! span carrying that id, Prometheus request metrics, a bound on the whole request, and
//! JSON bodies for errors that arise outside the handlers (timeouts, oversized bodies).

use crate::observe;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use std::time::{Duration, Instant};
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Largest error body rewritten as JSON; bigger ones pass through as they are.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Wraps `router` in the layers above; `request_timeout` bounds each request whole.
pub fn around<S: Clone + Send + Sync + 'static>(router: Router<S>, request_timeout: Duration) -> Router<S> {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok());
            tracing::info_span!(
                "request",
                request_id = id.unwrap_or(""),
                method = %request.method(),
                path = %request.uri().path(),
            )
        })
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros));
    router
        .layer(axum::middleware::from_fn(json_errors))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(axum::middleware::from_fn(track))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Counts and times the request by route pattern (not raw path, to bound the labels).
async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().clone();
    let _in_flight = observe::InFlight::start();
    let started = Instant::now();
    let response = next.run(request).await;
    observe::http_request(method.as_str(), &route, response.status().as_u16(), started.elapsed());
    response
}

/// Gives error responses that are not JSON (from a layer, or a framework rejection) the
/// `{"error": "..."}` body every other error has.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, ERROR_BODY_LIMIT).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = Json(json!({ "error": text })).into_response().into_body();
    Response::from_parts(parts, Body::new(body))
}

//! Middleware around every route: a request id (an incoming `x-request-id` is kept,
//! otherwise a UUID is made; either way it is returned), one log line per request in a
//! span carrying that id, Prometheus request metrics, a bound on the whole request, and
//! JSON bodies for errors that arise outside the handlers (timeouts, oversized bodies).

use super::error::ErrorBody;
use crate::telemetry::metrics;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::time::{Duration, Instant};
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

/// Largest error body rewritten as JSON; bigger ones pass through as they are.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How often the anchor timer of [`anchor_timers`] fires; at most the shortest request
/// timeout (one second).
const ANCHOR_PERIOD: Duration = Duration::from_secs(1);

/// Wraps `router` in the layers above; `request_timeout` bounds each request whole.
pub fn around<S: Clone + Send + Sync + 'static>(router: Router<S>, request_timeout: Duration) -> Router<S> {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok());
            tracing::info_span!(
                "request",
                request_id = id.unwrap_or(""),
                method = request.method().as_str(),
                path = request.uri().path(),
            )
        })
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros));
    // Each layer wraps those before it: `track` wraps the timeout, so that its 408 is
    // counted and has a JSON body too.
    router
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(axum::middleware::from_fn(track))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(NewRequestUuid))
}

/// Counts and times the request by route pattern (not raw path, to bound the labels),
/// and gives its answer a JSON body if it is an error without one. One middleware, not
/// two: each costs an allocation per request.
async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let _in_flight = metrics::InFlight::start();
    let started = Instant::now();
    let response = json_errors(next.run(request).await).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics::http_request(&method, route, response.status().as_u16(), started.elapsed());
    response
}

/// Gives an error response that is not JSON (from a layer, or a framework rejection) the
/// [`ErrorBody`] every other error has.
async fn json_errors(response: Response) -> Response {
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
    let body = Json(ErrorBody::new(text)).into_response().into_body();
    Response::from_parts(parts, Body::new(body))
}

/// A v4 UUID for each request that comes without an id, written straight into its header
/// value (tower-http's `MakeRequestUuid` formats a `String` first, then copies it).
#[derive(Clone, Copy)]
struct NewRequestUuid;

impl MakeRequestId for NewRequestUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let mut text = [0u8; Hyphenated::LENGTH];
        let text = Uuid::new_v4().hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

/// Keeps a timer armed for the life of the server that is always due before any request's
/// timeout, so that arming a request's timeout never wakes the runtime.
///
/// tokio's timer driver writes to its wake-up eventfd whenever a timer is armed while no
/// earlier one is pending: it cannot tell whether a worker sleeps on it. Between requests
/// nothing is pending, so each request's timeout cost a `write` and a needless wake-up of
/// the other worker. With this timer pending, a request's timeout (a second away or more)
/// is never the earliest, and the driver wakes once per [`ANCHOR_PERIOD`] instead.
pub async fn anchor_timers() {
    let mut tick = tokio::time::interval(ANCHOR_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::anchor_timers;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;
    use std::time::Duration;

    /// `write` calls made so far by the calling thread.
    fn thread_writes() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
        io.lines().find_map(|l| l.strip_prefix("syscw: ")).expect("syscw").parse().expect("a count")
    }

    /// Arms and drops `count` request-length timeouts, as requests that end at once do,
    /// without yielding; returns the `write` calls this worker thread made meanwhile.
    async fn arm_timeouts(count: u32) -> u64 {
        let before = thread_writes();
        for _ in 0..count {
            let mut timeout = pin!(tokio::time::sleep(Duration::from_secs(30)));
            std::future::poll_fn(|cx| {
                let _ = timeout.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
        }
        thread_writes() - before
    }

    #[test]
    fn with_the_anchor_arming_a_request_timeout_does_not_wake_the_runtime() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            // Without it, a timeout armed while the other worker sleeps on the timer driver
            // wakes it: the cost the anchor removes. How many of 200 back-to-back ones find
            // it asleep again depends on the machine's load (160-200 when quiet, 64 seen
            // under a CI build's load), hence the low bar.
            let without = tokio::spawn(arm_timeouts(200)).await.unwrap();
            assert!(without >= 10, "{without} wake-ups for 200 timeouts without the anchor");
            let anchor = tokio::spawn(anchor_timers());
            tokio::time::sleep(Duration::from_millis(50)).await;
            let with = tokio::spawn(arm_timeouts(200)).await.unwrap();
            assert!(with <= 2, "{with} wake-ups for 200 timeouts with the anchor");
            anchor.abort();
        });
    }
}

//! What every route's requests go through, as one service around it: a request id (an
//! incoming `x-request-id` is kept, otherwise a UUID is made; either way it is returned),
//! a bound on the whole request, Prometheus request metrics, JSON bodies for errors that
//! arise outside the handlers (timeouts, framework rejections), and one log line per
//! request, with every line logged while it is served carrying its id.
//!
//! One service rather than a stack of tower-http layers and a `from_fn` middleware: those
//! cost a tracing span, two boxed futures and a boxed copy of the inner service per
//! request, a tenth of the host's throughput on `/predict` (BENCHMARKS.md).

use super::error::ErrorBody;
use super::scoring::REQUEST_ID_HEADER;
use crate::telemetry::{RequestScope, metrics};
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

/// Largest error body rewritten as JSON; bigger ones pass through as they are.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How often the anchor timer of [`anchor_timers`] fires; at most the shortest request
/// timeout (one second).
const ANCHOR_PERIOD: Duration = Duration::from_secs(1);

/// Wraps every route of `router` in [`Requests`]; `request_timeout` bounds each request
/// whole, reading its body included.
pub fn around<S: Clone + Send + Sync + 'static>(router: Router<S>, request_timeout: Duration) -> Router<S> {
    router.layer(RequestsLayer { request_timeout })
}

#[derive(Clone, Copy)]
struct RequestsLayer {
    request_timeout: Duration,
}

impl<S> Layer<S> for RequestsLayer {
    type Service = Requests<S>;

    fn layer(&self, inner: S) -> Requests<S> {
        Requests { inner, request_timeout: self.request_timeout }
    }
}

/// One route's service, with what the module header lists around it. Applied to each
/// route (not around the router), so that the route's pattern is known: metrics are
/// labelled by pattern, not raw path, to bound their labels.
#[derive(Clone)]
pub struct Requests<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S> Service<Request> for Requests<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let in_flight = metrics::InFlight::start();
        let id = match request.headers().get(REQUEST_ID_HEADER) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
                id
            }
        };
        let route = request.extensions().get::<MatchedPath>().cloned();
        let scope =
            RequestScope { id: id.clone(), method: request.method().clone(), uri: request.uri().clone() };
        let served = scope.serve(tokio::time::timeout(self.request_timeout, self.inner.call(request)));
        Box::pin(async move {
            let mut served = pin!(served);
            let outcome = served.as_mut().await;
            let scope = served.take_value().expect("the request's scope outlives its future");
            let mut response = match outcome {
                Ok(Ok(response)) => json_errors(response).await,
                Err(_elapsed) => {
                    (StatusCode::REQUEST_TIMEOUT, Json(ErrorBody::new("request timeout".into())))
                        .into_response()
                }
            };
            let (status, latency) = (response.status().as_u16(), started.elapsed());
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            metrics::http_request(&scope.method, route, status, latency);
            drop(in_flight);
            scope.finish(status, latency);
            Ok(response)
        })
    }
}

/// Gives an error response that is not JSON (a framework rejection, say) the
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

/// A v4 UUID for a request that comes without an id, written straight into its header
/// value.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; Hyphenated::LENGTH];
    let text = Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
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

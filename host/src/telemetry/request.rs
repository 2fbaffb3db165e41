//! The request a log line was written for. The API's request layer sets it while a request
//! is served, and every line logged meanwhile carries it as its `span` (`request_id`,
//! `method`, `path`, `name: "request"`), as a tracing span would, without one: opening,
//! entering and closing a span per request, with its fields formatted up front, cost
//! about a tenth of the host's throughput (BENCHMARKS.md). It is a task-local value, so
//! it follows the request's task from thread to thread and is seen by nothing else.

use super::{ACCESS_LOG_TARGET, JSON_LINES, LineWriter, json_line};
use axum::http::{HeaderValue, Method, Uri};
use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::futures::TaskLocalFuture;

/// What each line logged while a request is served says of it.
pub struct RequestScope {
    /// The request's `x-request-id` (the client's, or one the host made).
    pub id: HeaderValue,
    pub method: Method,
    pub uri: Uri,
}

tokio::task_local! {
    static CURRENT: RequestScope;
}

thread_local! {
    /// The closing line being written, its capacity kept from line to line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The message of a request's closing line.
pub(super) const FINISHED: &str = "finished processing request";

/// A latency as the closing line writes it: `412 μs`.
pub(super) struct Micros(pub Duration);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} μs", self.0.as_micros())
    }
}

impl RequestScope {
    /// `future`, with every line it logs carrying this request; the scope is given back
    /// by [`TaskLocalFuture::take_value`].
    pub fn serve<F: Future>(self, future: F) -> TaskLocalFuture<RequestScope, F> {
        CURRENT.scope(self, future)
    }

    /// Logs the request's closing line (target [`ACCESS_LOG_TARGET`], at `INFO`): its
    /// answer's status and its latency.
    pub fn finish(self, status: u16, latency: Duration) {
        if !tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO) {
            return;
        }
        if !JSON_LINES.load(Ordering::Relaxed) {
            let latency = Micros(latency);
            CURRENT.sync_scope(self, || {
                tracing::info!(target: ACCESS_LOG_TARGET, %latency, status, "{FINISHED}");
            });
            return;
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            if json_line::access_line(line, &self, status, latency).is_ok() {
                // As for any line: nowhere to report a failed write to stderr.
                let _ = LineWriter.write_all(line.as_bytes());
            }
        });
    }

    /// The id as text; empty if it is not (a client may send any bytes).
    pub fn id(&self) -> &str {
        self.id.to_str().unwrap_or("")
    }
}

/// Calls `f` with the request being served, if a line is being written for one.
pub(super) fn with_current<R>(f: impl FnOnce(&RequestScope) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

/// The scope as the text format writes a span: `request{request_id=… method=… path=…}`.
impl fmt::Display for RequestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request{{request_id={} method={} path={}}}", self.id(), self.method, self.uri.path())
    }
}

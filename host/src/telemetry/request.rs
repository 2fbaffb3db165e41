//! The request a log line was written for. The API's request layer sets it while a request
//! is served, and every line logged meanwhile carries it as its `span` (`request_id`,
//! `method`, `path`, `name: "request"`), as a tracing span would, without one: opening,
//! entering and closing a span per request, with its fields formatted up front, cost
//! about a tenth of the host's throughput (BENCHMARKS.md). It is a task-local value, so
//! it follows the request's task from thread to thread and is seen by nothing else.

use axum::http::{HeaderValue, Method, Uri};
use std::fmt;
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

impl RequestScope {
    /// `future`, with every line it logs carrying this request; the scope is given back
    /// by [`TaskLocalFuture::take_value`].
    pub fn serve<F: Future>(self, future: F) -> TaskLocalFuture<RequestScope, F> {
        CURRENT.scope(self, future)
    }

    /// Runs `log` (which logs lines of this request), for what follows the request's
    /// own work: its closing line.
    pub fn log(self, log: impl FnOnce()) {
        CURRENT.sync_scope(self, log);
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

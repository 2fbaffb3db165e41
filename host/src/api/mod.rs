//! The HTTP API: routes, JSON in and out, errors as status codes. It reads the serving
//! version from the slot and knows nothing of where versions come from.

mod admin;
mod docs;
mod error;
mod json;
mod layers;
mod predict;
mod rows;
mod scoring;
mod status;
mod v2;

pub use error::{ApiError, ErrorBody};
pub use layers::anchor_timers;
pub use predict::{MODEL_VERSION_HEADER, PredictionBody};
pub use rows::rows_from_json;

use crate::capture::Capture;
use crate::slot::ServingSlot;
use crate::source::control::SourceHandle;
use admin::Admin;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What every handler shares: one `Arc`, since axum clones the state twice a request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`].
pub struct Shared {
    pub slot: Arc<ServingSlot>,
    /// One permit per plugin call allowed to run at once.
    pub calls: Semaphore,
    pub max_concurrent_calls: u32,
    pub max_batch_rows: usize,
    pub max_body_bytes: usize,
    /// Bound on one whole request (reading the body included); past it, 408.
    pub request_timeout: Duration,
    /// Data capture of answered requests (off unless configured).
    pub capture: Capture,
    /// The operator API, when `ADMIN_TOKEN` is set.
    admin: Option<Admin>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(
        slot: Arc<ServingSlot>,
        max_concurrent_calls: u32,
        max_batch_rows: usize,
        max_body_bytes: usize,
    ) -> Self {
        Self(Arc::new(Shared {
            slot,
            calls: Semaphore::new(max_concurrent_calls as usize),
            max_concurrent_calls,
            max_batch_rows,
            max_body_bytes,
            request_timeout: Duration::from_secs(30),
            capture: Capture::off(),
            admin: None,
        }))
    }

    /// Bounds each request whole at `timeout` (30 s unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.configure().request_timeout = timeout;
        self
    }

    /// Records the share of answered requests `capture` samples.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.configure().capture = capture;
        self
    }

    /// Enables the operator API under `/admin`, guarded by `token`.
    pub fn with_admin(mut self, token: &str, control: SourceHandle) -> Self {
        self.configure().admin = Some(Admin::new(token, control));
        self
    }

    /// The fields, while the state is being built and not yet shared.
    fn configure(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.0).expect("the state is configured before it is shared")
    }

    fn no_model(&self) -> ApiError {
        ApiError::NoModel { last_failure: self.slot.last_failure().as_deref().cloned() }
    }
}

/// The Open Inference Protocol's gRPC services, behind the same request ids, request
/// logs, metrics and request bound as the HTTP routes; and the task that keeps their
/// health service current, to run while they serve.
pub fn grpc_app(state: AppState) -> (Router, impl Future<Output = ()> + Send + 'static) {
    let request_timeout = state.request_timeout;
    let (routes, keep_health) = v2::grpc::routes(state);
    (layers::around(routes, request_timeout), keep_health)
}

/// The application router, without a socket: tests can drive it directly.
pub fn app(state: AppState) -> Router {
    let (max_body_bytes, request_timeout) = (state.max_body_bytes, state.request_timeout);
    crate::telemetry::metrics::prometheus();
    let mut router = Router::new();
    if state.admin.is_some() {
        router = router.nest("/admin", admin::routes(state.clone()));
    }
    let router = router
        .route("/predict", post(predict::predict))
        .route("/health", get(status::health))
        .route("/ready", get(status::ready))
        .route("/model/info", get(status::info))
        .route("/model/metrics", get(status::metrics))
        .route("/metrics", get(status::prometheus_metrics))
        .route(docs::OPENAPI_PATH, get(docs::openapi_json))
        .merge(v2::routes())
        .merge(docs::swagger_ui())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body_bytes));
    layers::around(router, request_timeout).with_state(state)
}

//! The HTTP API: routes, JSON in and out, errors as status codes. It reads the serving
//! version from the slot and knows nothing of where versions come from.

mod admin;
mod docs;
mod error;
mod layers;
mod model;
mod predict;
mod rows;
mod v2;

pub use error::ApiError;
pub use layers::anchor_timers;
pub use predict::{MODEL_VERSION_HEADER, PredictionBody};
pub use rows::rows_from_json;

use crate::model::{LoadedModel, PredictFailure};
use crate::runtime::{Field, Prediction};
use crate::slot::ActiveModel;
use crate::source::control::SourceHandle;
use admin::Admin;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub slot: Arc<ActiveModel>,
    /// One permit per plugin call allowed to run at once.
    pub calls: Arc<Semaphore>,
    pub max_concurrent_calls: u32,
    pub max_batch_rows: usize,
    pub max_body_bytes: usize,
    /// Bound on one whole request (reading the body included); past it, 408.
    pub request_timeout: Duration,
    /// The operator API, when `ADMIN_TOKEN` is set.
    admin: Option<Admin>,
}

impl AppState {
    pub fn new(
        slot: Arc<ActiveModel>,
        max_concurrent_calls: u32,
        max_batch_rows: usize,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            slot,
            calls: Arc::new(Semaphore::new(max_concurrent_calls as usize)),
            max_concurrent_calls,
            max_batch_rows,
            max_body_bytes,
            request_timeout: Duration::from_secs(30),
            admin: None,
        }
    }

    /// Enables the operator API under `/admin`, guarded by `token`.
    pub fn with_admin(mut self, token: &str, control: SourceHandle) -> Self {
        self.admin = Some(Admin::new(token, control));
        self
    }

    /// Scores `rows` on `model` within the bound on concurrent plugin calls (beyond it:
    /// [`ApiError::Overloaded`]). The inner result is the plugin's.
    async fn score(
        &self,
        model: &Arc<LoadedModel>,
        rows: Vec<Vec<Field>>,
    ) -> Result<Result<Vec<Prediction>, PredictFailure>, ApiError> {
        let permit = Arc::clone(&self.calls)
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded(self.max_concurrent_calls))?;
        let outcome = model.predict(&rows).await;
        drop(permit);
        Ok(outcome)
    }

    fn no_model(&self) -> ApiError {
        let last_failure = self.slot.last_failure().and_then(|f| serde_json::to_value(&*f).ok());
        ApiError::NoModel { last_failure }
    }
}

/// The application router, without a socket: tests can drive it directly.
pub fn app(state: AppState) -> Router {
    let (max_body_bytes, request_timeout) = (state.max_body_bytes, state.request_timeout);
    crate::observe::prometheus();
    let mut router = Router::new();
    if state.admin.is_some() {
        router = router.nest("/admin", admin::routes(state.clone()));
    }
    let router = router
        .route("/predict", post(predict::predict))
        .route("/health", get(model::health))
        .route("/ready", get(model::ready))
        .route("/model/info", get(model::info))
        .route("/model/metrics", get(model::metrics))
        .route("/metrics", get(prometheus_metrics))
        .route(docs::OPENAPI_PATH, get(docs::openapi_json))
        .merge(v2::routes())
        .merge(docs::swagger_ui())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body_bytes));
    layers::around(router, request_timeout).with_state(state)
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn prometheus_metrics() -> impl IntoResponse {
    let text = crate::observe::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// RFC 3339 UTC with milliseconds, as every timestamp in the API is written.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Serde helper for [`format_time`].
pub fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*time))
}

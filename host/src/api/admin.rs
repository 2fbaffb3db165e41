//! The operator API under `/admin`, mounted only when `ADMIN_TOKEN` is set and guarded
//! by it as a bearer token: list versions, pin and unpin, roll back, reload.
//!
//! A pin or rollback acts on this process only; for the whole fleet, approve or reject
//! versions in the registry.

use super::AppState;
use super::error::ApiError;
use crate::model::LoadedModel;
use crate::source::control::{ControlError, SourceHandle};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What the operator API needs: the token (as a digest, so comparing it takes the same
/// time whatever its length) and the source's command channel.
#[derive(Clone)]
pub struct Admin {
    token_digest: [u8; 32],
    control: SourceHandle,
}

impl Admin {
    pub fn new(token: &str, control: SourceHandle) -> Self {
        Self { token_digest: Sha256::digest(token.as_bytes()).into(), control }
    }

    fn accepts(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.token_digest).into()
    }
}

/// The `/admin` routes, guarded by the token.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/versions", get(versions))
        .route("/pin", post(pin))
        .route("/unpin", post(unpin))
        .route("/rollback", post(rollback))
        .route("/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let admin = state.admin.as_ref().ok_or_else(|| ApiError::NotFound("no such route".into()))?;
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized("send Authorization: Bearer <ADMIN_TOKEN>"))?;
    if !admin.accepts(presented.trim()) {
        return Err(ApiError::Unauthorized("the admin token is not valid"));
    }
    Ok(next.run(request).await)
}

fn control(state: &AppState) -> &SourceHandle {
    &state.admin.as_ref().expect("admin routes exist only with admin state").control
}

/// Loaded (serving and previous), available from the source (registry, cache, plugin
/// directory, bundled) and refused versions, with reasons.
#[utoipa::path(get, path = "/admin/versions", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "Loaded, available and refused versions", body = Object),
        (status = 401, description = "Missing or wrong bearer token", body = super::docs::ErrorBody),
    (status = 503, description = "The model source is not running", body = super::docs::ErrorBody),
))]
pub async fn versions(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let available = control(&state).available().await.map_err(control_error)?;
    Ok(Json(json!({
        "serving": state.slot.current().as_deref().map(loaded),
        "previous": state.slot.previous().as_deref().map(loaded),
        "pinned": state.slot.pinned(),
        "available": available,
        "refused": state.slot.failures(),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PinRequest {
    version: VersionName,
}

/// A version as a JSON number (registry versions) or string (`1.2.0`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VersionName {
    Number(u64),
    Text(String),
}

/// Serves the given version and stops following the source until unpinned.
#[utoipa::path(post, path = "/admin/pin", tag = "admin", security(("admin_token" = [])),
    request_body(content = PinRequest, example = json!({"version": 3})), responses(
    (status = 200, description = "The version serves, pinned", body = Object),
    (status = 400, description = "The body is not JSON", body = super::docs::ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = super::docs::ErrorBody),
    (status = 404, description = "No such version", body = super::docs::ErrorBody),
    (status = 409, description = "The version cannot serve", body = super::docs::ErrorBody),
    (status = 415, description = "Content-Type is not application/json", body = super::docs::ErrorBody),
    (status = 422, description = "Not {\"version\": N}", body = super::docs::ErrorBody),
    (status = 503, description = "The model source cannot be reached", body = super::docs::ErrorBody),
))]
pub async fn pin(
    State(state): State<AppState>,
    body: Result<Json<PinRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(PinRequest { version }) = body.map_err(|rejection| match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::invalid(format!(r#"expected {{"version": N}}: {}"#, e.body_text()))
        }
        other => super::predict::from_rejection(other, state.max_body_bytes),
    })?;
    let version = match version {
        VersionName::Number(n) => n.to_string(),
        VersionName::Text(text) => text,
    };
    control(&state).pin(version).await.map_err(control_error)?;
    Ok(Json(outcome(&state)))
}

#[utoipa::path(post, path = "/admin/unpin", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "Following the source again", body = Object),
        (status = 401, description = "Missing or wrong bearer token", body = super::docs::ErrorBody),
    (status = 503, description = "The model source is not running", body = super::docs::ErrorBody),
))]
pub async fn unpin(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    control(&state).unpin().await.map_err(control_error)?;
    Ok(Json(outcome(&state)))
}

/// Serves the previous loaded version again, pinned so the source does not undo it.
#[utoipa::path(post, path = "/admin/rollback", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The previous version serves, pinned", body = Object),
        (status = 401, description = "Missing or wrong bearer token", body = super::docs::ErrorBody),
    (status = 409, description = "No previous version is loaded", body = super::docs::ErrorBody),
    (status = 503, description = "The model source is not running", body = super::docs::ErrorBody),
))]
pub async fn rollback(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    control(&state).rollback().await.map_err(control_error)?;
    Ok(Json(outcome(&state)))
}

/// Checks the source now instead of at the next poll or rescan.
#[utoipa::path(post, path = "/admin/reload", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The source was checked", body = Object),
        (status = 401, description = "Missing or wrong bearer token", body = super::docs::ErrorBody),
    (status = 503, description = "The model source is not running", body = super::docs::ErrorBody),
))]
pub async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    control(&state).reload().await.map_err(control_error)?;
    let mut body = outcome(&state);
    body["last_load_error"] = json!(state.slot.last_failure().as_deref());
    body["source_error"] = json!(state.slot.source_error().as_deref());
    Ok(Json(body))
}

fn outcome(state: &AppState) -> Value {
    json!({
        "serving": state.slot.current().map(|m| m.version.clone()),
        "previous": state.slot.previous().map(|m| m.version.clone()),
        "pinned": state.slot.pinned(),
    })
}

fn loaded(model: &LoadedModel) -> Value {
    json!({
        "version": model.version,
        "digest": model.digest,
        "loaded_at": super::format_time(model.loaded_at),
        "signed": model.signed,
        "signature_verified": model.signature_verified,
    })
}

fn control_error(error: ControlError) -> ApiError {
    match error {
        ControlError::NoSuchVersion(_) => ApiError::NotFound(error.to_string()),
        ControlError::Refused { .. } | ControlError::NoPrevious => ApiError::Conflict(error.to_string()),
        ControlError::Unavailable(_) => ApiError::Unavailable(error.to_string()),
    }
}

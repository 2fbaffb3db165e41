//! The operator API under `/admin`, mounted only when `ADMIN_TOKEN` is set and guarded
//! by it as a bearer token: list versions, pin and unpin, roll back, reload, and steer a
//! rollout in progress (see it, promote, abort, pause, resume).
//!
//! A pin or rollback acts on this process only; for the whole fleet, approve or reject
//! versions in the registry.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::{JsonBody, JsonBodyErrors};
use crate::model::LoadedModel;
use crate::rollout::RolloutStatus;
use crate::slot::{LoadFailureRecord, SourceError};
use crate::source::control::{AvailableVersion, ControlError, SourceHandle};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

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
        .route("/rollout", get(rollout))
        .route("/rollout/promote", post(promote))
        .route("/rollout/abort", post(abort))
        .route("/rollout/pause", post(pause))
        .route("/rollout/resume", post(resume))
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

/// The OpenAPI description of [`routes`], merged into the document when they are mounted.
#[derive(OpenApi)]
#[openapi(
    paths(versions, pin, unpin, rollback, reload, rollout, promote, abort, pause, resume),
    components(schemas(ErrorBody)),
    modifiers(&AdminToken),
    tags((name = "admin", description = "Operator controls (enabled by ADMIN_TOKEN)"))
)]
pub struct AdminDocs;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// What every admin route may answer besides its own outcomes.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description only: these answers are `ApiError`s
enum AdminErrors {
    #[response(status = 401, description = "Missing or wrong bearer token", content_type = "application/json",
        headers(("www-authenticate" = String, description = "Bearer")))]
    Unauthorized(ErrorBody),
    #[response(
        status = 503,
        description = "The model source is not running or cannot be reached",
        content_type = "application/json"
    )]
    Unavailable(ErrorBody),
}

/// What every rollout command may answer besides its outcome.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description only: these answers are `ApiError`s
enum RolloutErrors {
    #[response(status = 409, description = "No rollout is in progress", content_type = "application/json")]
    NoRollout(ErrorBody),
}

fn control(state: &AppState) -> &SourceHandle {
    &state.admin.as_ref().expect("admin routes exist only with admin state").control
}

/// The loaded, available and refused versions.
#[derive(Serialize, ToSchema)]
pub struct Versions {
    /// The version serving now.
    serving: Option<LoadedVersion>,
    /// The version it replaced, kept loaded for rollback.
    previous: Option<LoadedVersion>,
    /// The version an operator pinned, if any.
    pinned: Option<String>,
    /// What the source could serve, newest first.
    available: Vec<AvailableVersion>,
    /// Versions refused and not served since, most recent first.
    refused: Vec<LoadFailureRecord>,
}

/// A loaded version.
#[derive(Serialize, ToSchema)]
pub struct LoadedVersion {
    version: String,
    /// `sha256:<hex>` of its plugin.
    digest: String,
    /// When it loaded (RFC 3339, UTC).
    loaded_at: String,
    signed: bool,
    signature_verified: bool,
}

impl From<&LoadedModel> for LoadedVersion {
    fn from(model: &LoadedModel) -> Self {
        Self {
            version: model.version.clone(),
            digest: model.digest.clone(),
            loaded_at: crate::telemetry::format_time(model.loaded_at),
            signed: model.signed,
            signature_verified: model.signature_verified,
        }
    }
}

/// Which versions serve after an operator action.
#[derive(Serialize, ToSchema)]
pub struct Outcome {
    serving: Option<String>,
    previous: Option<String>,
    pinned: Option<String>,
}

impl Outcome {
    fn of(state: &AppState) -> Self {
        Self {
            serving: state.slot.current().map(|m| m.version.clone()),
            previous: state.slot.previous().map(|m| m.version.clone()),
            pinned: state.slot.pinned(),
        }
    }
}

/// Which versions serve after a reload, and what went wrong in it.
#[derive(Serialize, ToSchema)]
pub struct ReloadOutcome {
    #[serde(flatten)]
    outcome: Outcome,
    /// The latest refusal, if any.
    last_load_error: Option<LoadFailureRecord>,
    /// The source's failure to reach its backend, if it has not answered since.
    source_error: Option<SourceError>,
}

/// Loaded (serving and previous), available from the source (registry, cache, plugin
/// directory, bundled) and refused versions, with reasons.
#[utoipa::path(get, path = "/admin/versions", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "Loaded, available and refused versions", body = Versions),
    AdminErrors,
))]
pub async fn versions(State(state): State<AppState>) -> Result<Json<Versions>, ApiError> {
    let available = control(&state).available().await.map_err(control_error)?;
    Ok(Json(Versions {
        serving: state.slot.current().as_deref().map(LoadedVersion::from),
        previous: state.slot.previous().as_deref().map(LoadedVersion::from),
        pinned: state.slot.pinned(),
        available,
        refused: state.slot.failures(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct PinRequest {
    version: VersionName,
}

/// A version as a JSON number (registry versions) or string (`1.2.0`).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum VersionName {
    Number(u64),
    Text(String),
}

/// Serves the given version and stops following the source until unpinned.
#[utoipa::path(post, path = "/admin/pin", tag = "admin", security(("admin_token" = [])),
    request_body(content = PinRequest, example = json!({"version": 3})), responses(
    (status = 200, description = "The version serves, pinned", body = Outcome),
    (status = 400, description = "The body is not JSON", body = ErrorBody),
    (status = 404, description = "No such version", body = ErrorBody),
    (status = 409, description = "The version cannot serve", body = ErrorBody),
    (status = 422, description = "Not {\"version\": N}", body = ErrorBody),
    JsonBodyErrors,
    AdminErrors,
))]
pub async fn pin(
    State(state): State<AppState>,
    JsonBody(PinRequest { version }): JsonBody<PinRequest>,
) -> Result<Json<Outcome>, ApiError> {
    let version = match version {
        VersionName::Number(n) => n.to_string(),
        VersionName::Text(text) => text,
    };
    control(&state).pin(version).await.map_err(control_error)?;
    Ok(Json(Outcome::of(&state)))
}

#[utoipa::path(post, path = "/admin/unpin", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "Following the source again", body = Outcome),
    AdminErrors,
))]
pub async fn unpin(State(state): State<AppState>) -> Result<Json<Outcome>, ApiError> {
    control(&state).unpin().await.map_err(control_error)?;
    Ok(Json(Outcome::of(&state)))
}

/// Serves the previous loaded version again, pinned so the source does not undo it.
#[utoipa::path(post, path = "/admin/rollback", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The previous version serves, pinned", body = Outcome),
    (status = 409, description = "No previous version is loaded", body = ErrorBody),
    AdminErrors,
))]
pub async fn rollback(State(state): State<AppState>) -> Result<Json<Outcome>, ApiError> {
    control(&state).rollback().await.map_err(control_error)?;
    Ok(Json(Outcome::of(&state)))
}

/// Checks the source now instead of at the next poll or rescan.
#[utoipa::path(post, path = "/admin/reload", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The source was checked", body = ReloadOutcome),
    AdminErrors,
))]
pub async fn reload(State(state): State<AppState>) -> Result<Json<ReloadOutcome>, ApiError> {
    control(&state).reload().await.map_err(control_error)?;
    Ok(Json(ReloadOutcome {
        outcome: Outcome::of(&state),
        last_load_error: state.slot.last_failure().as_deref().cloned(),
        source_error: state.slot.source_error().as_deref().cloned(),
    }))
}

/// The rollout in progress, or else the last one that ended, with its figures and
/// decisions.
#[utoipa::path(get, path = "/admin/rollout", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The rollout in progress, or the last one", body = RolloutStatus),
    (status = 404, description = "No version has been rolled out in phases", body = ErrorBody),
    AdminErrors,
))]
pub async fn rollout(State(state): State<AppState>) -> Result<Json<RolloutStatus>, ApiError> {
    let status = state.slot.rollout_status();
    status.map(Json).ok_or_else(|| ApiError::NotFound("no version has been rolled out in phases".into()))
}

/// Promotes the candidate now, whatever its phase and figures.
#[utoipa::path(post, path = "/admin/rollout/promote", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The candidate serves; the rollout as it ended", body = RolloutStatus),
    RolloutErrors,
    AdminErrors,
))]
pub async fn promote(State(state): State<AppState>) -> Result<Json<RolloutStatus>, ApiError> {
    state.slot.promote_candidate("promoted by an operator".into()).map_err(no_rollout)?;
    Ok(Json(rollout_now(&state)))
}

/// Drops the candidate and refuses it; the stable version goes on serving.
#[utoipa::path(post, path = "/admin/rollout/abort", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The candidate is dropped and refused; the rollout as it ended", body = RolloutStatus),
    RolloutErrors,
    AdminErrors,
))]
pub async fn abort(State(state): State<AppState>) -> Result<Json<RolloutStatus>, ApiError> {
    state.slot.abort_rollout("aborted by an operator".into()).map_err(no_rollout)?;
    Ok(Json(rollout_now(&state)))
}

/// Holds the rollout in its phase: the traffic split stays, thresholds still roll it
/// back, but it is not promoted or advanced until resumed.
#[utoipa::path(post, path = "/admin/rollout/pause", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The rollout is held", body = RolloutStatus),
    RolloutErrors,
    AdminErrors,
))]
pub async fn pause(State(state): State<AppState>) -> Result<Json<RolloutStatus>, ApiError> {
    hold(&state, true, "paused by an operator")
}

/// Lets a held rollout go on.
#[utoipa::path(post, path = "/admin/rollout/resume", tag = "admin", security(("admin_token" = [])), responses(
    (status = 200, description = "The rollout goes on", body = RolloutStatus),
    RolloutErrors,
    AdminErrors,
))]
pub async fn resume(State(state): State<AppState>) -> Result<Json<RolloutStatus>, ApiError> {
    hold(&state, false, "resumed by an operator")
}

fn hold(state: &AppState, held: bool, reason: &str) -> Result<Json<RolloutStatus>, ApiError> {
    let rollout = state.slot.hold_rollout(held, reason.into()).map_err(no_rollout)?;
    Ok(Json(rollout.status()))
}

fn rollout_now(state: &AppState) -> RolloutStatus {
    state.slot.rollout_status().expect("a rollout just ended")
}

fn no_rollout(error: crate::slot::NoRollout) -> ApiError {
    ApiError::Conflict(error.to_string())
}

fn control_error(error: ControlError) -> ApiError {
    match error {
        ControlError::NoSuchVersion(_) => ApiError::NotFound(error.to_string()),
        ControlError::Refused { .. } | ControlError::NoPrevious => ApiError::Conflict(error.to_string()),
        ControlError::Unavailable(_) => ApiError::Unavailable(error.to_string()),
    }
}

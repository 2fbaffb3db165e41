//! Scoring a request's rows: on the serving version, within the bound on concurrent
//! plugin calls, and during a rollout on the version the request is routed to; then,
//! for the share of requests data capture samples, handing rows and answer to capture.

use super::AppState;
use super::error::ApiError;
use crate::capture::Pending;
use crate::model::{LoadedModel, PredictFailure};
use crate::rollout::{Phase, Route};
use crate::runtime::{Field, Prediction};
use axum::http::HeaderMap;
use std::sync::Arc;
use std::time::Instant;

/// The header that keeps a caller on one version during a canary.
pub const ROUTING_KEY_HEADER: &str = "x-routing-key";

/// The header holding the request's id (the client's, or one the host made).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's id, as data capture records it.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok())
}

/// Which versions may answer a request.
#[derive(Debug, Clone, Copy)]
pub enum Routing<'a> {
    /// The serving version only (the request named it).
    Stable,
    /// Split as a rollout says, by this key (none: at random).
    Split(Option<&'a str>),
}

impl<'a> Routing<'a> {
    /// Split by the `x-routing-key` header, or else by `fallback` (the V2 request's
    /// `routing_key` parameter or `id`).
    pub fn from_headers(headers: &'a HeaderMap, fallback: Option<&'a str>) -> Self {
        let header = headers.get(ROUTING_KEY_HEADER).and_then(|v| v.to_str().ok());
        Self::Split(header.or(fallback).filter(|key| !key.is_empty()))
    }
}

/// The version that answered, and its answer (the plugin's outcome).
pub type Answered = (Arc<LoadedModel>, Result<Vec<Prediction>, PredictFailure>);

/// A request's answer, with its capture if data capture sampled it: the handler hands
/// the predictions over once it has written its response, so they are never copied.
pub struct Scored {
    pub model: Arc<LoadedModel>,
    pub outcome: Result<Vec<Prediction>, PredictFailure>,
    pub capture: Option<Pending>,
}

impl AppState {
    /// Scores `rows` as [`Self::route`] does; an answered request that data capture
    /// samples comes back with its rows, to be recorded under `request_id`.
    pub(super) async fn score(
        &self,
        stable: &Arc<LoadedModel>,
        mut rows: Vec<Vec<Field>>,
        routing: Routing<'_>,
        request_id: Option<&str>,
    ) -> Result<Scored, ApiError> {
        let sampled = self.capture.sample();
        let (model, outcome) = self.route(stable, &mut rows, routing, sampled).await?;
        let capture = (sampled && outcome.is_ok()).then(|| self.capture.pending(request_id, rows));
        Ok(Scored { model, outcome, capture })
    }

    /// Scores `rows`, read for `stable`, within the bound on concurrent plugin calls
    /// (beyond it: [`ApiError::Overloaded`]). During a rollout the request goes where the
    /// rollout routes it: the stable version (with a shadow copy for the candidate), or
    /// the candidate, whose failure is then retried on the stable version. A shadow copy
    /// takes the rows, or a copy of them if `keep_rows`.
    async fn route(
        &self,
        stable: &Arc<LoadedModel>,
        rows: &mut Vec<Vec<Field>>,
        routing: Routing<'_>,
        keep_rows: bool,
    ) -> Result<Answered, ApiError> {
        let permit = self.calls.try_acquire().map_err(|_| ApiError::Overloaded(self.max_concurrent_calls))?;
        let rollout = match routing {
            Routing::Split(key) => self.slot.rollout().map(|rollout| (rollout, key)),
            Routing::Stable => None,
        };
        let Some((rollout, key)) = rollout else {
            let outcome = stable.predict(rows).await;
            drop(permit);
            return Ok((Arc::clone(stable), outcome));
        };
        let stats = rollout.stats();
        let route = rollout.route(&stats, key);
        let started = Instant::now();
        if route == Route::Candidate {
            let candidate = &rollout.candidate;
            if let Ok(predictions) = candidate.predict(rows).await {
                rollout.record(&stats, true, started.elapsed(), false);
                return Ok((Arc::clone(candidate), Ok(predictions)));
            }
            let candidate_time = started.elapsed();
            // Scoring is idempotent: the client gets the stable version's answer, and
            // the candidate is charged unless the stable version refuses the rows too.
            let outcome = stable.predict(rows).await;
            rollout.record(&stats, true, candidate_time, outcome.is_ok());
            return Ok((Arc::clone(stable), outcome));
        }
        let outcome = stable.predict(rows).await;
        drop(permit);
        match (route, &outcome) {
            (Route::Stable { shadow: true }, Ok(predictions)) => {
                let labels = predictions.iter().map(|p| p.label.clone()).collect();
                let rows = if keep_rows { rows.clone() } else { std::mem::take(rows) };
                rollout.shadow(Arc::clone(&stats), rows, labels);
            }
            // The canary judges the candidate's latency against these calls.
            (Route::Stable { shadow: false }, _) if stats.phase == Phase::Canary => {
                let failed = outcome.as_ref().err().and_then(PredictFailure::kind).is_some();
                rollout.record(&stats, false, started.elapsed(), failed);
            }
            _ => {}
        }
        Ok((Arc::clone(stable), outcome))
    }
}

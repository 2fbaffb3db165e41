//! The serving version behind one atomic pointer.
//!
//! A request takes an `Arc` of the current version and keeps it to the end, so a swap
//! never disturbs calls in flight: the old version is freed when its last call ends.
//! The previous version is kept for rollback; load failures are remembered for
//! `/model/info` without touching what serves. A new version may first be judged on
//! live traffic as a candidate beside the serving one (`rollouts`).

mod rollouts;

pub use rollouts::NoRollout;

use crate::model::LoadedModel;
use crate::rollout::{Rollout, RolloutStatus};
use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What failed when a version was refused: the `kind` in `/model/info` and the label of
/// `model_load_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadFailureKind {
    /// Its signature is missing or does not verify (with `PLUGIN_PUBLIC_KEY` set).
    Signature,
    /// It is not a valid WebAssembly component.
    Component,
    /// It imports what the sandbox does not provide.
    Imports,
    /// It does not implement the predictor world.
    World,
    /// `info()` failed, or declared something inconsistent or out of bounds.
    Info,
    /// Scoring its own sample failed.
    SelfTest,
    /// The host failed while checking it.
    Panic,
    /// Its plugin or metrics could not be downloaded (retried with backoff).
    Fetch,
    /// Its registry record is broken (retried with backoff).
    Record,
    /// The rollout policy it carries is not valid, or it cannot be judged beside the
    /// serving version (its inputs differ).
    Policy,
    /// It was judged on live traffic and rolled back, or an operator aborted its rollout.
    Rollout,
}

impl LoadFailureKind {
    pub const ALL: [Self; 11] = [
        Self::Signature,
        Self::Component,
        Self::Imports,
        Self::World,
        Self::Info,
        Self::SelfTest,
        Self::Panic,
        Self::Fetch,
        Self::Record,
        Self::Policy,
        Self::Rollout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Component => "component",
            Self::Imports => "imports",
            Self::World => "world",
            Self::Info => "info",
            Self::SelfTest => "self_test",
            Self::Panic => "panic",
            Self::Fetch => "fetch",
            Self::Record => "record",
            Self::Policy => "policy",
            Self::Rollout => "rollout",
        }
    }
}

/// A version that was refused, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoadFailureRecord {
    pub version: String,
    pub kind: LoadFailureKind,
    /// `sha256:<hex>` of the refused plugin, as the artifact or its registry record names it.
    pub digest: String,
    pub reason: String,
    /// When it was refused (RFC 3339, UTC).
    #[serde(serialize_with = "crate::telemetry::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: SystemTime,
}

/// Failed versions remembered for `/model/info`.
const FAILURES_KEPT: usize = 32;

#[derive(Default)]
pub struct ServingSlot {
    serving: ArcSwapOption<LoadedModel>,
    previous: ArcSwapOption<LoadedModel>,
    last_failure: ArcSwapOption<LoadFailureRecord>,
    /// The latest failure of each version that failed and has not served since.
    failures: Mutex<BTreeMap<String, LoadFailureRecord>>,
    source_error: ArcSwapOption<SourceError>,
    /// The version an operator pinned: while set, sources stop following.
    pinned: ArcSwapOption<String>,
    draining: AtomicBool,
    /// The candidate being judged beside the serving version, if any.
    rollout: ArcSwapOption<Rollout>,
    /// The last rollout that ended, for `/model/info`.
    last_rollout: ArcSwapOption<RolloutStatus>,
    /// Serialises starting and ending rollouts (the judge, operators and swaps race).
    rollout_change: Mutex<()>,
    /// Candidates rolled back or aborted, by identity (refused like failed loads).
    rolled_back: Mutex<Vec<rollouts::RolledBack>>,
}

/// The source's latest failure to reach its backend (cleared once it answers again).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceError {
    pub error: String,
    /// Since when (RFC 3339, UTC).
    #[serde(serialize_with = "crate::telemetry::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: SystemTime,
}

impl ServingSlot {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The version serving now, if any has ever loaded.
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.serving.load_full()
    }

    pub fn previous(&self) -> Option<Arc<LoadedModel>> {
        self.previous.load_full()
    }

    /// Makes `model` the serving version; the one it replaces becomes `previous`.
    pub fn swap(&self, model: LoadedModel) -> Arc<LoadedModel> {
        let incoming = Arc::new(model);
        tracing::info!(
            version = %incoming.version,
            digest = %incoming.digest,
            compiler = incoming.plugin.compiler().name(),
            load_ms = incoming.load_time.as_millis() as u64,
            replaced = self.current().map(|m| m.version.clone()).as_deref().unwrap_or("none"),
            "model version swapped in"
        );
        self.failures.lock().expect("failures lock").remove(&incoming.version);
        self.serve(Arc::clone(&incoming));
        self.supersede_rollout(&format!("version {} was swapped in", incoming.version));
        incoming
    }

    /// Puts `incoming` in the serving pointer and keeps the version it replaces as
    /// `previous`; every swap (load, rollback, pin) goes through here.
    fn serve(&self, incoming: Arc<LoadedModel>) {
        incoming.plugin.set_serving(true);
        let outgoing = self.serving.swap(Some(Arc::clone(&incoming)));
        if let Some(outgoing) = outgoing.as_ref().filter(|o| !Arc::ptr_eq(o, &incoming)) {
            outgoing.plugin.set_serving(false);
        }
        crate::telemetry::metrics::swap(
            (&incoming.version, &incoming.digest),
            outgoing.as_deref().map(|m| (m.version.as_str(), m.digest.as_str())),
        );
        if let Some(outgoing) = outgoing {
            self.previous.store(Some(outgoing));
        }
    }

    /// Serves the previous version again (it stays loaded, so this is instant); the
    /// version it replaces becomes the previous one. Returns the version now serving.
    pub fn restore_previous(&self) -> Option<String> {
        let previous = self.previous.load_full()?;
        tracing::info!(version = %previous.version, replaced = self.current().map(|m| m.version.clone()).as_deref().unwrap_or("none"), "previous model version restored");
        let version = previous.version.clone();
        self.serve(previous);
        self.supersede_rollout(&format!("version {version} was restored"));
        Some(version)
    }

    /// Pins `version` (sources stop following), or with `None` lets them follow again.
    pub fn set_pinned(&self, version: Option<String>) {
        match &version {
            Some(version) => tracing::info!(%version, "model version pinned"),
            None => tracing::info!("model version unpinned; following the source"),
        }
        self.pinned.store(version.map(Arc::new));
    }

    pub fn pinned(&self) -> Option<String> {
        self.pinned.load().as_deref().cloned()
    }

    pub fn record_failure(&self, record: LoadFailureRecord) {
        tracing::error!(version = %record.version, digest = %record.digest, kind = record.kind.as_str(), reason = %record.reason, "model version refused");
        crate::telemetry::metrics::load_failure(record.kind.as_str());
        let mut failures = self.failures.lock().expect("failures lock");
        failures.insert(record.version.clone(), record.clone());
        if failures.len() > FAILURES_KEPT {
            let oldest = failures.values().min_by_key(|r| r.at).map(|r| r.version.clone());
            failures.remove(&oldest.unwrap_or_default());
        }
        self.last_failure.store(Some(Arc::new(record)));
    }

    /// Versions that failed to load and have not served since, most recent first.
    pub fn failures(&self) -> Vec<LoadFailureRecord> {
        let mut failures: Vec<_> = self.failures.lock().expect("failures lock").values().cloned().collect();
        failures.sort_by_key(|r| std::cmp::Reverse(r.at));
        failures
    }

    pub fn last_failure(&self) -> Option<Arc<LoadFailureRecord>> {
        self.last_failure.load_full()
    }

    /// Records (or clears, with `None`) the source's failure to reach its backend.
    pub fn set_source_error(&self, error: Option<String>) {
        match error {
            None => self.source_error.store(None),
            Some(error) => {
                let since = self.source_error.load().as_ref().map_or_else(SystemTime::now, |e| e.since);
                self.source_error.store(Some(Arc::new(SourceError { error, since })));
            }
        }
    }

    pub fn source_error(&self) -> Option<Arc<SourceError>> {
        self.source_error.load_full()
    }

    /// Ready: a version is loaded and the process is not shutting down.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire) && self.serving.load().is_some()
    }

    /// Marks the process as shutting down: readiness turns false, serving goes on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

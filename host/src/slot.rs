//! The serving version behind one atomic pointer.
//!
//! A request takes an `Arc` of the current version and keeps it to the end, so a swap
//! never disturbs calls in flight: the old version is freed when its last call ends.
//! The previous version is kept for rollback; load failures are remembered for
//! `/model/info` without touching what serves.

use crate::model::LoadedModel;
use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// A version that was refused, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LoadFailureRecord {
    pub version: String,
    pub digest: String,
    pub reason: String,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub at: SystemTime,
}

#[derive(Default)]
pub struct ActiveModel {
    serving: ArcSwapOption<LoadedModel>,
    previous: ArcSwapOption<LoadedModel>,
    last_failure: ArcSwapOption<LoadFailureRecord>,
    draining: AtomicBool,
}

impl ActiveModel {
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
    pub fn swap(&self, model: LoadedModel) {
        let incoming = Arc::new(model);
        tracing::info!(
            version = %incoming.version,
            digest = %incoming.digest,
            load_ms = incoming.load_time.as_millis() as u64,
            replaced = self.current().map(|m| m.version.clone()).as_deref().unwrap_or("none"),
            "model version swapped in"
        );
        if let Some(outgoing) = self.serving.swap(Some(incoming)) {
            self.previous.store(Some(outgoing));
        }
    }

    pub fn record_failure(&self, record: LoadFailureRecord) {
        tracing::error!(version = %record.version, digest = %record.digest, reason = %record.reason, "model version refused");
        self.last_failure.store(Some(Arc::new(record)));
    }

    pub fn last_failure(&self) -> Option<Arc<LoadFailureRecord>> {
        self.last_failure.load_full()
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

//! Turns an artifact into a [`LoadedModel`], or says exactly why it cannot serve:
//! compile → check imports and world → call `info()` → check it → score its sample.

use crate::artifact::Artifact;
use crate::model::LoadedModel;
use crate::runtime::{CallError, LoadError, ModelInfo, Runtime};
use crate::slot::{ActiveModel, LoadFailureRecord};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error(transparent)]
    Component(#[from] LoadError),
    #[error("info() failed: {0}")]
    Info(CallError),
    #[error("info() is inconsistent: {0}")]
    BadInfo(String),
    #[error("scoring its own sample failed: {0}")]
    Sample(String),
}

/// Loads `artifact`. Blocking (it compiles): run it off the async executor.
pub fn load(runtime: &Arc<Runtime>, artifact: Artifact) -> Result<LoadedModel, LoadFailure> {
    let started = Instant::now();
    let plugin = runtime.prepare(&artifact.bytes, &artifact.sha256, &artifact.version)?;
    let info = plugin.info().map_err(LoadFailure::Info)?;
    check_info(&info).map_err(LoadFailure::BadInfo)?;

    let mut model = LoadedModel {
        version: artifact.version,
        digest: artifact.digest,
        origin: artifact.origin,
        info,
        metrics: artifact.metrics,
        loaded_at: SystemTime::now(),
        load_time: started.elapsed(),
        plugin,
    };
    model
        .predict(std::slice::from_ref(&model.info.sample))
        .map_err(|e| LoadFailure::Sample(e.to_string()))?;
    model.load_time = started.elapsed();
    Ok(model)
}

fn check_info(info: &ModelInfo) -> Result<(), String> {
    if info.labels.is_empty() {
        return Err("no labels".into());
    }
    if info.labels.iter().collect::<HashSet<_>>().len() != info.labels.len() {
        return Err(format!("duplicate labels in {:?}", info.labels));
    }
    if info.inputs.iter().map(|f| &f.name).collect::<HashSet<_>>().len() != info.inputs.len() {
        return Err("duplicate input names".into());
    }
    Ok(())
}

/// Loads candidate versions and swaps them in, remembering refusals by digest so a
/// broken artifact is reported once, not retried in a loop.
pub struct Loader {
    runtime: Arc<Runtime>,
    slot: Arc<ActiveModel>,
    refused: Mutex<HashMap<String, String>>,
}

impl Loader {
    pub fn new(runtime: Arc<Runtime>, slot: Arc<ActiveModel>) -> Self {
        Self { runtime, slot, refused: Mutex::new(HashMap::new()) }
    }

    pub fn slot(&self) -> &Arc<ActiveModel> {
        &self.slot
    }

    /// Whether the artifact with `digest` was already refused.
    pub fn is_refused(&self, digest: &str) -> bool {
        self.refused.lock().expect("refusals lock").contains_key(digest)
    }

    /// Loads `artifact` and, if it proves sound, makes it the serving version.
    /// On failure the serving version stays and the reason is recorded.
    pub async fn load_and_swap(&self, artifact: Artifact) -> Result<(), String> {
        let (version, digest) = (artifact.version.clone(), artifact.digest.clone());
        let runtime = Arc::clone(&self.runtime);
        let outcome = tokio::task::spawn_blocking(move || load(&runtime, artifact)).await;
        let reason = match outcome {
            Ok(Ok(model)) => {
                self.slot.swap(model);
                return Ok(());
            }
            Ok(Err(failure)) => failure.to_string(),
            Err(join) => format!("loading panicked: {join}"),
        };
        self.refused.lock().expect("refusals lock").insert(digest.clone(), reason.clone());
        self.slot.record_failure(LoadFailureRecord {
            version,
            digest,
            reason: reason.clone(),
            at: SystemTime::now(),
        });
        Err(reason)
    }
}

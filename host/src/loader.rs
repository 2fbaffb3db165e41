//! Turns an artifact into a [`LoadedModel`], or says exactly why it cannot serve:
//! verify the signature (when a key is configured) → compile → check imports and world
//! → call `info()` → check it → score its sample.

use crate::artifact::Artifact;
use crate::artifact::signature::{PluginKey, SignatureError};
use crate::model::{LoadedModel, PredictFailure};
use crate::observe::PluginCalls;
use crate::runtime::{BATCH_WORLD, CallError, Compiler, LoadError, ModelInfo, Prediction, Runtime, priority};
use crate::slot::{ActiveModel, LoadFailureRecord};
use crate::tier_up::TierUp;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Component(#[from] LoadError),
    #[error("info() failed: {0}")]
    Info(CallError),
    #[error("info() is inconsistent: {0}")]
    BadInfo(String),
    #[error("scoring its own sample failed: {message}")]
    Sample { message: String, timed_out: bool },
}

/// How many times a version whose load missed its deadline is tried before it is refused
/// for good: loads run at low CPU priority, so a busy host can starve one.
pub const LOAD_ATTEMPTS: u32 = 3;

/// Loads `artifact`, compiling it with `compiler`. Blocking (it compiles): run it off
/// the async workers but inside the tokio runtime, so the plugin's first calls can run
/// on the runtime's handle — with [`priority::run_in_background`] while serving, or
/// `spawn_blocking` in a CLI command.
pub fn load(
    runtime: &Arc<Runtime>,
    artifact: Artifact,
    compiler: Compiler,
) -> Result<LoadedModel, LoadFailure> {
    let started = Instant::now();
    let plugin = runtime.prepare(&artifact.bytes, &artifact.sha256, &artifact.version, compiler)?;
    let tokio = tokio::runtime::Handle::current();
    let info = tokio.block_on(plugin.info()).map_err(LoadFailure::Info)?;
    check_info(&info).map_err(LoadFailure::BadInfo)?;

    let calls = PluginCalls::new(&artifact.version);
    let mut model = LoadedModel {
        version: artifact.version,
        digest: artifact.digest,
        origin: artifact.origin,
        info,
        metrics: artifact.metrics,
        signed: artifact.signature.is_some(),
        signature_verified: false,
        loaded_at: SystemTime::now(),
        load_time: started.elapsed(),
        plugin,
        calls,
    };
    self_test(&tokio, &model)?;
    model.load_time = started.elapsed();
    Ok(model)
}

/// Scores the plugin's own sample. A batch-predictor scores it once more, in a batch of
/// two (the host sends batches to `predict-columns`, single rows to `predict`), and the
/// answers must agree: otherwise a row's answer would depend on its company.
fn self_test(tokio: &tokio::runtime::Handle, model: &LoadedModel) -> Result<(), LoadFailure> {
    let failed = |context: &str, e: PredictFailure| LoadFailure::Sample {
        message: format!("{context}{e}"),
        timed_out: matches!(e, PredictFailure::Plugin(CallError::Timeout(_))),
    };
    let sample = &model.info.sample;
    let alone = tokio.block_on(model.predict(std::slice::from_ref(sample))).map_err(|e| failed("", e))?;
    if model.plugin.world() != BATCH_WORLD {
        return Ok(());
    }
    let in_batch = tokio
        .block_on(model.predict(&[sample.clone(), sample.clone()]))
        .map_err(|e| failed("as a batch (predict-columns): ", e))?;
    match in_batch.iter().find(|p| !same_answer(p, &alone[0])) {
        Some(p) => Err(LoadFailure::Sample {
            message: format!(
                "predict-columns answers {:?} where predict answers {:?}",
                p.label, alone[0].label
            ),
            timed_out: false,
        }),
        None => Ok(()),
    }
}

/// The same label, and each label's probability within rounding.
pub fn same_answer(a: &Prediction, b: &Prediction) -> bool {
    a.label == b.label
        && a.scores.len() == b.scores.len()
        && a.scores
            .iter()
            .zip(&b.scores)
            .all(|(x, y)| x.label == y.label && (x.probability - y.probability).abs() <= 1e-9)
}

impl LoadFailure {
    /// The kind of failure, as `/model/info` and the metrics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Signature(_) => "signature",
            Self::Component(LoadError::NotAComponent(_)) => "component",
            Self::Component(LoadError::DisallowedImports(_)) => "imports",
            Self::Component(LoadError::WrongWorld(_)) => "world",
            Self::Info(_) | Self::BadInfo(_) => "info",
            Self::Sample { .. } => "self_test",
        }
    }

    /// Whether trying again may succeed: the plugin missed a deadline, which a loaded
    /// host can cause. Everything else would fail the same way again.
    pub fn may_pass_later(&self) -> bool {
        matches!(self, Self::Info(CallError::Timeout(_)) | Self::Sample { timed_out: true, .. })
    }
}

/// Bounds on what a plugin may declare. `/model/info`, refusal messages and the check of
/// every answer are sized by it; real models are far inside (the bundled one declares 8
/// inputs and 3 labels).
const MAX_LABELS: usize = 256;
const MAX_INPUTS: usize = 256;
const MAX_NAME_BYTES: usize = 256;
const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Known values of one text field (product codes run to thousands).
const MAX_CATEGORIES: usize = 16_384;

fn check_info(info: &ModelInfo) -> Result<(), String> {
    if info.labels.is_empty() {
        return Err("no labels".into());
    }
    if info.labels.len() > MAX_LABELS || info.inputs.len() > MAX_INPUTS {
        return Err(format!(
            "{} labels and {} inputs; at most {MAX_LABELS} and {MAX_INPUTS}",
            info.labels.len(),
            info.inputs.len()
        ));
    }
    if let Some(field) = info.inputs.iter().find(|f| f.categories.len() > MAX_CATEGORIES) {
        return Err(format!(
            "{} categories for {:?}; at most {MAX_CATEGORIES}",
            field.categories.len(),
            field.name
        ));
    }
    let fields = info.inputs.iter();
    let names =
        info.labels.iter().chain(fields.clone().flat_map(|f| [&f.name].into_iter().chain(&f.categories)));
    if let Some(long) = names.chain([&info.name, &info.version]).find(|n| n.len() > MAX_NAME_BYTES) {
        return Err(format!("a name, label or category of {} bytes; at most {MAX_NAME_BYTES}", long.len()));
    }
    let descriptions = fields.map(|f| &f.description).chain([&info.description]);
    if let Some(long) = descriptions.into_iter().find(|d| d.len() > MAX_DESCRIPTION_BYTES) {
        return Err(format!("a description of {} bytes; at most {MAX_DESCRIPTION_BYTES}", long.len()));
    }
    if info.labels.iter().collect::<HashSet<_>>().len() != info.labels.len() {
        return Err(format!("duplicate labels in {:?}", info.labels));
    }
    if info.inputs.iter().map(|f| &f.name).collect::<HashSet<_>>().len() != info.inputs.len() {
        return Err("duplicate input names".into());
    }
    Ok(())
}

/// Loads `artifact` after checking its signature with `key`, if one is configured.
pub fn load_verified(
    runtime: &Arc<Runtime>,
    key: Option<&PluginKey>,
    artifact: Artifact,
    compiler: Compiler,
) -> Result<LoadedModel, LoadFailure> {
    if let Some(key) = key {
        key.verify(&artifact.sha256, artifact.signature.as_deref())?;
    }
    let mut model = load(runtime, artifact, compiler)?;
    model.signature_verified = key.is_some();
    Ok(model)
}

/// How a swap compiles a version.
#[derive(Debug, Clone, Copy)]
pub struct SwapCompile {
    /// The compiler of a swap (a first load uses Cranelift).
    pub compiler: Compiler,
    /// How long a version swapped in with Winch serves before it is compiled again with
    /// Cranelift (if it still serves, or is the version a rollback restores).
    pub recompile_after: Duration,
}

/// Loads candidate versions and swaps them in, remembering refusals by identity (digest
/// and signature) so a broken artifact is reported once, not retried in a loop. A load
/// that missed its deadline is not refused until it has done so [`LOAD_ATTEMPTS`] times.
pub struct Loader {
    runtime: Arc<Runtime>,
    slot: Arc<ActiveModel>,
    key: Option<PluginKey>,
    refused: Mutex<HashMap<String, String>>,
    /// Failed loads so far, by identity, of artifacts whose failure may pass (see
    /// [`LoadFailure::may_pass_later`]); refused once [`LOAD_ATTEMPTS`] is reached.
    attempts: Mutex<HashMap<String, u32>>,
    swaps: SwapCompile,
    /// Started with the first swap that compiles with Winch; `None` if it cannot start.
    tier_up: OnceLock<Option<TierUp>>,
}

impl Loader {
    pub fn new(
        runtime: Arc<Runtime>,
        slot: Arc<ActiveModel>,
        key: Option<PluginKey>,
        swaps: SwapCompile,
    ) -> Self {
        Self {
            runtime,
            slot,
            key,
            refused: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            swaps,
            tier_up: OnceLock::new(),
        }
    }

    pub fn slot(&self) -> &Arc<ActiveModel> {
        &self.slot
    }

    /// Whether the artifact with this [identity](Artifact::identity) was already refused.
    pub fn is_refused(&self, identity: &str) -> bool {
        self.refusal(identity).is_some()
    }

    /// Why the artifact with this [identity](Artifact::identity) was refused, if it was.
    pub fn refusal(&self, identity: &str) -> Option<String> {
        self.refused.lock().expect("refusals lock").get(identity).cloned()
    }

    /// Loads `artifact` and, if it proves sound, makes it the serving version.
    /// On failure the serving version stays and the reason is recorded. The first
    /// version compiles with Cranelift; a swap with Winch, and then with Cranelift on
    /// idle CPU (see `tier_up`), unless `SWAP_COMPILER` says Cranelift.
    pub async fn load_and_swap(&self, artifact: Artifact) -> Result<(), String> {
        let (version, digest, identity) =
            (artifact.version.clone(), artifact.digest.clone(), artifact.identity());
        let compiler = if self.slot.current().is_some() { self.swaps.compiler } else { Compiler::Cranelift };
        let recompile =
            (compiler == Compiler::Winch).then(|| (artifact.bytes.clone(), artifact.sha256.clone()));
        let (runtime, key) = (Arc::clone(&self.runtime), self.key.clone());
        let outcome = priority::run_in_background("model-load", move || {
            load_verified(&runtime, key.as_ref(), artifact, compiler)
        })
        .await;
        let (kind, reason, may_pass_later) = match outcome {
            Ok(Ok(model)) => {
                let model = self.slot.swap(model);
                // Winch may have declined, and Cranelift compiled it already.
                if let Some((bytes, sha256)) = recompile
                    && model.plugin.compiler() == Compiler::Winch
                    && let Some(tier_up) = self.tier_up()
                {
                    tier_up.request(model, bytes, sha256, Instant::now() + self.swaps.recompile_after);
                }
                self.attempts.lock().expect("attempts lock").remove(&identity);
                return Ok(());
            }
            Ok(Err(failure)) => (failure.kind(), failure.to_string(), failure.may_pass_later()),
            // The host's own failure (a panic, no thread to run on): it may not recur.
            Err(e) => ("panic", format!("loading failed: {e}"), true),
        };
        // The count of failures that may pass, this one included; forgotten at the last.
        let attempt = may_pass_later.then(|| {
            let mut attempts = self.attempts.lock().expect("attempts lock");
            let count = attempts.entry(identity.clone()).or_insert(0);
            *count += 1;
            let attempt = *count;
            if attempt >= LOAD_ATTEMPTS {
                attempts.remove(&identity);
            }
            attempt
        });
        let tried_again = attempt.is_some_and(|n| n < LOAD_ATTEMPTS);
        let reason = match attempt {
            Some(n) if tried_again => {
                format!("{reason} (attempt {n} of {LOAD_ATTEMPTS}; tried again at the next check)")
            }
            Some(n) => format!("{reason} (attempt {n} of {LOAD_ATTEMPTS}; refused)"),
            None => reason,
        };
        if !tried_again {
            self.refused.lock().expect("refusals lock").insert(identity, reason.clone());
        }
        self.slot.record_failure(LoadFailureRecord {
            version,
            kind,
            digest,
            reason: reason.clone(),
            at: SystemTime::now(),
        });
        Err(reason)
    }

    fn tier_up(&self) -> Option<&TierUp> {
        self.tier_up
            .get_or_init(|| {
                TierUp::start(Arc::clone(&self.runtime), Arc::clone(&self.slot))
                    .inspect_err(|e| tracing::warn!(error = %e, "cannot start recompiling with Cranelift"))
                    .ok()
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{FieldSpec, FieldType};

    fn info(labels: usize, inputs: usize) -> ModelInfo {
        ModelInfo {
            name: "model".into(),
            version: "1".into(),
            description: String::new(),
            inputs: (0..inputs)
                .map(|i| FieldSpec {
                    name: format!("f{i}"),
                    type_: FieldType::Text,
                    required: true,
                    description: String::new(),
                    categories: vec!["a".into()],
                })
                .collect(),
            labels: (0..labels).map(|i| format!("L{i}")).collect(),
            sample: Vec::new(),
        }
    }

    #[test]
    fn declarations_past_the_bounds_are_refused() {
        assert_eq!(check_info(&info(MAX_LABELS, MAX_INPUTS)), Ok(()));
        assert!(check_info(&info(MAX_LABELS + 1, 1)).unwrap_err().contains("257 labels"));
        assert!(check_info(&info(1, MAX_INPUTS + 1)).unwrap_err().contains("257 inputs"));
        let mut long = info(3, 1);
        long.labels[1] = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(check_info(&long).unwrap_err().contains("257 bytes"));
        let mut long = info(3, 1);
        long.inputs[0].name = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(check_info(&long).is_err());
        let mut long = info(3, 1);
        long.inputs[0].categories[0] = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(check_info(&long).is_err());
        let mut many = info(3, 1);
        many.inputs[0].categories = vec!["c".into(); MAX_CATEGORIES + 1];
        assert!(check_info(&many).unwrap_err().contains("16385 categories"));
        let mut long = info(3, 1);
        long.description = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
        assert!(check_info(&long).unwrap_err().contains("description"));
        let mut long = info(3, 1);
        long.inputs[0].description = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
        assert!(check_info(&long).unwrap_err().contains("description"));
        assert_eq!(check_info(&info(0, 1)), Err("no labels".into()));
    }
}

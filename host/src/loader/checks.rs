//! The checks a version passes before it may serve, each failure saying exactly why:
//! verify the signature (when a key is configured) → compile → check imports and world
//! → call `info()` → check what it declares → score its own sample.

use crate::artifact::Artifact;
use crate::artifact::signature::{PluginKey, SignatureError};
use crate::model::{LoadedModel, PredictFailure, same_answer};
use crate::runtime::{BATCH_WORLD, CallError, Compiler, LoadError, ModelInfo, Runtime};
use crate::slot::LoadFailureKind;
use crate::telemetry::metrics::PluginCalls;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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

impl LoadFailure {
    /// The kind of failure, as `/model/info` and the metrics name it.
    pub fn kind(&self) -> LoadFailureKind {
        match self {
            Self::Signature(_) => LoadFailureKind::Signature,
            Self::Component(LoadError::NotAComponent(_)) => LoadFailureKind::Component,
            Self::Component(LoadError::DisallowedImports(_)) => LoadFailureKind::Imports,
            Self::Component(LoadError::WrongWorld(_)) => LoadFailureKind::World,
            Self::Info(_) | Self::BadInfo(_) => LoadFailureKind::Info,
            Self::Sample { .. } => LoadFailureKind::SelfTest,
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

//! `predict-host package`: turns an ONNX classifier into a plugin component, with the
//! ONNX runner built into this binary, so a publisher needs no Rust toolchain, no
//! WebAssembly target and no network. The model is checked on the way: the runner
//! refuses an operator it does not run or an input it cannot map, and the packaged
//! plugin must pass the checks every host makes before serving, its own sample included.

use super::validate;
use crate::artifact::MAX_PLUGIN_BYTES;
use crate::artifact::{sha256_hex, write_atomically};
use crate::config::PackageArgs;
use crate::loader::LoadFailure;
use crate::model::LoadedModel;
use crate::runtime::preinit;
use anyhow::{Context, bail};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The memory a packaged plugin may use while loading its model: a host's default
/// `PLUGIN_MEMORY_LIMIT_MIB`, since the snapshot starts every instance at that size.
const LOAD_MEMORY_LIMIT: usize = 64 << 20;

/// The magic number of every WebAssembly binary.
const WASM_MAGIC: &[u8] = b"\0asm";

pub async fn package(args: PackageArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (bytes, model) = package_model(&args.model, args.manifest.as_deref()).await?;
    write_atomically(&args.output, &bytes).with_context(|| format!("writing {}", args.output.display()))?;
    // Readable by whoever serves it (a temporary file is the owner's alone).
    #[cfg(unix)]
    std::fs::set_permissions(&args.output, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let summary = json!({
        "plugin": args.output.display().to_string(), "sha256": sha256_hex(&bytes), "bytes": bytes.len(),
        "model": model.info.name, "version": model.info.version,
        "inputs": model.info.inputs.iter().map(|f| &f.name).collect::<Vec<_>>(),
        "labels": model.info.labels, "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}

/// Whether `path` names an ONNX model rather than a plugin component.
pub fn is_onnx(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Packages the ONNX model at `model` (with the manifest at `manifest`, if any) and
/// returns the plugin's bytes with the model as a host loads it.
pub async fn package_model(model: &Path, manifest: Option<&Path>) -> anyhow::Result<(Vec<u8>, LoadedModel)> {
    let bytes = read_bounded(model)?;
    if bytes.starts_with(WASM_MAGIC) {
        bail!("{} is a WebAssembly file, not an ONNX model: publish or serve it as it is", model.display());
    }
    let manifest = manifest_text(model, manifest)?;
    let runner = plugin_artifacts::ONNX_RUNNER_WASM;
    let plugin = preinit::load_into(runner, &bytes, &manifest, LOAD_MEMORY_LIMIT)
        .await
        .with_context(|| format!("cannot package {}", model.display()))?;
    let checked = validate(model, plugin.clone()).await.map_err(|e| {
        let hint = match e.downcast_ref() {
            Some(LoadFailure::Sample { .. }) => {
                " (a classifier must answer every label with a probability in [0, 1], the row summing to 1)"
            }
            _ => "",
        };
        e.context(format!("the model packaged from {} fails the checks a host makes{hint}", model.display()))
    })?;
    Ok((plugin, checked))
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    if size > MAX_PLUGIN_BYTES {
        bail!("{} is {size} bytes; hosts load plugins of at most {MAX_PLUGIN_BYTES}", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The manifest as JSON text for the runner, named after the model file unless it
/// names itself.
fn manifest_text(model: &Path, manifest: Option<&Path>) -> anyhow::Result<String> {
    let mut value = match manifest {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?
        }
        None => json!({}),
    };
    let object = value.as_object_mut().context("the manifest must be a JSON object")?;
    if !object.contains_key("name") {
        let stem = model.file_stem().and_then(|s| s.to_str()).unwrap_or("onnx-model");
        object.insert("name".into(), stem.into());
    }
    Ok(value.to_string())
}

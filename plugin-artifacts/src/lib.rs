//! Plugin components built from this repository's sources by `build.rs`.
//!
//! The bundled price-sensitivity plugin is embedded in the host as its default model,
//! together with the held-out metrics its trainer produced, and so is the ONNX runner,
//! which `predict-host package` turns into a plugin for a given model. With the `fixtures` feature,
//! `fixtures::*` name the fault-injection plugins that tests load from disk.

/// The bundled price-sensitivity plugin component.
pub static PRICE_SENSITIVITY_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/price-sensitivity.wasm"));

/// The ONNX runner component, into which `predict-host package` loads a model.
pub static ONNX_RUNNER_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/onnx-runner.wasm"));

/// Held-out evaluation of the bundled plugin, as written by its trainer.
pub static PRICE_SENSITIVITY_METRICS: &str =
    include_str!(concat!(env!("OUT_DIR"), "/price-sensitivity.metrics.json"));

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

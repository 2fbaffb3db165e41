//! Sources decide which version should serve: the model registry, the watched plugin
//! directory, or the plugin bundled into this binary when nothing else is available.

pub mod plugin_dir;
pub mod registry;

use crate::artifact::{Artifact, Origin};

/// The plugin compiled into this binary, with its held-out metrics.
pub fn bundled() -> Artifact {
    let metrics = serde_json::from_str(plugin_artifacts::PRICE_SENSITIVITY_METRICS).ok();
    Artifact::new(
        plugin_artifacts::PRICE_SENSITIVITY_VERSION.to_string(),
        Origin::Bundled,
        plugin_artifacts::PRICE_SENSITIVITY_WASM.to_vec(),
        metrics,
    )
}

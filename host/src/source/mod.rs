//! Sources decide which version should serve: the model registry, the watched plugin
//! directory, or the plugin bundled into this binary when nothing else is available.
//! Each runs as one task that also carries out operator commands ([`control`]).

pub mod control;
pub mod plugin_dir;
pub mod registry;

use crate::artifact::{Artifact, Origin};
use crate::loader::Loader;
use control::{AvailableVersion, Command, ControlError, Controlled, handle};
use std::sync::Arc;
use tokio::sync::mpsc;

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

/// No registry and no directory: the bundled plugin is the only version there is.
pub struct BundledSource {
    bundled: Artifact,
    loader: Arc<Loader>,
}

impl BundledSource {
    pub fn new(bundled: Artifact, loader: Arc<Loader>) -> Self {
        Self { bundled, loader }
    }

    /// Loads the bundled plugin, then carries out operator commands.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.reconcile().await;
        let slot = Arc::clone(self.loader.slot());
        while let Some(command) = commands.recv().await {
            handle(&mut self, &slot, command).await;
        }
    }
}

impl Controlled for BundledSource {
    async fn reconcile(&mut self) {
        let slot = self.loader.slot();
        if slot.current().is_none()
            && slot.pinned().is_none()
            && !self.loader.is_refused(&self.bundled.identity())
        {
            let _ = self.loader.load_and_swap(self.bundled.clone()).await;
        }
    }

    async fn load_version(&mut self, version: &str) -> Result<(), ControlError> {
        if version != self.bundled.version {
            return Err(ControlError::NoSuchVersion(version.to_string()));
        }
        let refused = |reason| ControlError::Refused { version: version.to_string(), reason };
        self.loader.load_and_swap(self.bundled.clone()).await.map_err(|refusal| refused(refusal.reason))
    }

    async fn available(&mut self) -> Vec<AvailableVersion> {
        vec![plugin_dir::local_version(&self.bundled, control::VersionLocation::Bundled)]
    }
}

//! A plugin version's bytes, where they came from, and their digest.

use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Where a version was found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// The plugin compiled into this binary: served when no other version is available.
    Bundled,
    /// A file in the watched plugin directory.
    PluginDir { path: PathBuf },
}

/// One candidate version, ready to be loaded.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The version as the source names it (file name, registry version, …).
    pub version: String,
    pub origin: Origin,
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// Held-out evaluation published with this version, if any.
    pub metrics: Option<serde_json::Value>,
}

impl Artifact {
    pub fn new(version: String, origin: Origin, bytes: Vec<u8>, metrics: Option<serde_json::Value>) -> Self {
        let digest = sha256_digest(&bytes);
        Self { version, origin, bytes, digest, metrics }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

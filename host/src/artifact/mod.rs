//! A plugin version's bytes, where they came from, and their digest; ed25519 signatures
//! over digests; and complete-or-nothing writes of such bytes to disk.

pub mod signature;

use crate::aws::sagemaker::VersionDetails;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a version was found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// The plugin compiled into this binary: served when no other version is available.
    Bundled,
    /// A file in the watched plugin directory.
    PluginDir { path: PathBuf },
    /// A version of a model package group in the model registry.
    Registry(Box<VersionDetails>),
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
    /// Lower-case hex sha256 of `bytes`.
    pub sha256: String,
    /// Held-out evaluation published with this version, if any.
    pub metrics: Option<serde_json::Value>,
    /// Base64 ed25519 signature over the digest, if the publisher signed it.
    pub signature: Option<String>,
    /// The rollout policy overrides it carries (JSON), if any.
    pub rollout: Option<String>,
}

impl Artifact {
    pub fn new(version: String, origin: Origin, bytes: Vec<u8>, metrics: Option<serde_json::Value>) -> Self {
        let sha256 = sha256_hex(&bytes);
        Self {
            version,
            origin,
            digest: format!("sha256:{sha256}"),
            sha256,
            bytes,
            metrics,
            signature: None,
            rollout: None,
        }
    }

    pub fn with_signature(mut self, signature: Option<String>) -> Self {
        self.signature = signature;
        self
    }

    pub fn with_rollout(mut self, rollout: Option<String>) -> Self {
        self.rollout = rollout;
        self
    }

    /// What a refusal is remembered by: the bytes and the signature that came with them,
    /// so adding a missing signature later gets the same bytes another chance.
    pub fn identity(&self) -> String {
        identity(&self.digest, self.signature.as_deref())
    }
}

/// [`Artifact::identity`] of bytes with `digest` (`sha256:<hex>`) and `signature`.
pub fn identity(digest: &str, signature: Option<&str>) -> String {
    match signature {
        Some(signature) => format!("{digest}+sig:{signature}"),
        None => digest.to_string(),
    }
}

/// The largest plugin read from any source. Models are far smaller (the bundled one is
/// about 100 KiB); the bound keeps a wrong or hostile file from being read whole into
/// memory before its digest can be checked.
pub const MAX_PLUGIN_BYTES: u64 = 64 << 20;

/// The largest metrics or signature file read beside a plugin.
pub const MAX_SIDECAR_BYTES: u64 = 1 << 20;

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

//! The on-disk cache under `CACHE_DIR`: plugin bytes by digest, and what the registry
//! said about each version, so a restart (or a return to an earlier version) needs no
//! download, and a host whose registry is down still starts on its last good version.
//!
//! Layout: `artifacts/sha256/<hex>.wasm`, `registry/<group>/<version>.json`,
//! `registry/<group>/last-good`. Every write is a rename of a complete temporary file,
//! so a crash never leaves a torn entry; every read of plugin bytes re-checks the digest.

use crate::artifact::{sha256_hex, write_atomically};
use crate::aws::sagemaker::VersionDetails;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A registry version as cached: its description and its published metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedVersion {
    pub details: VersionDetails,
    pub metrics: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    root: PathBuf,
}

impl ArtifactCache {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn plugin_path(&self, sha256: &str) -> PathBuf {
        self.root.join("artifacts").join("sha256").join(format!("{sha256}.wasm"))
    }

    fn group_dir(&self, group: &str) -> PathBuf {
        self.root.join("registry").join(group)
    }

    /// Plugin bytes with this sha256, if cached intact (a damaged entry is removed).
    pub fn plugin(&self, sha256: &str) -> Option<Vec<u8>> {
        let path = self.plugin_path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        if sha256_hex(&bytes) == sha256 {
            return Some(bytes);
        }
        tracing::warn!(path = %path.display(), "cached plugin does not match its digest; discarding it");
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Whether plugin bytes with this sha256 are cached (not re-checked: see [`Self::plugin`]).
    pub fn has_plugin(&self, sha256: &str) -> bool {
        self.plugin_path(sha256).is_file()
    }

    pub fn store_plugin(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.plugin_path(sha256), bytes)
    }

    pub fn store_version(&self, version: &CachedVersion) -> std::io::Result<()> {
        let path = self.group_dir(&version.details.group).join(format!("{}.json", version.details.version));
        write_atomically(&path, &serde_json::to_vec_pretty(version)?)
    }

    pub fn version(&self, group: &str, version: u32) -> Option<CachedVersion> {
        let text = std::fs::read(self.group_dir(group).join(format!("{version}.json"))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Every version of `group` whose record is cached.
    pub fn versions(&self, group: &str) -> Vec<CachedVersion> {
        let Ok(entries) = std::fs::read_dir(self.group_dir(group)) else { return Vec::new() };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .filter_map(|version| self.version(group, version))
            .collect()
    }

    pub fn set_last_good(&self, group: &str, version: u32) -> std::io::Result<()> {
        write_atomically(&self.group_dir(group).join("last-good"), version.to_string().as_bytes())
    }

    /// The version of `group` that last served successfully, if its record is cached.
    pub fn last_good(&self, group: &str) -> Option<CachedVersion> {
        let text = std::fs::read_to_string(self.group_dir(group).join("last-good")).ok()?;
        self.version(group, text.trim().parse().ok()?)
    }
}

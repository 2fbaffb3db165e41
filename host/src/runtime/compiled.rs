//! Compiled components kept on disk, so a restart skips Cranelift.
//!
//! Entries live under `<dir>/<engine hash>/<plugin sha256>.cwasm`, where the engine hash
//! covers the wasmtime version and every code-generation setting: an engine never sees
//! code compiled for another. Precompiled code is only ever read from this host's own
//! cache, written by this code after compiling bytes whose digest was verified; a
//! sidecar `.sha256` of the compiled bytes catches a torn or altered entry, which is
//! then discarded and compiled again.

use crate::artifact::sha256_hex;
use crate::artifact::write_atomically;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompiledCache {
    dir: PathBuf,
}

impl CompiledCache {
    pub fn new(root: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir: root.join(format!("{:016x}", hasher.finish())) }
    }

    fn paths(&self, plugin_sha256: &str) -> (PathBuf, PathBuf) {
        let code = self.dir.join(format!("{plugin_sha256}.cwasm"));
        let check = self.dir.join(format!("{plugin_sha256}.cwasm.sha256"));
        (code, check)
    }

    /// The cached compilation of the plugin with `plugin_sha256`, if present and intact.
    pub fn load(&self, engine: &Engine, plugin_sha256: &str) -> Option<Component> {
        let (code_path, check_path) = self.paths(plugin_sha256);
        let code = std::fs::read(&code_path).ok()?;
        let expected = std::fs::read_to_string(&check_path).ok()?;
        if sha256_hex(&code) != expected.trim() {
            tracing::warn!(path = %code_path.display(), "compiled cache entry is damaged; recompiling");
            let _ = std::fs::remove_file(&code_path);
            return None;
        }
        // SAFETY: `code` was produced by `Component::serialize` in this cache directory,
        // for an engine with the same compatibility hash, and is intact (checked above).
        match unsafe { Component::deserialize(engine, &code) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %code_path.display(), error = %e, "compiled cache entry unusable; recompiling");
                None
            }
        }
    }

    pub fn store(&self, component: &Component, plugin_sha256: &str) {
        let (code_path, check_path) = self.paths(plugin_sha256);
        let result = component.serialize().map_err(std::io::Error::other).and_then(|code| {
            write_atomically(&code_path, &code)?;
            write_atomically(&check_path, sha256_hex(&code).as_bytes())
        });
        if let Err(e) = result {
            tracing::warn!(path = %code_path.display(), error = %e, "cannot write compiled cache entry");
        }
    }
}

//! The plugin-directory source: serves the highest version found in a directory and
//! follows changes to it as they happen.
//!
//! Naming scheme: `<name>-<version>.wasm`, where `<version>` is dot-separated numbers
//! (`3`, `1.2.0`) compared numerically; held-out metrics may sit beside it as
//! `<name>-<version>.metrics.json`, its signature (base64, see
//! [`crate::artifact::signature`]) as `<name>-<version>.wasm.sig`, and its rollout policy
//! overrides as `<name>-<version>.rollout.json`. Other files are ignored. Copy a new version in under
//! a temporary name and rename it, so the watcher never sees half a file (a half file is
//! refused and retried once complete, but logs an error meanwhile).
//!
//! Rules, applied after every change and on a periodic rescan:
//! - a version higher than the serving one replaces it once it loads (under a phased
//!   rollout policy: is judged as a candidate, and replaces it once promoted; with
//!   nothing serving yet, the version below it serves first);
//! - rewriting the serving version's file with different bytes reloads it;
//! - a broken file is refused once (by digest and signature) and the serving version stays;
//! - deleting the serving version's file falls back to the highest remaining version,
//!   or to the bundled plugin when the directory holds none;
//! - while an operator has pinned a version, none of the above happens.

use super::control::{AvailableVersion, Command, ControlError, Controlled, VersionLocation, handle};
use crate::artifact::{Artifact, MAX_PLUGIN_BYTES, MAX_SIDECAR_BYTES, Origin};
use crate::loader::{Loader, Offered};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Quiet time after a change before the directory is read, so a burst of events
/// (create, write, close) is handled once.
const SETTLE: Duration = Duration::from_millis(100);

pub struct PluginDirSource {
    dir: PathBuf,
    rescan_every: Duration,
    fallback: Option<Artifact>,
    loader: Arc<Loader>,
}

/// A version number: dot-separated numbers, compared numerically (`1.10` > `1.9`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(text: &str) -> Option<Self> {
        text.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u64>>>().map(Self)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        let at = |v: &Self, i: usize| v.0.get(i).copied().unwrap_or(0);
        (0..len).map(|i| at(self, i).cmp(&at(other, i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A plugin file found in the directory.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub version: Version,
    /// The version as written in the file name.
    pub label: String,
    pub wasm: PathBuf,
    pub metrics: PathBuf,
    pub signature: PathBuf,
    pub rollout: PathBuf,
}

/// Parses `<name>-<version>.wasm`; anything else is not a candidate.
pub fn parse_candidate(path: &Path) -> Option<Candidate> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".wasm")?;
    let (name, label) = stem.rsplit_once('-')?;
    if name.is_empty() {
        return None;
    }
    Some(Candidate {
        version: Version::parse(label)?,
        label: label.to_string(),
        wasm: path.to_path_buf(),
        metrics: path.with_file_name(format!("{stem}.metrics.json")),
        signature: path.with_file_name(format!("{stem}.wasm.sig")),
        rollout: path.with_file_name(format!("{stem}.rollout.json")),
    })
}

impl PluginDirSource {
    pub fn new(
        dir: PathBuf,
        rescan_every: Duration,
        fallback: Option<Artifact>,
        loader: Arc<Loader>,
    ) -> Self {
        Self { dir, rescan_every, fallback, loader }
    }

    /// Watches the directory and reconciles on every change and every `rescan_every`,
    /// and carries out operator commands, for the life of the process. Where the
    /// directory cannot be watched (inotify's per-user limits are often used up on busy
    /// nodes), the rescans alone find changes, `rescan_every` late at most.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let changed = Arc::new(Notify::new());
        // Kept for as long as the loop runs: dropping it stops the notifications.
        let _watcher = match watch(&self.dir, Arc::clone(&changed)) {
            Ok(watcher) => {
                tracing::info!(dir = %self.dir.display(), "watching plugin directory");
                Some(watcher)
            }
            Err(e) => {
                tracing::warn!(
                    dir = %self.dir.display(), error = %e, rescan_every = ?self.rescan_every,
                    "cannot watch the plugin directory; changes are found by rescanning only"
                );
                None
            }
        };

        let mut rescan = tokio::time::interval(self.rescan_every);
        loop {
            tokio::select! {
                _ = changed.notified() => tokio::time::sleep(SETTLE).await,
                _ = rescan.tick() => {}
                Some(command) = commands.recv() => {
                    let slot = Arc::clone(self.loader.slot());
                    handle(&mut self, &slot, command).await;
                    continue;
                }
            }
            self.reconcile_dir().await;
        }
    }

    /// Brings the serving version in line with the directory (see the module rules).
    pub async fn reconcile_dir(&self) {
        if self.loader.slot().pinned().is_some() {
            return;
        }
        if self.reconcile_pass().await {
            self.reconcile_pass().await;
        }
    }

    /// One pass of [`Self::reconcile_dir`]; `true` if the newest version was passed over
    /// for a first stable one, to be judged in a second pass.
    async fn reconcile_pass(&self) -> bool {
        let mut candidates = match self.scan() {
            Ok(candidates) => candidates,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read plugin directory");
                return false;
            }
        };
        candidates.sort_by(|a, b| b.version.cmp(&a.version));

        let slot = self.loader.slot();
        let serving = slot.current();
        // The bundled plugin yields to any version in the directory.
        let serving = serving.filter(|m| m.origin != Origin::Bundled);
        let serving_version = serving.as_ref().and_then(|m| Version::parse(&m.version));
        let judging = slot.rollout().filter(|r| matches!(r.candidate.origin, Origin::PluginDir { .. }));
        if let Some(judging) = &judging
            && !candidates.iter().any(|c| c.label == judging.candidate.version)
        {
            slot.withdraw_rollout(format!("the file of version {} is gone", judging.candidate.version));
        }
        let judging = judging.map(|r| r.candidate.version.clone());

        let mut passed_over = false;
        let count = candidates.len();
        for (i, candidate) in candidates.into_iter().enumerate() {
            if judging.as_deref() == Some(candidate.label.as_str()) {
                return false;
            }
            let Some(artifact) = read_artifact(&candidate) else { continue };
            let order = serving_version.as_ref().map(|v| candidate.version.cmp(v));
            if order == Some(Ordering::Equal) {
                let unchanged = serving.as_ref().is_some_and(|m| m.digest == artifact.digest);
                if !unchanged && !self.loader.is_refused(&artifact.identity()) {
                    let _ = self.loader.load_and_swap(artifact).await;
                }
                // Same version: whatever happened, the serving version stays (or was reloaded).
                return false;
            }
            if self.loader.is_refused(&artifact.identity()) {
                continue;
            }
            // Nothing serves and this version would be judged: serve the one below it
            // first, so that it has a stable version to be judged against.
            let phased = self.loader.policy_of(artifact.rollout.as_deref()).is_ok_and(|p| p.is_phased());
            if slot.current().is_none() && phased && i + 1 < count && !passed_over {
                tracing::info!(version = %artifact.version, "judging the newest version once the one below it serves");
                passed_over = true;
                continue;
            }
            // A version below the serving one takes over because the serving one's file
            // is gone: an operator's withdrawal, carried out at once.
            if order == Some(Ordering::Less) {
                if self.loader.load_and_swap(artifact).await.is_ok() {
                    return false;
                }
                continue;
            }
            match self.loader.offer(artifact).await {
                Ok(Offered::Serving) => return passed_over,
                Ok(Offered::Judging) => return false,
                Err(_) => {}
            }
        }
        // Nothing in the directory can take over. If the serving version's file is gone
        // too (or nothing serves yet), fall back to the bundled plugin.
        let serving_file_gone = serving
            .as_ref()
            .is_none_or(|m| !matches!(&m.origin, Origin::PluginDir { path } if path.exists()));
        let bundled_serving = self.loader.slot().current().is_some_and(|m| m.origin == Origin::Bundled);
        if let Some(fallback) = self.fallback.as_ref().filter(|_| serving_file_gone && !bundled_serving)
            && !self.loader.is_refused(&fallback.identity())
        {
            let _ = self.loader.load_and_swap(fallback.clone()).await;
        }
        false
    }

    fn scan(&self) -> std::io::Result<Vec<Candidate>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if let Some(candidate) = parse_candidate(&path) {
                found.push(candidate);
            }
        }
        Ok(found)
    }
}

impl Controlled for PluginDirSource {
    async fn reconcile(&mut self) {
        self.reconcile_dir().await;
    }

    async fn load_version(&mut self, version: &str) -> Result<(), ControlError> {
        let wanted = Version::parse(version).ok_or_else(|| ControlError::NoSuchVersion(version.into()))?;
        let found = self.scan().map_err(|e| ControlError::Unavailable(e.to_string()))?;
        let artifact = match found.iter().find(|c| c.version == wanted) {
            Some(candidate) => read_artifact(candidate),
            None => self.fallback.clone().filter(|b| b.version == version),
        };
        let artifact = artifact.ok_or_else(|| ControlError::NoSuchVersion(version.into()))?;
        self.loader
            .load_and_swap(artifact)
            .await
            .map_err(|refusal| ControlError::Refused { version: version.into(), reason: refusal.reason })
    }

    async fn available(&mut self) -> Vec<AvailableVersion> {
        let mut found = self.scan().unwrap_or_default();
        found.sort_by(|a, b| b.version.cmp(&a.version));
        let files =
            found.iter().filter_map(read_artifact).map(|a| local_version(&a, VersionLocation::PluginDir));
        let bundled = self.fallback.iter().map(|a| local_version(a, VersionLocation::Bundled));
        files.chain(bundled).collect()
    }
}

/// An artifact on local disk (or built in) as the operator API lists it.
pub(crate) fn local_version(artifact: &Artifact, location: VersionLocation) -> AvailableVersion {
    AvailableVersion {
        version: artifact.version.clone(),
        location,
        digest: Some(artifact.digest.clone()),
        approval_status: None,
        local: true,
        signed: artifact.signature.is_some(),
    }
}

/// Reads a candidate's bytes, metrics and signature; a file that vanished is skipped.
fn read_artifact(candidate: &Candidate) -> Option<Artifact> {
    let bytes = match read_file(&candidate.wasm, MAX_PLUGIN_BYTES) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(path = %candidate.wasm.display(), error = %e, "cannot read plugin file");
            return None;
        }
    };
    let metrics = read_sidecar(&candidate.metrics).and_then(|text| match serde_json::from_slice(&text) {
        Ok(json) => Some(json),
        Err(e) => {
            tracing::warn!(path = %candidate.metrics.display(), error = %e, "metrics file is not JSON; serving without metrics");
            None
        }
    });
    let signature =
        read_sidecar(&candidate.signature).map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string());
    let rollout = read_sidecar(&candidate.rollout).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let origin = Origin::PluginDir { path: candidate.wasm.clone() };
    Some(
        Artifact::new(candidate.label.clone(), origin, bytes, metrics)
            .with_signature(signature)
            .with_rollout(rollout),
    )
}

/// A metrics or signature file's bytes; `None` when there is none, or (with a warning)
/// when it cannot be read.
fn read_sidecar(path: &Path) -> Option<Vec<u8>> {
    match read_file(path, MAX_SIDECAR_BYTES) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read file; ignoring it");
            None
        }
    }
}

/// Reads a regular file of at most `limit` bytes. It is opened without blocking, since
/// opening a named pipe would wait for a writer and hold up the source, and checked
/// before it is read: anything but a regular file, or a larger one, is an error.
fn read_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_large = || Error::new(ErrorKind::FileTooLarge, format!("larger than {limit} bytes"));
    if metadata.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // A file still growing may pass the check above.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Notifies `changed` on every change in `dir` (not on reads, which our own scans make).
fn watch(dir: &Path, changed: Arc<Notify>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match event {
            Ok(e) => !matches!(e.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)),
            Err(_) => true,
        };
        if relevant {
            changed.notify_one();
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

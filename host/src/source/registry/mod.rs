//! The registry source: serves the highest Approved version of one model package group
//! and follows the registry by polling.
//!
//! Every poll lists the group's Approved versions (one call when nothing changed). The
//! highest one that can load serves: a newer approval swaps in, and rejecting the
//! serving version falls back to the next Approved one. Plugin bytes come from the
//! cache when their digest is there, from S3 otherwise, and are verified against the
//! registry's `plugin-sha256` before anything compiles them.
//!
//! Failures never touch the serving version. A version whose verified bytes fail to
//! load is refused for good (by digest); one that could not be fetched (S3 down, object
//! missing, digest mismatch) is retried with exponential backoff. A registry that does
//! not answer is polled with exponential backoff too, and on start the last good
//! version is served from the cache before the registry has answered at all.
//!
//! While an operator has pinned a version the registry is not polled; `pin` loads any
//! version of the group (from the registry, or from the cache when it is down).
//!
//! Under a phased rollout policy a newer approval is judged as a candidate before it
//! serves, and only a version that serves becomes the cache's last good one. So a host
//! restarted mid-rollout serves the last promoted version and judges the candidate again
//! from the start; a host with no such record judges the newest Approved version against
//! the one before it. With `ROLLOUT_REJECT_IN_REGISTRY`, a candidate rolled back is also
//! marked Rejected, so the whole fleet stops offering it.

pub mod cache;

use super::control::{AvailableVersion, Command, ControlError, Controlled, VersionLocation, handle};
use crate::artifact::{Artifact, MAX_PLUGIN_BYTES, MAX_SIDECAR_BYTES, Origin, identity, sha256_hex};
use crate::aws::s3::{FetchError, ObjectStore, S3Url};
use crate::aws::sagemaker::{ModelRegistry, RegistryError, VersionDetails, VersionSummary};
use crate::loader::{Loader, Offered};
use crate::slot::{LoadFailureKind, LoadFailureRecord};
use aws_sdk_sagemaker::types::ModelApprovalStatus;
use cache::{ArtifactCache, CachedVersion};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// Longest wait between attempts, whatever the number of failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct RegistrySource {
    registry: ModelRegistry,
    store: ObjectStore,
    cache: Option<ArtifactCache>,
    loader: Arc<Loader>,
    poll_interval: Duration,
    /// Versions whose fetch failed: failures so far and when to try again.
    retry_at: HashMap<u32, (u32, Instant)>,
    /// Polls failed in a row (drives the backoff).
    failures: u32,
    /// Approved versions as of the last successful poll.
    approved: Vec<VersionSummary>,
    /// The version last recorded as the cache's last good one.
    last_good: Option<u32>,
    /// Whether candidates rolled back are marked Rejected in the registry.
    reject_rolled_back: bool,
    /// Rolled-back versions still to mark Rejected (the registry was down).
    to_reject: Vec<u32>,
}

/// What one pass over the Approved versions ended with.
enum Pass {
    Done,
    /// The newest version was passed over for a first stable one: look again.
    Again,
}

impl RegistrySource {
    pub fn new(
        registry: ModelRegistry,
        store: ObjectStore,
        cache: Option<ArtifactCache>,
        loader: Arc<Loader>,
        poll_interval: Duration,
    ) -> Self {
        Self {
            registry,
            store,
            cache,
            loader,
            poll_interval,
            retry_at: HashMap::new(),
            failures: 0,
            approved: Vec::new(),
            last_good: None,
            reject_rolled_back: false,
            to_reject: Vec::new(),
        }
    }

    /// Marks candidates rolled back as Rejected in the registry (needs a role that may
    /// update model packages).
    pub fn rejecting_rolled_back(mut self, reject: bool) -> Self {
        self.reject_rolled_back = reject;
        self
    }

    /// Serves the cached last good version, then polls for the life of the process and
    /// carries out operator commands between polls.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.serve_last_good().await;
        let slot = Arc::clone(self.loader.slot());
        loop {
            self.poll_and_record().await;
            let wait = tokio::time::sleep(jittered(backoff(self.poll_interval, self.failures)));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    Some(command) = commands.recv() => handle(&mut self, &slot, command).await,
                }
            }
        }
    }

    /// One poll, with its outcome recorded for `/model/info` and the backoff.
    async fn poll_and_record(&mut self) {
        match self.poll().await {
            Ok(()) => {
                self.failures = 0;
                self.loader.slot().set_source_error(None);
            }
            Err(e) => {
                self.failures += 1;
                tracing::warn!(group = self.registry.group(), error = %e, failures = self.failures, "registry poll failed");
                self.loader.slot().set_source_error(Some(e.to_string()));
            }
        }
    }

    async fn serve_last_good(&self) {
        let Some(cache) = &self.cache else { return };
        let Some(cached) = cache.last_good(self.registry.group()) else { return };
        let Some(bytes) = cache.plugin(&cached.details.sha256) else { return };
        tracing::info!(version = cached.details.version, "serving the last good version from the cache");
        let _ = self.loader.load_and_swap(artifact(cached, bytes)).await;
    }

    /// One reconciliation with the registry.
    pub async fn poll(&mut self) -> Result<(), RegistryError> {
        if self.loader.slot().pinned().is_some() {
            return Ok(());
        }
        self.reject_rolled_back_versions().await;
        let approved = self.registry.approved_versions().await?;
        // The registry answered, so an outage is over before any version it names swaps
        // in: whoever sees the new version also sees the error gone.
        self.loader.slot().set_source_error(None);
        self.approved.clone_from(&approved);
        let judging = self.loader.slot().rollout().and_then(|r| self.registry_version(&r.candidate.origin));
        if let Some(judging) = judging.filter(|j| !approved.iter().any(|v| v.version == *j)) {
            self.loader.slot().withdraw_rollout(format!("version {judging} is no longer approved"));
        }
        let mut outcome = self.pass(&approved).await;
        if matches!(outcome, Ok(Pass::Again)) {
            outcome = self.pass(&approved).await;
        }
        self.record_last_good();
        outcome.map(|_| ())
    }

    /// The group's version number of a version from this registry.
    fn registry_version(&self, origin: &Origin) -> Option<u32> {
        match origin {
            Origin::Registry(d) if d.group == self.registry.group() => Some(d.version),
            _ => None,
        }
    }

    /// Offers the highest Approved version that can load, unless it serves or is judged.
    async fn pass(&mut self, approved: &[VersionSummary]) -> Result<Pass, RegistryError> {
        let slot = Arc::clone(self.loader.slot());
        let serving = slot.current().and_then(|m| self.registry_version(&m.origin));
        let judging = slot.rollout().and_then(|r| self.registry_version(&r.candidate.origin));
        let mut passed_over = false;
        for (i, summary) in approved.iter().enumerate() {
            if Some(summary.version) == serving || Some(summary.version) == judging {
                return Ok(Pass::Done);
            }
            if self.retry_at.get(&summary.version).is_some_and(|(_, at)| Instant::now() < *at) {
                continue;
            }
            let details = match self.registry.describe(&summary.arn).await {
                Ok(details) => details,
                // One version's broken record keeps that version out, not the others.
                Err(e @ RegistryError::Malformed(..)) => {
                    self.version_failed(summary.version, LoadFailureKind::Record, String::new(), &e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.loader.is_refused(&details_identity(&details)) {
                continue;
            }
            // Nothing serves and a newer version would be judged: serve the one before
            // it first, so that it has a stable version to be judged against.
            let phased = self.loader.policy_of(details.rollout.as_deref()).is_ok_and(|p| p.is_phased());
            if slot.current().is_none() && phased && i + 1 < approved.len() && !passed_over {
                tracing::info!(
                    version = details.version,
                    "judging the newest version once the one before it serves"
                );
                passed_over = true;
                continue;
            }
            match self.fetch(&details).await {
                Ok(artifact) => {
                    self.retry_at.remove(&summary.version);
                    // A version below the serving one takes over because the serving
                    // one is no longer approved: carried out at once.
                    if serving.is_some_and(|s| summary.version < s) {
                        if self.loader.load_and_swap(artifact).await.is_ok() {
                            return Ok(Pass::Done);
                        }
                        continue;
                    }
                    match self.loader.offer(artifact).await {
                        Ok(Offered::Serving) if passed_over => return Ok(Pass::Again),
                        Ok(_) => return Ok(Pass::Done),
                        Err(_) => {}
                    }
                }
                Err(e) => self.version_failed(
                    details.version,
                    LoadFailureKind::Fetch,
                    format!("sha256:{}", details.sha256),
                    &e,
                ),
            }
        }
        if serving.is_some() && !approved.iter().any(|v| Some(v.version) == serving) {
            tracing::warn!(version = ?serving, "the serving version is no longer approved and no other version can take over; it keeps serving");
        }
        Ok(Pass::Done)
    }

    /// Records the serving version as the cache's last good one, once it changes.
    fn record_last_good(&mut self) {
        let serving = self.loader.slot().current().and_then(|m| self.registry_version(&m.origin));
        let (Some(cache), Some(version)) = (&self.cache, serving) else { return };
        if self.last_good == Some(version) {
            return;
        }
        match cache.set_last_good(self.registry.group(), version) {
            Ok(()) => self.last_good = Some(version),
            Err(e) => tracing::warn!(error = %e, "cannot record the last good version in the cache"),
        }
    }

    /// Marks candidates rolled back since the last poll as Rejected, when configured;
    /// those the registry did not take are tried again at the next poll.
    async fn reject_rolled_back_versions(&mut self) {
        if !self.reject_rolled_back {
            return;
        }
        let rolled_back = self.loader.slot().take_rolled_back();
        self.to_reject.extend(rolled_back.iter().filter_map(|v| v.parse::<u32>().ok()));
        let mut failed = Vec::new();
        for version in std::mem::take(&mut self.to_reject) {
            match self.registry.set_status(version, ModelApprovalStatus::Rejected).await {
                Ok(()) => tracing::info!(version, "rolled-back version marked Rejected in the registry"),
                Err(e) => {
                    tracing::warn!(version, error = %e, "cannot mark a rolled-back version Rejected; trying again at the next poll");
                    failed.push(version);
                }
            }
        }
        self.to_reject = failed;
    }

    /// The version's plugin and metrics, from the cache or S3, digest verified.
    async fn fetch(&self, details: &VersionDetails) -> Result<Artifact, FetchError> {
        let cached = self.cache.as_ref().and_then(|c| Some((c.plugin(&details.sha256)?, c)));
        let bytes = match cached {
            Some((bytes, _)) => bytes,
            None => {
                let url = S3Url::parse(&details.artifact_url)?;
                let bytes = self.store.get(&url, MAX_PLUGIN_BYTES).await?;
                let actual = sha256_hex(&bytes);
                if actual != details.sha256 {
                    return Err(FetchError::DigestMismatch {
                        url: url.to_string(),
                        expected: details.sha256.clone(),
                        actual: format!("sha256:{actual}"),
                    });
                }
                bytes
            }
        };
        let cached_metrics = self
            .cache
            .as_ref()
            .and_then(|c| c.version(&details.group, details.version))
            .filter(|c| c.details == *details)
            .map(|c| c.metrics);
        let metrics = match cached_metrics {
            Some(metrics) => metrics,
            None => self.fetch_metrics(details).await?,
        };
        let record = CachedVersion { details: details.clone(), metrics };
        if let Some(cache) = &self.cache {
            let stored =
                cache.store_plugin(&details.sha256, &bytes).and_then(|()| cache.store_version(&record));
            if let Err(e) = stored {
                tracing::warn!(error = %e, "cannot write to the artifact cache");
            }
        }
        Ok(artifact(record, bytes))
    }

    async fn fetch_metrics(&self, details: &VersionDetails) -> Result<Option<serde_json::Value>, FetchError> {
        let Some(url) = &details.metrics_url else { return Ok(None) };
        let url = S3Url::parse(url)?;
        let text = self.store.get(&url, MAX_SIDECAR_BYTES).await?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| FetchError::BadMetrics { url: url.to_string(), message: e.to_string() })
    }

    /// Records that `version` cannot be loaded now (its plugin or metrics could not be
    /// fetched, or its registry record is broken), and when to try it again: both can be
    /// put right without a new version.
    fn version_failed(
        &mut self,
        version: u32,
        kind: LoadFailureKind,
        digest: String,
        error: &dyn std::fmt::Display,
    ) {
        let failures = self.retry_at.get(&version).map_or(0, |(n, _)| *n) + 1;
        let wait = backoff(self.poll_interval, failures);
        self.retry_at.insert(version, (failures, Instant::now() + wait));
        self.loader.slot().record_failure(LoadFailureRecord {
            version: version.to_string(),
            kind,
            digest,
            reason: format!("{error} (retrying in {}s)", wait.as_secs()),
            at: SystemTime::now(),
        });
    }
}

impl Controlled for RegistrySource {
    async fn reconcile(&mut self) {
        self.poll_and_record().await;
    }

    async fn load_version(&mut self, version: &str) -> Result<(), ControlError> {
        let missing = || ControlError::NoSuchVersion(version.to_string());
        let number: u32 = version.parse().map_err(|_| missing())?;
        let details = match self.registry.arn_of(number).await {
            Ok(arn) => self.registry.describe(&arn).await,
            Err(e) => Err(e),
        };
        let refused = |reason: String| ControlError::Refused { version: version.to_string(), reason };
        // The registry's word first; in an outage, what the cache remembers of it.
        let details = match details {
            Ok(details) => details,
            Err(RegistryError::NoSuchVersion(..)) => return Err(missing()),
            Err(e @ RegistryError::Malformed(..)) => return Err(refused(e.to_string())),
            Err(e) => match self.cache.as_ref().and_then(|c| c.version(self.registry.group(), number)) {
                Some(cached) => cached.details,
                None => return Err(ControlError::Unavailable(e.to_string())),
            },
        };
        if let Some(reason) = self.loader.refusal(&details_identity(&details)) {
            return Err(refused(reason));
        }
        let artifact = self.fetch(&details).await.map_err(|e| refused(e.to_string()))?;
        self.loader.load_and_swap(artifact).await.map_err(|refusal| refused(refusal.reason))
    }

    async fn available(&mut self) -> Vec<AvailableVersion> {
        let group = self.registry.group().to_string();
        let mut versions = BTreeMap::new();
        for cached in self.cache.iter().flat_map(|c| c.versions(&group)) {
            let d = &cached.details;
            let local = self.cache.as_ref().is_some_and(|c| c.has_plugin(&d.sha256));
            versions.insert(
                d.version,
                AvailableVersion {
                    version: d.version.to_string(),
                    location: VersionLocation::Cache,
                    digest: Some(format!("sha256:{}", d.sha256)),
                    approval_status: Some(d.approval_status.clone()),
                    local,
                    signed: d.signature.is_some(),
                },
            );
        }
        for summary in &self.approved {
            let entry = versions.entry(summary.version).or_insert_with(|| AvailableVersion {
                version: summary.version.to_string(),
                location: VersionLocation::Registry,
                digest: None,
                approval_status: None,
                local: false,
                signed: false,
            });
            entry.location = VersionLocation::Registry;
            entry.approval_status = Some(summary.status.clone());
        }
        versions.into_values().rev().collect()
    }
}

/// The [identity](Artifact::identity) of a registry version's artifact.
fn details_identity(details: &VersionDetails) -> String {
    identity(&format!("sha256:{}", details.sha256), details.signature.as_deref())
}

fn artifact(cached: CachedVersion, bytes: Vec<u8>) -> Artifact {
    let version = cached.details.version.to_string();
    let signature = cached.details.signature.clone();
    let rollout = cached.details.rollout.clone();
    Artifact::new(version, Origin::Registry(Box::new(cached.details)), bytes, cached.metrics)
        .with_signature(signature)
        .with_rollout(rollout)
}

/// `base` after no failure; doubling per failure after that, up to [`MAX_BACKOFF`].
fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1 << failures.min(16)).min(MAX_BACKOFF.max(base))
}

/// ±20%, so a fleet of hosts started together does not poll in lockstep.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(rand::rng().random_range(0.8..1.2))
}

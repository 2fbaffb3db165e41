//! Turns candidate versions into the serving one: each is checked (`checks`) and swapped
//! in, or refused with the reason remembered by identity, so a broken artifact is
//! reported once and not retried in a loop; a version swapped in with Winch's code is
//! compiled again with Cranelift later (`tier_up`).

mod checks;
mod tier_up;

pub use checks::{LoadFailure, load, load_verified};

use crate::artifact::Artifact;
use crate::artifact::signature::PluginKey;
use crate::runtime::{Compiler, Runtime, priority};
use crate::slot::{LoadFailureKind, LoadFailureRecord, ServingSlot};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tier_up::TierUp;

/// How many times a version whose load missed its deadline is tried before it is refused
/// for good: loads run at low CPU priority, so a busy host can starve one.
pub const LOAD_ATTEMPTS: u32 = 3;

/// Why a version was not swapped in: what failed, and the reason `/model/info` shows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    pub kind: LoadFailureKind,
    pub reason: String,
}

/// How a swap compiles a version.
#[derive(Debug, Clone, Copy)]
pub struct SwapCompile {
    /// The compiler of a swap (a first load uses Cranelift).
    pub compiler: Compiler,
    /// How long a version swapped in with Winch serves before it is compiled again with
    /// Cranelift (if it still serves, or is the version a rollback restores).
    pub recompile_after: Duration,
}

/// Loads candidate versions and swaps them in, remembering refusals by identity (digest
/// and signature) so a broken artifact is reported once, not retried in a loop. A load
/// that missed its deadline is not refused until it has done so [`LOAD_ATTEMPTS`] times.
pub struct Loader {
    runtime: Arc<Runtime>,
    slot: Arc<ServingSlot>,
    key: Option<PluginKey>,
    refused: Mutex<HashMap<String, String>>,
    /// Failed loads so far, by identity, of artifacts whose failure may pass (see
    /// [`LoadFailure::may_pass_later`]); refused once [`LOAD_ATTEMPTS`] is reached.
    attempts: Mutex<HashMap<String, u32>>,
    swaps: SwapCompile,
    /// Started with the first swap that compiles with Winch; `None` if it cannot start.
    tier_up: OnceLock<Option<TierUp>>,
}

impl Loader {
    pub fn new(
        runtime: Arc<Runtime>,
        slot: Arc<ServingSlot>,
        key: Option<PluginKey>,
        swaps: SwapCompile,
    ) -> Self {
        Self {
            runtime,
            slot,
            key,
            refused: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            swaps,
            tier_up: OnceLock::new(),
        }
    }

    pub fn slot(&self) -> &Arc<ServingSlot> {
        &self.slot
    }

    /// Whether the artifact with this [identity](Artifact::identity) was already refused.
    pub fn is_refused(&self, identity: &str) -> bool {
        self.refusal(identity).is_some()
    }

    /// Why the artifact with this [identity](Artifact::identity) was refused, if it was.
    pub fn refusal(&self, identity: &str) -> Option<String> {
        self.refused.lock().expect("refusals lock").get(identity).cloned()
    }

    /// Loads `artifact` and, if it proves sound, makes it the serving version.
    /// On failure the serving version stays and the reason is recorded. The first
    /// version compiles with Cranelift; a swap with Winch, and then with Cranelift on
    /// idle CPU (see `tier_up`), unless `SWAP_COMPILER` says Cranelift.
    pub async fn load_and_swap(&self, artifact: Artifact) -> Result<(), Refusal> {
        let (version, digest, identity) =
            (artifact.version.clone(), artifact.digest.clone(), artifact.identity());
        let compiler = if self.slot.current().is_some() { self.swaps.compiler } else { Compiler::Cranelift };
        let recompile =
            (compiler == Compiler::Winch).then(|| (artifact.bytes.clone(), artifact.sha256.clone()));
        let (runtime, key) = (Arc::clone(&self.runtime), self.key.clone());
        let outcome = priority::run_in_background("model-load", move || {
            load_verified(&runtime, key.as_ref(), artifact, compiler)
        })
        .await;
        let (kind, reason, may_pass_later) = match outcome {
            Ok(Ok(model)) => {
                let model = self.slot.swap(model);
                // Winch may have declined, and Cranelift compiled it already.
                if let Some((bytes, sha256)) = recompile
                    && model.plugin.compiler() == Compiler::Winch
                    && let Some(tier_up) = self.tier_up()
                {
                    tier_up.request(model, bytes, sha256, Instant::now() + self.swaps.recompile_after);
                }
                self.attempts.lock().expect("attempts lock").remove(&identity);
                return Ok(());
            }
            Ok(Err(failure)) => (failure.kind(), failure.to_string(), failure.may_pass_later()),
            // The host's own failure (a panic, no thread to run on): it may not recur.
            Err(e) => (LoadFailureKind::Panic, format!("loading failed: {e}"), true),
        };
        // The count of failures that may pass, this one included; forgotten at the last.
        let attempt = may_pass_later.then(|| {
            let mut attempts = self.attempts.lock().expect("attempts lock");
            let count = attempts.entry(identity.clone()).or_insert(0);
            *count += 1;
            let attempt = *count;
            if attempt >= LOAD_ATTEMPTS {
                attempts.remove(&identity);
            }
            attempt
        });
        let tried_again = attempt.is_some_and(|n| n < LOAD_ATTEMPTS);
        let reason = match attempt {
            Some(n) if tried_again => {
                format!("{reason} (attempt {n} of {LOAD_ATTEMPTS}; tried again at the next check)")
            }
            Some(n) => format!("{reason} (attempt {n} of {LOAD_ATTEMPTS}; refused)"),
            None => reason,
        };
        if !tried_again {
            self.refused.lock().expect("refusals lock").insert(identity, reason.clone());
        }
        self.slot.record_failure(LoadFailureRecord {
            version,
            kind,
            digest,
            reason: reason.clone(),
            at: SystemTime::now(),
        });
        Err(Refusal { kind, reason })
    }

    fn tier_up(&self) -> Option<&TierUp> {
        self.tier_up
            .get_or_init(|| {
                TierUp::start(Arc::clone(&self.runtime), Arc::clone(&self.slot))
                    .inspect_err(|e| tracing::warn!(error = %e, "cannot start recompiling with Cranelift"))
                    .ok()
            })
            .as_ref()
    }
}

//! Turns candidate versions into the serving one: each is checked (`checks`) and swapped
//! in, or refused with the reason remembered by identity, so a broken artifact is
//! reported once and not retried in a loop; a version swapped in with Winch's code is
//! compiled again with Cranelift later (`tier_up`). Under a phased rollout policy a new
//! version is not swapped in but handed to the slot as a candidate to judge (`offer`).

mod checks;
mod tier_up;

pub use checks::{LoadFailure, load, load_verified};

use crate::artifact::Artifact;
use crate::artifact::signature::PluginKey;
use crate::model::LoadedModel;
use crate::rollout::Rollout;
use crate::rollout::policy::RolloutPolicy;
use crate::runtime::{Compiler, FieldSpec, FieldType, Runtime, priority};
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

/// What became of a version a source offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// It serves.
    Serving,
    /// It is a candidate, judged beside the serving version.
    Judging,
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
    /// How new versions are rolled out, unless they carry a policy of their own.
    policy: RolloutPolicy,
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
            policy: RolloutPolicy::DEFAULT,
        }
    }

    /// Rolls new versions out under `policy` (the host's default) instead of at once.
    pub fn with_rollout_policy(mut self, policy: RolloutPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The rollout policy of a version carrying `overrides`: the host's, with them.
    pub fn policy_of(&self, overrides: Option<&str>) -> Result<RolloutPolicy, String> {
        self.policy.with_overrides(overrides)
    }

    pub fn slot(&self) -> &Arc<ServingSlot> {
        &self.slot
    }

    /// Whether the artifact with this [identity](Artifact::identity) was already refused.
    pub fn is_refused(&self, identity: &str) -> bool {
        self.refusal(identity).is_some()
    }

    /// Why the artifact with this [identity](Artifact::identity) was refused, if it was
    /// (a failed load, or a rollout that ended in a rollback or abort).
    pub fn refusal(&self, identity: &str) -> Option<String> {
        let refused = self.refused.lock().expect("refusals lock").get(identity).cloned();
        refused.or_else(|| self.slot.rollout_refusal(identity))
    }

    /// Makes `artifact` serve, or under a phased rollout policy (with a version already
    /// serving) loads it as a candidate to judge beside the serving version. Sources
    /// offer the versions they find; operators' pins load at once ([`Self::load_and_swap`]).
    pub async fn offer(&self, artifact: Artifact) -> Result<Offered, Refusal> {
        let policy = match self.policy_of(artifact.rollout.as_deref()) {
            Ok(policy) => policy,
            Err(reason) => {
                let (identity, version, digest) = (artifact.identity(), &artifact.version, &artifact.digest);
                return Err(self.refuse(identity, version, digest, LoadFailureKind::Policy, reason));
            }
        };
        let stable = self.slot.current().filter(|stable| stable.version != artifact.version);
        let Some(stable) = stable.filter(|_| policy.is_phased()) else {
            return self.load_and_swap(artifact).await.map(|()| Offered::Serving);
        };
        let identity = artifact.identity();
        // Not on the response path, so no hurry for Winch: judged on Cranelift's code,
        // as it would serve once promoted.
        let candidate = self.load(artifact, Compiler::Cranelift).await?;
        if let Some(difference) = input_difference(&stable.info.inputs, &candidate.info.inputs) {
            let reason = format!(
                "it cannot be judged beside version {}: {difference}; roll it out with the policy {{\"strategy\": \"immediate\"}}",
                stable.version
            );
            let (version, digest) = (&candidate.version, &candidate.digest);
            return Err(self.refuse(identity, version, digest, LoadFailureKind::Policy, reason));
        }
        self.slot.begin_rollout(Rollout::start(
            Arc::new(candidate),
            identity,
            stable.version.clone(),
            policy,
        ));
        Ok(Offered::Judging)
    }

    /// Loads `artifact` and, if it proves sound, makes it the serving version.
    /// On failure the serving version stays and the reason is recorded. The first
    /// version compiles with Cranelift; a swap with Winch, and then with Cranelift on
    /// idle CPU (see `tier_up`), unless `SWAP_COMPILER` says Cranelift.
    pub async fn load_and_swap(&self, artifact: Artifact) -> Result<(), Refusal> {
        let compiler = if self.slot.current().is_some() { self.swaps.compiler } else { Compiler::Cranelift };
        let recompile =
            (compiler == Compiler::Winch).then(|| (artifact.bytes.clone(), artifact.sha256.clone()));
        let model = self.slot.swap(self.load(artifact, compiler).await?);
        // Winch may have declined, and Cranelift compiled it already.
        if let Some((bytes, sha256)) = recompile
            && model.plugin.compiler() == Compiler::Winch
            && let Some(tier_up) = self.tier_up()
        {
            tier_up.request(model, bytes, sha256, Instant::now() + self.swaps.recompile_after);
        }
        Ok(())
    }

    /// Loads and checks `artifact` at background priority; on failure the reason is
    /// recorded, and the artifact refused unless the failure may pass.
    async fn load(&self, artifact: Artifact, compiler: Compiler) -> Result<LoadedModel, Refusal> {
        let (version, digest, identity) =
            (artifact.version.clone(), artifact.digest.clone(), artifact.identity());
        let (runtime, key) = (Arc::clone(&self.runtime), self.key.clone());
        let outcome = priority::run_in_background("model-load", move || {
            load_verified(&runtime, key.as_ref(), artifact, compiler)
        })
        .await;
        let (kind, reason, may_pass_later) = match outcome {
            Ok(Ok(model)) => {
                self.attempts.lock().expect("attempts lock").remove(&identity);
                return Ok(model);
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

    /// Refuses `artifact` for good, without loading it.
    fn refuse(
        &self,
        identity: String,
        version: &str,
        digest: &str,
        kind: LoadFailureKind,
        reason: String,
    ) -> Refusal {
        self.refused.lock().expect("refusals lock").insert(identity, reason.clone());
        self.slot.record_failure(LoadFailureRecord {
            version: version.to_string(),
            kind,
            digest: digest.to_string(),
            reason: reason.clone(),
            at: SystemTime::now(),
        });
        Refusal { kind, reason }
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

/// How `candidate`'s input fields differ from `stable`'s, if they do: a candidate judged
/// on live traffic scores the rows read for the stable version.
fn input_difference(stable: &[FieldSpec], candidate: &[FieldSpec]) -> Option<String> {
    let describe = |fields: &[FieldSpec]| {
        fields
            .iter()
            .map(|f| {
                let kind = match f.type_ {
                    FieldType::Number => "number",
                    FieldType::Text => "text",
                };
                format!("{} ({kind})", f.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (stable, candidate) = (describe(stable), describe(candidate));
    (stable != candidate)
        .then(|| format!("its inputs [{candidate}] differ from the serving version's [{stable}]"))
}

//! Rolling out a new version inside the pod: the candidate is judged on live traffic
//! beside the stable version before any client depends on it.
//!
//! - **shadow**: a share of requests is also scored by the candidate, off the response
//!   path (`shadow`); clients get the stable answer. Agreement and failures are counted.
//! - **canary**: a share of requests is answered by the candidate; a request key keeps a
//!   caller on one version. A candidate's failure is retried on the stable version for
//!   that request, and counted against it; both versions' call times are compared.
//! - **promote**: the candidate becomes the serving version.
//!
//! Each phase is judged by its policy (`policy`, `judge`); the first threshold broken
//! rolls the candidate back. The slot holds the rollout and carries out decisions.

pub mod judge;
pub mod policy;
mod shadow;

use crate::model::LoadedModel;
use crate::runtime::Field;
use crate::telemetry::metrics::RolloutCalls;
use arc_swap::ArcSwap;
use judge::{Figures, PhaseStats};
use policy::RolloutPolicy;
use serde::Serialize;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Decisions kept per rollout for `/model/info`.
const DECISIONS_KEPT: usize = 32;

/// The phase a candidate is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Shadow,
    Canary,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shadow => "shadow",
            Self::Canary => "canary",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which version answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The stable version answers; with `shadow`, the candidate scores a copy.
    Stable { shadow: bool },
    /// The candidate answers (canary).
    Candidate,
}

/// What happened in a rollout, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The candidate loaded and its first phase began.
    Start,
    /// A phase passed and the next began.
    Advance,
    /// The candidate became the serving version.
    Promote,
    /// A threshold broke: the candidate was dropped and refused.
    RollBack,
    /// An operator dropped the candidate; it is refused.
    Abort,
    /// An operator held the phase: no promotion until resumed (rollback still applies).
    Pause,
    Resume,
    /// A newer version, or an operator's pin or rollback, replaced the candidate, or its
    /// source no longer offers it.
    Supersede,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Advance => "advance",
            Self::Promote => "promote",
            Self::RollBack => "roll_back",
            Self::Abort => "abort",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Supersede => "supersede",
        }
    }

    /// Whether the rollout ends with it.
    pub fn ends(self) -> bool {
        matches!(self, Self::Promote | Self::RollBack | Self::Abort | Self::Supersede)
    }
}

/// One decision, with its reason.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub action: Action,
    /// The phase the candidate was in when it was taken (or entered, for `start`).
    pub phase: Phase,
    pub reason: String,
    /// When (RFC 3339, UTC).
    #[serde(serialize_with = "crate::telemetry::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: SystemTime,
}

/// A candidate being judged against the stable version.
pub struct Rollout {
    pub candidate: Arc<LoadedModel>,
    /// What a refusal of it is remembered by (see `Artifact::identity`).
    pub identity: String,
    pub stable_version: String,
    pub policy: RolloutPolicy,
    stats: ArcSwap<PhaseStats>,
    held: AtomicBool,
    decisions: Mutex<Vec<Decision>>,
    started_at: SystemTime,
    /// Where shadow copies go (`None`: no shadow phase, or no thread for it).
    shadow: Option<shadow::Shadow>,
    calls: Arc<RolloutCalls>,
}

impl Rollout {
    /// Starts judging `candidate` against `stable_version` in the policy's first phase.
    pub fn start(
        candidate: Arc<LoadedModel>,
        identity: String,
        stable_version: String,
        policy: RolloutPolicy,
    ) -> Self {
        let phase = if policy.shadow_percent > 0.0 { Phase::Shadow } else { Phase::Canary };
        let shadow = (phase == Phase::Shadow)
            .then(|| {
                shadow::Shadow::start()
                    .inspect_err(|e| tracing::warn!(error = %e, "cannot start a shadow thread; shadow copies are skipped"))
                    .ok()
            })
            .flatten();
        let rollout = Self {
            identity,
            policy,
            stats: ArcSwap::from_pointee(PhaseStats::new(phase)),
            held: AtomicBool::new(false),
            decisions: Mutex::new(Vec::new()),
            started_at: SystemTime::now(),
            shadow,
            calls: Arc::new(RolloutCalls::new(&stable_version, &candidate.version)),
            candidate,
            stable_version,
        };
        let reason = format!(
            "judging version {} against stable version {} (shadow {}%, canary {}%)",
            rollout.candidate.version,
            rollout.stable_version,
            rollout.policy.shadow_percent,
            rollout.policy.canary_percent
        );
        rollout.decide(Action::Start, reason);
        rollout
    }

    /// The current phase's counts; a request records into the one it started with.
    pub fn stats(&self) -> Arc<PhaseStats> {
        self.stats.load_full()
    }

    pub fn phase(&self) -> Phase {
        self.stats.load().phase
    }

    /// The phase after the current one, or `None` when the candidate is to be promoted.
    pub fn next_phase(&self) -> Option<Phase> {
        (self.phase() == Phase::Shadow && self.policy.canary_percent > 0.0).then_some(Phase::Canary)
    }

    /// Moves to `phase` with fresh counts.
    pub fn enter(&self, phase: Phase, evidence: String) {
        self.decide(Action::Advance, evidence);
        self.stats.store(Arc::new(PhaseStats::new(phase)));
        crate::telemetry::metrics::rollout_phase(Some(phase.as_str()));
    }

    /// Which version answers a request with routing `key` (none: a random draw). During
    /// canary the same key always draws the same version, on every pod.
    pub fn route(&self, stats: &PhaseStats, key: Option<&str>) -> Route {
        match stats.phase {
            Phase::Shadow => Route::Stable { shadow: draw(None, "") < self.policy.shadow_percent },
            Phase::Canary if draw(key, &self.candidate.version) < self.policy.canary_percent => {
                Route::Candidate
            }
            Phase::Canary => Route::Stable { shadow: false },
        }
    }

    /// Counts a plugin call on the client path: the candidate's (canary), or the stable
    /// version's it is compared with.
    pub fn record(&self, stats: &PhaseStats, candidate: bool, elapsed: Duration, failed: bool) {
        let tally = if candidate { &stats.candidate } else { &stats.stable };
        tally.record(elapsed, failed);
        self.calls.record(candidate, failed);
    }

    /// Hands a copy of a request's rows to the candidate, off the response path, with
    /// the labels the stable version chose for them; skipped (and counted) when shadow
    /// work is behind.
    pub fn shadow(&self, stats: Arc<PhaseStats>, rows: Vec<Vec<Field>>, expected: Vec<String>) {
        let (candidate, calls) = (Arc::clone(&self.candidate), Arc::clone(&self.calls));
        let job = shadow::ShadowJob { candidate, stats, calls, rows, expected };
        let skipped = match &self.shadow {
            Some(shadow) => shadow.submit(job).err(),
            None => Some(job),
        };
        if let Some(job) = skipped {
            job.stats.shadow_skipped();
            crate::telemetry::metrics::rollout_shadow_skipped();
        }
    }

    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Holds or releases the phase (a decision only if that changes it).
    pub fn hold(&self, held: bool, reason: String) {
        if self.held.swap(held, Ordering::AcqRel) != held {
            self.decide(if held { Action::Pause } else { Action::Resume }, reason);
        }
    }

    /// Records a decision: kept for `/model/info`, logged, counted.
    pub fn decide(&self, action: Action, reason: String) {
        let phase = self.phase();
        tracing::info!(
            candidate = %self.candidate.version, stable = %self.stable_version, action = action.as_str(),
            phase = phase.as_str(), reason = %reason, "rollout decision"
        );
        crate::telemetry::metrics::rollout_decision(action.as_str());
        let mut decisions = self.decisions.lock().expect("decisions lock");
        if decisions.len() == DECISIONS_KEPT {
            // The first decision (the start) stays; the oldest after it goes.
            decisions.remove(1);
        }
        decisions.push(Decision { action, phase, reason, at: SystemTime::now() });
    }

    /// Where the rollout stands, as `/model/info` and `/admin/rollout` show it.
    pub fn status(&self) -> RolloutStatus {
        let decisions = self.decisions.lock().expect("decisions lock").clone();
        let outcome = decisions.last().map(|d| d.action).filter(|a| a.ends());
        RolloutStatus {
            candidate_version: self.candidate.version.clone(),
            stable_version: self.stable_version.clone(),
            phase: self.phase(),
            held: self.is_held(),
            outcome,
            started_at: crate::telemetry::format_time(self.started_at),
            policy: self.policy.clone(),
            figures: self.stats.load().figures(),
            decisions,
        }
    }
}

/// A rollout as the API shows it: in progress, or (with `outcome`) the last one ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RolloutStatus {
    pub candidate_version: String,
    pub stable_version: String,
    /// The phase it is (or was last) in.
    pub phase: Phase,
    /// Whether an operator paused it.
    pub held: bool,
    /// How it ended: `promote`, `roll_back`, `abort` or `supersede`; absent while it runs.
    pub outcome: Option<Action>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    pub policy: RolloutPolicy,
    /// The current (or last) phase's figures.
    pub figures: Figures,
    /// Every decision, oldest first.
    pub decisions: Vec<Decision>,
}

/// A draw in [0, 100): from the key when there is one (the same key, the same draw for
/// the same candidate, on every pod), at random otherwise.
fn draw(key: Option<&str>, salt: &str) -> f64 {
    let Some(key) = key else { return rand::random_range(0.0..100.0) };
    // SipHash with fixed keys: the same draw in every process of this build.
    let mut hasher = DefaultHasher::new();
    salt.hash(&mut hasher);
    key.hash(&mut hasher);
    (hasher.finish() % 1_000_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::draw;

    #[test]
    fn a_key_always_draws_the_same_and_keys_spread_evenly() {
        assert_eq!(draw(Some("caller-7"), "2"), draw(Some("caller-7"), "2"));
        let below_ten = (0..10_000).filter(|i| draw(Some(&format!("caller-{i}")), "2") < 10.0).count();
        assert!((900..1100).contains(&below_ten), "{below_ten} of 10000 keys drew under 10");
    }
}

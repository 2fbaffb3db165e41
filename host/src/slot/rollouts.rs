//! The slot's side of a rollout: holding the candidate, carrying out the judge's and
//! operators' decisions, and remembering refused candidates so that no source offers
//! them again.

use super::{LoadFailureKind, LoadFailureRecord, ServingSlot};
use crate::rollout::judge::{self, Verdict};
use crate::rollout::{Action, Rollout, RolloutStatus};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the judge looks at the figures of a rollout in progress.
const JUDGE_EVERY: Duration = Duration::from_millis(100);

/// A candidate that was rolled back or aborted.
pub(super) struct RolledBack {
    version: String,
    identity: String,
    reason: String,
    /// Whether the source has been told (to reject it in the registry).
    reported: bool,
}

/// Why an operator's rollout command could not be carried out.
#[derive(Debug, thiserror::Error)]
#[error("no rollout is in progress")]
pub struct NoRollout;

impl ServingSlot {
    /// The rollout in progress, if any.
    pub fn rollout(&self) -> Option<Arc<Rollout>> {
        self.rollout.load_full()
    }

    /// The rollout in progress, or else the last one that ended.
    pub fn rollout_status(&self) -> Option<RolloutStatus> {
        match self.rollout.load_full() {
            Some(rollout) => Some(rollout.status()),
            None => self.last_rollout.load_full().as_deref().cloned(),
        }
    }

    /// Starts judging a candidate beside the serving version; a rollout already in
    /// progress is superseded by it.
    pub fn begin_rollout(&self, rollout: Rollout) {
        let _change = self.rollout_change.lock().expect("rollout lock");
        let rollout = Arc::new(rollout);
        rollout.candidate.plugin.set_serving(true);
        crate::telemetry::metrics::rollout_phase(Some(rollout.phase().as_str()));
        if let Some(previous) = self.rollout.swap(Some(Arc::clone(&rollout))) {
            let reason = format!("version {} is judged instead", rollout.candidate.version);
            self.finish(&previous, Action::Supersede, reason);
        }
    }

    /// Ends the rollout in progress because something else now serves.
    pub(super) fn supersede_rollout(&self, reason: &str) {
        if let Some(rollout) = self.rollout() {
            self.end(&rollout, Action::Supersede, reason.to_string());
        }
    }

    /// Judges the rollout in progress once and carries out the verdict.
    pub fn judge_rollout(&self) {
        let Some(rollout) = self.rollout() else { return };
        let stats = rollout.stats();
        let figures = stats.figures();
        crate::telemetry::metrics::rollout_agreement(figures.agreement);
        match judge::judge(&rollout.policy, stats.phase, &figures, rollout.is_held()) {
            None => {}
            Some(Verdict::RollBack(reason)) => self.end(&rollout, Action::RollBack, reason),
            Some(Verdict::Advance(evidence)) => match rollout.next_phase() {
                Some(phase) => rollout.enter(phase, evidence),
                None => self.end(&rollout, Action::Promote, evidence),
            },
        }
    }

    /// Judges rollouts for the life of the process.
    pub async fn judge_rollouts(self: Arc<Self>) {
        let mut every = tokio::time::interval(JUDGE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.judge_rollout();
        }
    }

    /// Drops the candidate without refusing it: its source no longer offers it.
    pub fn withdraw_rollout(&self, reason: String) {
        if let Some(rollout) = self.rollout() {
            self.end(&rollout, Action::Supersede, reason);
        }
    }

    /// Promotes the candidate now, whatever its figures (an operator's command).
    pub fn promote_candidate(&self, reason: String) -> Result<String, NoRollout> {
        let rollout = self.rollout().ok_or(NoRollout)?;
        self.end(&rollout, Action::Promote, reason);
        Ok(rollout.candidate.version.clone())
    }

    /// Drops the candidate and refuses it (an operator's command).
    pub fn abort_rollout(&self, reason: String) -> Result<String, NoRollout> {
        let rollout = self.rollout().ok_or(NoRollout)?;
        self.end(&rollout, Action::Abort, reason);
        Ok(rollout.candidate.version.clone())
    }

    /// Holds (or releases) the rollout in its phase.
    pub fn hold_rollout(&self, held: bool, reason: String) -> Result<Arc<Rollout>, NoRollout> {
        let rollout = self.rollout().ok_or(NoRollout)?;
        rollout.hold(held, reason);
        Ok(rollout)
    }

    /// Why a candidate with this identity was rolled back or aborted, if it was.
    pub fn rollout_refusal(&self, identity: &str) -> Option<String> {
        let rolled_back = self.rolled_back.lock().expect("rolled-back lock");
        rolled_back.iter().find(|r| r.identity == identity).map(|r| r.reason.clone())
    }

    /// Versions rolled back since the last call, for the source to reject in the registry.
    pub fn take_rolled_back(&self) -> Vec<String> {
        let mut rolled_back = self.rolled_back.lock().expect("rolled-back lock");
        rolled_back
            .iter_mut()
            .filter(|r| !r.reported)
            .map(|r| {
                r.reported = true;
                r.version.clone()
            })
            .collect()
    }

    /// Ends `rollout` with `action`, unless another has taken its place meanwhile.
    fn end(&self, rollout: &Arc<Rollout>, action: Action, reason: String) {
        let _change = self.rollout_change.lock().expect("rollout lock");
        let current = self.rollout.load();
        if !current.as_ref().is_some_and(|r| Arc::ptr_eq(r, rollout)) {
            return;
        }
        drop(current);
        self.rollout.store(None);
        self.finish(rollout, action, reason);
    }

    /// Carries out the end of a rollout no longer in the slot.
    fn finish(&self, rollout: &Arc<Rollout>, action: Action, reason: String) {
        rollout.decide(action, reason.clone());
        let candidate = &rollout.candidate;
        match action {
            Action::Promote => {
                tracing::info!(version = %candidate.version, digest = %candidate.digest, replaced = %rollout.stable_version, "model version promoted");
                self.failures.lock().expect("failures lock").remove(&candidate.version);
                self.serve(Arc::clone(candidate));
            }
            Action::RollBack | Action::Abort => {
                candidate.plugin.set_serving(false);
                self.rolled_back.lock().expect("rolled-back lock").push(RolledBack {
                    version: candidate.version.clone(),
                    identity: rollout.identity.clone(),
                    reason: reason.clone(),
                    reported: action == Action::Abort,
                });
                self.record_failure(LoadFailureRecord {
                    version: candidate.version.clone(),
                    kind: LoadFailureKind::Rollout,
                    digest: candidate.digest.clone(),
                    reason,
                    at: SystemTime::now(),
                });
            }
            _ => candidate.plugin.set_serving(false),
        }
        crate::telemetry::metrics::rollout_phase(None);
        self.last_rollout.store(Some(Arc::new(rollout.status())));
    }
}

//! What one phase has seen of the candidate and of the stable version, and the verdict
//! a policy draws from it: roll back on the first threshold broken, move on once the
//! phase has lasted and counted enough.

use super::Phase;
use super::policy::RolloutPolicy;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A candidate's p99 breaks the latency threshold only if it is also this much above
/// the stable version's: sub-millisecond tails are scheduling noise on a busy node.
pub const LATENCY_FLOOR: Duration = Duration::from_millis(1);

/// Plugin calls a version made in a phase: how many, how many failed, how long they took.
pub struct Tally {
    calls: AtomicU64,
    failures: AtomicU64,
    /// Microseconds, 1 µs to 10 min at 3 significant figures.
    latency: Mutex<Histogram<u64>>,
}

impl Tally {
    fn new() -> Self {
        let latency = Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Self { calls: AtomicU64::new(0), failures: AtomicU64::new(0), latency: Mutex::new(latency) }
    }

    /// Counts a call whose duration is not judged (a shadow copy's).
    pub fn count(&self, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record(&self, elapsed: Duration, failed: bool) {
        self.count(failed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency.lock().expect("latency lock").saturating_record(micros);
    }

    fn p99(&self) -> Option<Duration> {
        let latency = self.latency.lock().expect("latency lock");
        (!latency.is_empty()).then(|| Duration::from_micros(latency.value_at_quantile(0.99)))
    }
}

/// What one phase has counted so far.
pub struct PhaseStats {
    pub phase: Phase,
    pub started: Instant,
    pub stable: Tally,
    pub candidate: Tally,
    /// Rows both versions scored (shadow), and those on which they chose the same label.
    compared_rows: AtomicU64,
    agreeing_rows: AtomicU64,
    /// Requests chosen for shadowing but not shadowed, because the shadow queue was full.
    shadow_skipped: AtomicU64,
}

impl PhaseStats {
    pub fn new(phase: Phase) -> Self {
        Self {
            phase,
            started: Instant::now(),
            stable: Tally::new(),
            candidate: Tally::new(),
            compared_rows: AtomicU64::new(0),
            agreeing_rows: AtomicU64::new(0),
            shadow_skipped: AtomicU64::new(0),
        }
    }

    pub fn compared(&self, rows: u64, agreeing: u64) {
        self.compared_rows.fetch_add(rows, Ordering::Relaxed);
        self.agreeing_rows.fetch_add(agreeing, Ordering::Relaxed);
    }

    pub fn shadow_skipped(&self) {
        self.shadow_skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn figures(&self) -> Figures {
        let share = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        let candidate_requests = self.candidate.calls.load(Ordering::Relaxed);
        let candidate_failures = self.candidate.failures.load(Ordering::Relaxed);
        let compared_rows = self.compared_rows.load(Ordering::Relaxed);
        let (stable_p99, candidate_p99) = (self.stable.p99(), self.candidate.p99());
        let millis = |d: Duration| d.as_secs_f64() * 1000.0;
        Figures {
            phase_seconds: self.started.elapsed().as_secs_f64(),
            candidate_requests,
            candidate_failures,
            error_rate: share(candidate_failures, candidate_requests),
            stable_requests: self.stable.calls.load(Ordering::Relaxed),
            compared_rows,
            agreement: share(self.agreeing_rows.load(Ordering::Relaxed), compared_rows),
            stable_p99_ms: stable_p99.map(millis),
            candidate_p99_ms: candidate_p99.map(millis),
            latency_ratio: stable_p99.zip(candidate_p99).map(|(s, c)| c.as_secs_f64() / s.as_secs_f64()),
            shadow_skipped: self.shadow_skipped.load(Ordering::Relaxed),
        }
    }
}

/// A phase's figures, as `/model/info` and `/admin/rollout` show them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// How long the phase has lasted, in seconds.
    pub phase_seconds: f64,
    /// Plugin calls the candidate made in the phase (shadowed or answered).
    pub candidate_requests: u64,
    pub candidate_failures: u64,
    /// `candidate_failures / candidate_requests`, once it has made one.
    pub error_rate: Option<f64>,
    /// Plugin calls the stable version made in the phase beside the candidate's (canary).
    pub stable_requests: u64,
    /// Rows both versions scored (shadow phase).
    pub compared_rows: u64,
    /// Share of compared rows on which the candidate chose the stable version's label.
    pub agreement: Option<f64>,
    /// p99 plugin-call time of each version in the phase, in milliseconds (canary: a
    /// shadow copy runs on idle CPU, so its time says nothing of the candidate's).
    pub stable_p99_ms: Option<f64>,
    pub candidate_p99_ms: Option<f64>,
    /// `candidate_p99_ms / stable_p99_ms`.
    pub latency_ratio: Option<f64>,
    /// Requests chosen for shadowing that were not, because shadow work was behind.
    pub shadow_skipped: u64,
}

/// What a policy makes of a phase's figures.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A threshold broke: the reason.
    RollBack(String),
    /// The phase lasted and counted enough with every threshold held: the evidence.
    Advance(String),
}

/// The verdict on `figures` of a phase under `policy`; `None` while the phase has not
/// counted `min_requests` candidate calls, or (unless a threshold broke) has not lasted
/// `min_duration`, or is `held` by an operator.
pub fn judge(policy: &RolloutPolicy, phase: Phase, figures: &Figures, held: bool) -> Option<Verdict> {
    if figures.candidate_requests < policy.min_requests.max(1) {
        return None;
    }
    let percent = |share: f64| share * 100.0;
    let error_rate = figures.error_rate.unwrap_or(0.0);
    if error_rate > policy.max_error_rate {
        return Some(Verdict::RollBack(format!(
            "{phase} phase: {} of {} candidate calls failed ({:.2}%), above the {:.2}% allowed",
            figures.candidate_failures,
            figures.candidate_requests,
            percent(error_rate),
            percent(policy.max_error_rate)
        )));
    }
    if phase == Phase::Shadow
        && let Some(agreement) = figures.agreement.filter(|a| *a < policy.min_agreement)
    {
        return Some(Verdict::RollBack(format!(
            "shadow phase: the candidate chose the stable version's label on {:.2}% of {} rows, below the {:.2}% required",
            percent(agreement),
            figures.compared_rows,
            percent(policy.min_agreement)
        )));
    }
    if let (Some(stable), Some(candidate), Some(ratio)) =
        (figures.stable_p99_ms, figures.candidate_p99_ms, figures.latency_ratio)
        && ratio > policy.max_latency_ratio
        && candidate - stable > LATENCY_FLOOR.as_secs_f64() * 1000.0
    {
        return Some(Verdict::RollBack(format!(
            "{phase} phase: the candidate's p99 plugin-call time is {candidate:.2} ms, {ratio:.1}x the stable version's {stable:.2} ms, above the {:.1}x allowed",
            policy.max_latency_ratio
        )));
    }
    if held || figures.phase_seconds < policy.min_duration.as_secs_f64() {
        return None;
    }
    let agreement = figures.agreement.map(|a| format!(", {:.2}% agreement", percent(a))).unwrap_or_default();
    let ratio = figures.latency_ratio.map(|r| format!(", p99 {r:.2}x stable")).unwrap_or_default();
    Some(Verdict::Advance(format!(
        "{phase} phase passed: {} candidate calls in {:.0}s, {:.2}% failed{agreement}{ratio}",
        figures.candidate_requests,
        figures.phase_seconds,
        percent(error_rate)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::policy::Strategy;

    fn policy() -> RolloutPolicy {
        RolloutPolicy {
            strategy: Strategy::Phased,
            min_requests: 100,
            min_duration: Duration::ZERO,
            ..RolloutPolicy::DEFAULT
        }
    }

    fn stats(calls: u64, failing_every: u64, candidate: Duration, stable: Duration) -> PhaseStats {
        let stats = PhaseStats::new(Phase::Shadow);
        for i in 0..calls {
            stats.stable.record(stable, false);
            stats.candidate.record(candidate, failing_every > 0 && i % failing_every == 0);
        }
        stats
    }

    #[test]
    fn nothing_is_decided_before_min_requests() {
        let stats = stats(99, 2, Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(judge(&policy(), Phase::Shadow, &stats.figures(), false), None);
    }

    #[test]
    fn each_threshold_rolls_back_with_its_reason() {
        let ms = Duration::from_millis;
        let failing = stats(200, 20, ms(1), ms(1));
        let verdict = judge(&policy(), Phase::Shadow, &failing.figures(), false);
        assert!(
            matches!(&verdict, Some(Verdict::RollBack(r)) if r.contains("10 of 200 candidate calls failed (5.00%)")),
            "{verdict:?}"
        );

        let slow = stats(200, 0, ms(10), ms(2));
        let verdict = judge(&policy(), Phase::Shadow, &slow.figures(), false);
        assert!(
            matches!(&verdict, Some(Verdict::RollBack(r)) if r.contains("5.0x the stable")),
            "{verdict:?}"
        );

        let disagreeing = stats(200, 0, ms(1), ms(1));
        disagreeing.compared(1000, 900);
        let verdict = judge(&policy(), Phase::Shadow, &disagreeing.figures(), true);
        assert!(
            matches!(&verdict, Some(Verdict::RollBack(r)) if r.contains("90.00% of 1000 rows")),
            "{verdict:?}"
        );
    }

    #[test]
    fn slower_by_less_than_the_floor_is_noise() {
        let stats = stats(200, 0, Duration::from_micros(500), Duration::from_micros(50));
        assert!(matches!(
            judge(&policy(), Phase::Canary, &stats.figures(), false),
            Some(Verdict::Advance(_))
        ));
    }

    #[test]
    fn a_held_phase_does_not_advance() {
        let stats = stats(200, 0, Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(judge(&policy(), Phase::Canary, &stats.figures(), true), None);
        let waiting = RolloutPolicy { min_duration: Duration::from_secs(3600), ..policy() };
        assert_eq!(judge(&waiting, Phase::Canary, &stats.figures(), false), None);
    }
}

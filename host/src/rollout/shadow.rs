//! Shadow scoring: copies of live requests scored by the candidate after the client has
//! its answer, on a thread of the rollout's own held to a share of one core
//! ([`CPU_SHARE`]). Requests hand work over through a bounded queue and never wait on it:
//! when the queue is full (the candidate is behind its budget), the copy is skipped and
//! counted.
//!
//! Why a budget rather than a low CPU priority: a thread that waits for idle CPU can be
//! preempted while it holds a lock serving needs (the pooling allocator's, the kernel's
//! memory-map lock when an instance is made or dropped), and then every request waits
//! for it: measured here, p99 grew 50 to 400 times under load. At normal priority, in
//! short bursts, a shadow copy delays a request by one copy's time at most.
//!
//! The thread shares no lock of its own with the request path: it calls only the
//! candidate (whose instances nothing else uses in this phase), compares with the labels
//! the client got, and counts in atomics. Its calls' durations are not judged (they wait
//! on the budget); latency is judged in the canary.

use super::judge::PhaseStats;
use crate::model::LoadedModel;
use crate::runtime::Field;
use crate::telemetry::metrics::RolloutCalls;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Copies waiting for the shadow thread, and rows in them; more are skipped. Deep enough
/// to ride out a burst (the thread catches up once serving leaves it CPU), bounded so
/// that a lagging candidate costs little memory: about 6 MiB of rows at most.
const QUEUE: usize = 1024;
const QUEUED_ROWS: usize = 16 * 1024;

/// The share of one core shadow work may use, averaged over its bursts.
pub const CPU_SHARE: f64 = 0.15;
/// The thread sleeps off its CPU debt once it reaches this much: short bursts, few
/// wake-ups.
const BURST: Duration = Duration::from_millis(1);

/// One request's rows for the candidate, and the labels the stable version chose.
pub struct ShadowJob {
    pub candidate: Arc<LoadedModel>,
    pub stats: Arc<PhaseStats>,
    pub calls: Arc<RolloutCalls>,
    pub rows: Vec<Vec<Field>>,
    pub expected: Vec<String>,
}

/// A rollout's shadow thread; it finishes what is queued and ends when this is dropped.
pub struct Shadow {
    jobs: SyncSender<ShadowJob>,
    /// Rows queued now.
    rows_queued: Arc<AtomicUsize>,
}

impl Shadow {
    /// Starts the thread, with a tokio runtime of its own for the plugin calls.
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel::<ShadowJob>(QUEUE);
        let rows_queued = Arc::new(AtomicUsize::new(0));
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let queued = Arc::clone(&rows_queued);
        std::thread::Builder::new().name("rollout-shadow".into()).spawn(move || {
            let mut debt = Duration::ZERO;
            while let Ok(job) = queue.recv() {
                let rows = job.rows.len();
                let cpu = thread_cpu_time();
                tokio.block_on(run(job));
                queued.fetch_sub(rows, Ordering::AcqRel);
                // Each unit of CPU used is paid for with idle time, so that the thread
                // averages CPU_SHARE of a core however busy its queue is.
                debt += thread_cpu_time().saturating_sub(cpu).mul_f64((1.0 - CPU_SHARE) / CPU_SHARE);
                if debt >= BURST {
                    std::thread::sleep(debt);
                    debt = Duration::ZERO;
                }
            }
        })?;
        Ok(Self { jobs, rows_queued })
    }

    /// Queues `job`, or hands it back when it is skipped (the queue is full).
    pub fn submit(&self, job: ShadowJob) -> Result<(), ShadowJob> {
        let rows = job.rows.len();
        if self.rows_queued.fetch_add(rows, Ordering::AcqRel) + rows > QUEUED_ROWS {
            self.rows_queued.fetch_sub(rows, Ordering::AcqRel);
            return Err(job);
        }
        self.jobs.try_send(job).map_err(|e| {
            self.rows_queued.fetch_sub(rows, Ordering::AcqRel);
            match e {
                TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
            }
        })
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

async fn run(job: ShadowJob) {
    let ShadowJob { candidate, stats, calls, rows, expected } = job;
    match candidate.predict(&rows).await {
        Ok(predictions) => {
            stats.candidate.count(false);
            calls.record(true, false);
            let agreeing = expected.iter().zip(&predictions).filter(|(e, p)| **e == p.label).count();
            stats.compared(rows.len() as u64, agreeing as u64);
        }
        Err(_) => {
            // Rows the stable version scored: whatever failed, the candidate is at fault.
            stats.candidate.count(true);
            calls.record(true, true);
        }
    }
}

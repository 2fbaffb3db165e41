//! Recompiles swapped-in versions with Cranelift. A swap compiles with Winch, quickly
//! and at low priority, so requests keep the cores (see `runtime::Compiler`); once the
//! version has served a while (`TIER_UP_AFTER`), this stage compiles the same bytes
//! again with Cranelift on idle CPU only, checks that the new code scores the plugin's
//! sample exactly as the old did, and moves the version onto it. Requests never wait
//! for it: calls already running finish on the code they started with, and until the
//! new code is ready the version serves Winch's.
//!
//! The wait keeps the recompile away from the swap itself, and skips versions that by
//! then neither serve nor are the version a rollback would restore (in a burst of
//! publishes, all but the last two): a Cranelift compile costs requests about what a
//! whole swap with Cranelift would (BENCHMARKS.md).

use crate::model::LoadedModel;
use crate::model::same_answer;
use crate::runtime::{Compiler, Runtime, priority};
use crate::slot::ServingSlot;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Instant;

/// A version to recompile, with its (already verified) bytes, not before `due`.
struct Job {
    model: Arc<LoadedModel>,
    bytes: Vec<u8>,
    sha256: String,
    due: Instant,
}

/// The handle to the recompiling thread; it ends when this is dropped.
pub struct TierUp {
    jobs: Sender<Job>,
}

impl TierUp {
    /// Starts the thread, inside the current tokio runtime (it runs the sample checks).
    pub fn start(runtime: Arc<Runtime>, slot: Arc<ServingSlot>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let tokio = tokio::runtime::Handle::current();
        std::thread::Builder::new().name("model-tier-up".into()).spawn(move || {
            priority::idle_this_thread();
            let _inside = tokio.enter();
            run(&runtime, &slot, &tokio, &queue);
        })?;
        Ok(Self { jobs })
    }

    /// Queues `model` (compiled by Winch from `bytes`) for Cranelift at `due`.
    pub fn request(&self, model: Arc<LoadedModel>, bytes: Vec<u8>, sha256: String, due: Instant) {
        // The thread only ends when this handle is dropped.
        let _ = self.jobs.send(Job { model, bytes, sha256, due });
    }
}

fn run(runtime: &Arc<Runtime>, slot: &ServingSlot, tokio: &tokio::runtime::Handle, queue: &Receiver<Job>) {
    let pool = priority::idle_compile_pool()
        .inspect_err(
            |e| tracing::warn!(error = %e, "no idle compile pool: recompiling at background priority"),
        )
        .ok();
    while let Ok(job) = queue.recv() {
        // Jobs come in the order of their swaps, so in the order they are due.
        std::thread::sleep(job.due.saturating_duration_since(Instant::now()));
        // A version swapped out meanwhile (and no longer the one a rollback restores)
        // will not serve again: skip it.
        let live =
            [slot.current(), slot.previous()].into_iter().flatten().any(|m| Arc::ptr_eq(&m, &job.model));
        if !live {
            continue;
        }
        let started = Instant::now();
        let model = &job.model;
        let compile = || runtime.prepare(&job.bytes, &job.sha256, &model.version, Compiler::Cranelift);
        let prepared = match &pool {
            Some(pool) => pool.install(compile),
            None => compile(),
        };
        let checked = prepared.map_err(|e| e.to_string()).and_then(|plugin| {
            let sample = std::slice::from_ref(&model.info.sample);
            let before = tokio.block_on(model.plugin.predict_rows(sample));
            let after = tokio.block_on(plugin.predict_rows(sample));
            match (before, after) {
                (Ok(Ok(a)), Ok(Ok(b)))
                    if a.len() == b.len() && a.iter().zip(&b).all(|(a, b)| same_answer(a, b)) =>
                {
                    Ok(plugin)
                }
                (before, after) => Err(format!("the sample scored {before:?} before and {after:?} after")),
            }
        });
        match checked {
            Ok(plugin) => {
                model.plugin.adopt(plugin);
                tracing::info!(
                    version = %model.version,
                    compiler = Compiler::Cranelift.name(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "model version recompiled"
                );
            }
            Err(reason) => tracing::warn!(
                version = %model.version,
                reason,
                "recompiling with Cranelift failed; the version keeps serving Winch's code"
            ),
        }
    }
}

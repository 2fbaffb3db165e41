//! A compiled plugin and its calls: an idle instance that returned cleanly from an
//! earlier call, or a fresh one, with the call's deadline set; the outcome classified as
//! the plugin's failure, never the caller's.

use super::bindings::{Exports, ExportsPre};
use super::columns::batch_from_rows;
use super::compiler::Compiler;
use super::sandbox::PluginState;
use super::warm::{Instance, WarmInstances};
use super::{
    BatchScores, COLUMNS_FROM_ROWS, CallError, Field, FieldSpec, ModelInfo, PluginText, PredictError,
    Prediction, Runtime, SandboxLimits,
};
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, UpdateDeadline};

/// A compiled, pre-instantiated plugin. A call runs in an idle instance that returned
/// cleanly from an earlier call, or in a fresh one; an instance whose call trapped,
/// timed out or hit its memory cap is never used again. Its code may be replaced by
/// code of the same bytes from another compiler ([`Plugin::adopt`]).
pub struct Plugin {
    pub(super) runtime: Arc<Runtime>,
    pub(super) label: Arc<str>,
    pub(super) code: ArcSwap<Code>,
    /// Whether the plugin serves (its code keeps idle instances); held while `code` is
    /// replaced, so new code starts in the same state.
    pub(super) serving: Mutex<bool>,
}

/// One compilation of a plugin: its pre-instance (for its compiler's engine) and idle
/// instances. A call keeps the code it started with to its end.
pub(super) struct Code {
    pub(super) compiler: Compiler,
    pub(super) pre: ExportsPre,
    pub(super) warm: WarmInstances,
}

impl Plugin {
    pub async fn info(&self) -> Result<ModelInfo, CallError> {
        let code = self.code.load_full();
        let mut instance = self.checkout(&code).await?;
        let result = instance.exports.call_info(&mut instance.store).await;
        self.checkin(&code, instance, result)
    }

    /// Scores `rows` with `predict-columns` if the plugin exports it and there are at
    /// least [`COLUMNS_FROM_ROWS`] rows (`inputs`, from its `info`, give the column
    /// order), with `predict` otherwise. The outer error is the plugin's failure; the
    /// inner one its answer.
    pub async fn predict(
        &self,
        rows: &[Vec<Field>],
        inputs: &[FieldSpec],
    ) -> Result<Result<Answer, PredictError>, CallError> {
        let code = self.code.load_full();
        let mut instance = self.checkout(&code).await?;
        let store = &mut instance.store;
        let result = match &instance.exports {
            Exports::Columns(exports) if rows.len() >= COLUMNS_FROM_ROWS => {
                let batch = batch_from_rows(rows, inputs);
                exports.call_predict_columns(store, &batch).await.map(|answer| answer.map(Answer::Scores))
            }
            exports => exports.call_predict(store, rows).await.map(|answer| answer.map(Answer::Predictions)),
        };
        self.checkin(&code, instance, result)
    }

    /// Scores `rows` with the plugin's `predict` export, whatever else it exports.
    pub async fn predict_rows(
        &self,
        rows: &[Vec<Field>],
    ) -> Result<Result<Vec<Prediction>, PredictError>, CallError> {
        let code = self.code.load_full();
        let mut instance = self.checkout(&code).await?;
        let result = instance.exports.call_predict(&mut instance.store, rows).await;
        self.checkin(&code, instance, result)
    }

    /// The world the plugin is bound to.
    pub fn world(&self) -> &'static str {
        self.code.load().pre.world()
    }

    /// The compiler of the code calls run now.
    pub fn compiler(&self) -> Compiler {
        self.code.load().compiler
    }

    /// Keeps idle instances for reuse while `serving`; otherwise drops them, so a
    /// version that no longer serves holds no pool slots.
    pub fn set_serving(&self, serving: bool) {
        let mut state = self.serving.lock().expect("serving lock");
        *state = serving;
        self.code.load().warm.keep(serving);
    }

    /// Runs later calls on `other`'s code (the same plugin, compiled again): calls
    /// already running finish on the code they started with, whose idle instances are
    /// dropped.
    pub fn adopt(&self, other: Plugin) {
        let state = self.serving.lock().expect("serving lock");
        let code = other.code.load_full();
        code.warm.keep(*state);
        self.code.swap(code).warm.keep(false);
    }

    /// An instance with the call's deadline set: an idle one, or a fresh one.
    async fn checkout(&self, code: &Code) -> Result<Instance, CallError> {
        match code.warm.take() {
            Some(mut instance) => {
                start_call(&mut instance.store, self.runtime.limits.call_timeout);
                Ok(instance)
            }
            None => self.instantiate(code).await,
        }
    }

    /// Ends a call: logs what the plugin printed, keeps the instance if it may serve
    /// again, and turns a failure into its [`CallError`].
    fn checkin<R>(
        &self,
        code: &Code,
        mut instance: Instance,
        result: wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let result = result.map_err(|e| classify(e, &instance.store, self.runtime.limits));
        instance.calls += 1;
        self.log_output(instance.store.data());
        code.warm.give_back(instance, result.is_ok());
        result
    }

    /// A fresh instance in a new store. Instantiation runs plugin code too, so it can
    /// run out of memory or time as well.
    async fn instantiate(&self, code: &Code) -> Result<Instance, CallError> {
        let limits = self.runtime.limits;
        let state = PluginState::new(limits.memory_limit, limits.output_limit);
        let mut store = Store::new(code.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        // At every epoch tick: past the deadline, trap; otherwise let other requests
        // run on this thread, then carry on. tokio's `yield_now` (not a bare re-wake)
        // sends the task to the back of the queue and lets the worker poll for I/O
        // first, so a slow plugin delays other requests by one tick, not by a queue.
        store.epoch_deadline_callback(|store| {
            Ok(if Instant::now() >= store.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        start_call(&mut store, limits.call_timeout);
        match code.pre.instantiate_async(&mut store).await {
            Ok(exports) => Ok(Instance { store, exports, calls: 0 }),
            Err(e) => {
                self.log_output(store.data());
                Err(match classify(e, &store, limits) {
                    CallError::Trap(message) => CallError::Instantiate(message),
                    other => other,
                })
            }
        }
    }

    /// Forwards what the plugin printed during the call to the host log, tagged with
    /// its version.
    fn log_output(&self, state: &PluginState) {
        for (stream, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
            let (kept, dropped) = pipe.take();
            if !kept.is_empty() || dropped > 0 {
                let text = String::from_utf8_lossy(&kept);
                let output = text.trim_end();
                tracing::warn!(plugin = %self.label, stream, output, dropped_bytes = dropped, "plugin output");
            }
        }
    }
}

/// A plugin's answer to a batch, in the layout of the export that gave it.
pub enum Answer {
    /// From `predict`: one prediction per row.
    Predictions(Vec<Prediction>),
    /// From `predict-columns`: see [`predictions_from_scores`].
    Scores(BatchScores),
}

/// Gives the next call on `store` its full budget from now; the epoch callback checks
/// it at every tick.
fn start_call(store: &mut Store<PluginState>, timeout: Duration) {
    store.data_mut().deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
}

fn classify(error: wasmtime::Error, store: &Store<PluginState>, limits: SandboxLimits) -> CallError {
    if store.data().memory.exceeded {
        return CallError::MemoryLimit(limits.memory_limit);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout(limits.call_timeout),
        Some(trap) => CallError::Trap(PluginText::new(trap.to_string())),
        None => CallError::Trap(PluginText::new(format!("{error:#}"))),
    }
}

//! The WebAssembly runtime: an `Engine` per compiler for the process (see `compiler`),
//! components compiled and pre-instantiated once per version, instances in pooled slots
//! with a memory cap and an epoch deadline per call, reused only after a clean return
//! (see `warm`). Knows nothing of HTTP, sources or registries.

mod bindings;
mod columns;
mod compiled;
mod compiler;
mod epoch;
mod output;
mod plugin_text;
pub mod preinit;
pub mod priority;
mod sandbox;
mod warm;

pub use bindings::{
    BATCH_WORLD, BatchScores, ClassScore, Field, FieldSpec, FieldType, ModelInfo, PredictError, Prediction,
    Value, WORLD,
};
pub use columns::predictions_from_scores;
pub use compiler::Compiler;
pub use plugin_text::{PLUGIN_TEXT_LIMIT, PluginText};

use arc_swap::ArcSwap;
use bindings::{Exports, ExportsPre};
use columns::batch_from_rows;
use compiled::CompiledCache;
use compiler::Tier;
use epoch::EpochTicker;
use sandbox::PluginState;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warm::{Instance, WarmInstances};
use wasmtime::component::Component;
use wasmtime::{PoolingAllocationConfig, Store, Trap, UpdateDeadline};

/// How often the epoch advances: the granularity of call deadlines, and the longest
/// a call runs before it yields its thread to other requests.
const EPOCH_PERIOD: Duration = Duration::from_millis(2);
/// Fiber stack bytes kept mapped between calls: host frames plus the plugin's stack
/// in an ordinary call, so reusing a stack takes no page faults.
const STACK_KEEP_RESIDENT: usize = 256 << 10;
/// Instance slots kept beyond the concurrent-call bound, for loads and self-tests.
const LOADER_SLOTS: u32 = 4;
/// Memories and tables a plugin component may define (a Rust plugin uses one of each).
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;
/// Bytes of each memory and table kept mapped between calls (see `Runtime::new`).
const KEEP_RESIDENT: usize = 2 << 20;
/// The smallest batch sent by column to a plugin that can take one. A single row costs
/// less by row (3.4 vs 4.4 µs for the bundled plugin); two rows already cost less by
/// column (5.0 vs 5.7 µs), and 1024 rows a quarter (0.65 vs 2.46 ms).
const COLUMNS_FROM_ROWS: usize = 2;
/// Core module instances a plugin component may create.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Per-call limits applied to every plugin.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// Wall-clock budget of one call; past it the call traps and reports [`CallError::Timeout`].
    pub call_timeout: Duration,
    /// Largest size of any one linear memory of an instance.
    pub memory_limit: usize,
    /// Calls that may run at once (sizes the instance pool).
    pub max_concurrent_calls: u32,
    /// Bytes of stdout and of stderr kept from one call for the log.
    pub output_limit: usize,
    /// Calls one instance may serve before it is replaced; 1 gives every call a fresh
    /// instance, so nothing a call leaves in the plugin's memory is seen by the next.
    pub calls_per_instance: u32,
}

/// Where instances get their memories and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Preallocated slots reused call after call (what the host serves with).
    Pooling,
    /// A fresh mapping per instance (kept for comparison in the benchmarks).
    OnDemand,
}

/// Why a component could not become a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("imports {0}, which the sandbox does not provide")]
    DisallowedImports(String),
    #[error("does not implement the {WORLD} world: {0}")]
    WrongWorld(String),
}

/// Why one call into a plugin failed: always the plugin's fault, never the caller's.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("exceeded its deadline of {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory limit of {} MiB", .0 / (1024 * 1024))]
    MemoryLimit(usize),
    #[error("trapped: {0}")]
    Trap(PluginText),
    #[error("could not be instantiated: {0}")]
    Instantiate(PluginText),
}

/// The process-wide engines and linkers.
pub struct Runtime {
    /// Cranelift: first loads, and every version in the end.
    optimizing: Tier,
    /// Winch, for swaps; `None` where it cannot run, and then Cranelift does everything.
    baseline: Option<Tier>,
    limits: SandboxLimits,
    compiled: Option<CompiledCache>,
    /// Idle instances each serving plugin may keep.
    warm_capacity: usize,
    _ticker: EpochTicker,
}

impl Runtime {
    /// With `compiled_cache`, compiled plugins are kept in (and reused from) that directory.
    pub fn new(limits: SandboxLimits, compiled_cache: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        Self::with_allocation(limits, compiled_cache, Allocation::Pooling)
    }

    pub fn with_allocation(
        limits: SandboxLimits,
        compiled_cache: Option<PathBuf>,
        allocation: Allocation,
    ) -> anyhow::Result<Arc<Self>> {
        // Before the first compile, so wasmtime's compile threads start at low priority.
        priority::compile_in_background();
        // More idle instances than cores would rarely be used at once: calls run on
        // the cores, and a miss only costs one instantiation.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let warm_capacity = (2 * cores).min(limits.max_concurrent_calls as usize);
        // Slots for every call that may run, the serving version's idle instances, and
        // loads; idle instances of a version that stops serving are dropped at once.
        let instances = limits.max_concurrent_calls + warm_capacity as u32 + LOADER_SLOTS;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(instances * MEMORIES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_tables(instances * TABLES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_memory_size(limits.memory_limit)
            // Reset the first pages of a slot with memset rather than madvise, so the next
            // call finds its stack and the plugin's static data resident instead of taking
            // page faults to map them in again (~40% more /predict throughput, measured).
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .total_stacks(instances)
            .async_stack_keep_resident(STACK_KEEP_RESIDENT);

        // Each engine has a pool of this size: a version compiled by either may serve
        // every call.
        let pool = (allocation == Allocation::Pooling).then_some(pool);
        let optimizing = Tier::new(Compiler::Cranelift, pool.clone())?;
        let baseline = Tier::new(Compiler::Winch, pool)
            .inspect_err(|e| tracing::warn!(error = %e, "Winch unavailable: swaps compile with Cranelift"))
            .ok();
        let engines = [Some(&optimizing), baseline.as_ref()].into_iter().flatten();
        let ticker = EpochTicker::start(engines.map(|t| t.engine.clone()).collect(), EPOCH_PERIOD)?;
        let compiled = compiled_cache.map(|dir| CompiledCache::new(dir, &optimizing.engine));
        Ok(Arc::new(Self { optimizing, baseline, limits, compiled, warm_capacity, _ticker: ticker }))
    }

    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// Compiles `bytes` (whose sha256 is `sha256`, in hex) with `compiler`, or takes
    /// Cranelift's code from the cache, and checks its imports and exports against the
    /// predictor world (or the batch-predictor world, if it exports `predict-columns`).
    /// `label` tags the plugin's log output.
    pub fn prepare(
        self: &Arc<Self>,
        bytes: &[u8],
        sha256: &str,
        label: &str,
        compiler: Compiler,
    ) -> Result<Plugin, LoadError> {
        let (compiler, component) =
            match self.compiled.as_ref().and_then(|c| c.load(&self.optimizing.engine, sha256)) {
                Some(component) => (Compiler::Cranelift, component),
                None => self.compile(bytes, sha256, compiler)?,
            };
        let tier = match compiler {
            Compiler::Winch => self.baseline.as_ref().expect("Winch code comes from the baseline engine"),
            Compiler::Cranelift => &self.optimizing,
        };
        let disallowed: Vec<String> = component
            .component_type()
            .imports(&tier.engine)
            .map(|(name, _)| name)
            .filter(|name| !sandbox::is_allowed(name))
            .map(|name| format!("`{name}`"))
            .collect();
        if !disallowed.is_empty() {
            return Err(LoadError::DisallowedImports(disallowed.join(", ")));
        }
        let pre = tier
            .linker
            .instantiate_pre(&component)
            .and_then(ExportsPre::new)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let warm = WarmInstances::new(self.warm_capacity, self.limits.calls_per_instance.max(1));
        let code = Code { compiler, pre, warm };
        Ok(Plugin {
            runtime: Arc::clone(self),
            label: label.into(),
            code: ArcSwap::from_pointee(code),
            serving: Mutex::new(false),
        })
    }

    /// Compiles `bytes` with `compiler`, falling back to Cranelift where Winch is
    /// unavailable or declines (it does not implement every proposal Cranelift does);
    /// Cranelift's verdict on the bytes is final. Only Cranelift's code is cached.
    fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
        compiler: Compiler,
    ) -> Result<(Compiler, Component), LoadError> {
        if let (Compiler::Winch, Some(baseline)) = (compiler, &self.baseline) {
            match Component::new(&baseline.engine, bytes) {
                Ok(component) => return Ok((Compiler::Winch, component)),
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "Winch declined; compiling with Cranelift")
                }
            }
        }
        let component = Component::new(&self.optimizing.engine, bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
        if let Some(cache) = &self.compiled {
            cache.store(&component, sha256);
        }
        Ok((Compiler::Cranelift, component))
    }
}

/// A compiled, pre-instantiated plugin. A call runs in an idle instance that returned
/// cleanly from an earlier call, or in a fresh one; an instance whose call trapped,
/// timed out or hit its memory cap is never used again. Its code may be replaced by
/// code of the same bytes from another compiler ([`Plugin::adopt`]).
pub struct Plugin {
    runtime: Arc<Runtime>,
    label: Arc<str>,
    code: ArcSwap<Code>,
    /// Whether the plugin serves (its code keeps idle instances); held while `code` is
    /// replaced, so new code starts in the same state.
    serving: Mutex<bool>,
}

/// One compilation of a plugin: its pre-instance (for its compiler's engine) and idle
/// instances. A call keeps the code it started with to its end.
struct Code {
    compiler: Compiler,
    pre: ExportsPre,
    warm: WarmInstances,
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

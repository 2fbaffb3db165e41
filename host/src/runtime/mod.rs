//! The WebAssembly runtime: an `Engine` per compiler for the process (see `compiler`),
//! components compiled, checked against the contract and pre-instantiated once per
//! version (here), and the calls into them (`plugin`): instances in pooled slots with a
//! memory cap and an epoch deadline per call, reused only after a clean return (see
//! `warm`). Knows nothing of HTTP, sources or registries.

mod bindings;
mod columns;
mod compiled;
mod compiler;
mod epoch;
mod output;
mod plugin;
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
pub use plugin::{Answer, Plugin};
pub use plugin_text::{PLUGIN_TEXT_LIMIT, PluginText};

use arc_swap::ArcSwap;
use bindings::ExportsPre;
use compiled::CompiledCache;
use compiler::Tier;
use epoch::EpochTicker;
use plugin::Code;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warm::WarmInstances;
use wasmtime::PoolingAllocationConfig;
use wasmtime::component::Component;

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

impl SandboxLimits {
    /// `serve`'s defaults (its flags' default values are read from here).
    pub const DEFAULT: Self = Self {
        call_timeout: Duration::from_millis(100),
        memory_limit: 64 << 20,
        max_concurrent_calls: 64,
        output_limit: 16 << 10,
        calls_per_instance: 1000,
    };

    pub const fn with_call_timeout(self, call_timeout: Duration) -> Self {
        Self { call_timeout, ..self }
    }

    pub const fn with_concurrent_calls(self, max_concurrent_calls: u32) -> Self {
        Self { max_concurrent_calls, ..self }
    }

    pub const fn with_calls_per_instance(self, calls_per_instance: u32) -> Self {
        Self { calls_per_instance, ..self }
    }
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

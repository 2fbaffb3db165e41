//! The two compilers a plugin's code may come from, each with an engine of its own.
//!
//! Cranelift optimises; Winch, a baseline compiler, translates each instruction as it
//! comes. On the bundled plugin Winch compiles with a fifth of Cranelift's CPU (25 vs
//! 120 ms) and its code is about a quarter slower (4.4 vs 3.5 µs per one-row call). A
//! swap compiles with Winch, so the version being replaced keeps the cores while the
//! new one is prepared; the new version is then compiled again with Cranelift at idle
//! priority (`tier_up`). A first load, with nothing serving yet, uses Cranelift.

use super::sandbox::{self, PluginState};
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

/// The compiler that produced a plugin's machine code (also the `SWAP_COMPILER` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compiler {
    /// Optimised code: what every version serves with in the end.
    Cranelift,
    /// Baseline code, quick to produce: what a swapped-in version serves with until
    /// its Cranelift code is ready.
    Winch,
}

impl Compiler {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cranelift => "cranelift",
            Self::Winch => "winch",
        }
    }
}

/// An engine (with its own instance pool, when pooling) and the linker for it.
pub struct Tier {
    pub engine: Engine,
    pub linker: Linker<PluginState>,
}

impl Tier {
    /// `pool` is `None` for on-demand allocation.
    pub fn new(compiler: Compiler, pool: Option<PoolingAllocationConfig>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        config.strategy(match compiler {
            Compiler::Cranelift => Strategy::Cranelift,
            Compiler::Winch => Strategy::Winch,
        });
        if let Some(pool) = pool {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        sandbox::add_allowed_wasi(&mut linker)?;
        Ok(Self { engine, linker })
    }
}

//! What a plugin may touch: per-call store state, the WASI allowlist, and the memory cap.
//!
//! A Rust `std` plugin imports `wasi:cli/*` and `wasi:io/*` as soon as it can panic
//! (the panic path reads the environment and writes to stderr), and `wasi:random` when
//! it hashes. Those are linked in a harmless form: no environment or arguments, empty
//! stdin, stdout/stderr captured into memory up to a cap (the rest dropped), `exit` a trap. Clocks,
//! filesystem, sockets and HTTP are not linked at all, so a plugin importing them
//! fails to load, with the import named.

use super::output::CappedOutput;
use std::time::Instant;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::p2::bindings::{cli, random};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_io::bindings::wasi::io as wasi_io;

/// Interfaces (without version) a plugin may import. Everything else is refused at load.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "mlops:predictor/types",
    "mlops:predictor/columns",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Whether `import` (e.g. `wasi:io/streams@0.2.6`) names an allowed interface.
pub fn is_allowed(import: &str) -> bool {
    let unversioned = import.split_once('@').map_or(import, |(name, _)| name);
    ALLOWED_IMPORTS.contains(&unversioned)
}

/// The most bytes one `wasi:random` call may ask for; a larger ask traps. The host fills
/// them in its own memory, outside the plugin's cap, before copying them in (wasmtime's
/// default allows 64 MiB per call). Hashers and seeds ask for 8 to 32.
const RANDOM_BYTES_LIMIT: u64 = 64 * 1024;

/// Everything one plugin instance owns; dropped with its store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub memory: MemoryCap,
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
    /// When the running call must stop (checked at every epoch tick).
    pub deadline: Instant,
}

impl PluginState {
    pub fn new(memory_limit: usize, output_limit: usize) -> Self {
        let stdout = CappedOutput::new(output_limit);
        let stderr = CappedOutput::new(output_limit);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .max_random_size(RANDOM_BYTES_LIMIT)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap { limit: memory_limit, exceeded: false, grown: 0 },
            stdout,
            stderr,
            deadline: Instant::now(),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps each linear memory of a plugin instance and remembers that the cap was hit,
/// so the resulting trap is reported as a memory limit rather than a crash.
pub struct MemoryCap {
    pub limit: usize,
    pub exceeded: bool,
    /// Bytes the instance's memories grew by after they were created: what its calls
    /// added to the size it starts with (a packaged model starts with its model loaded).
    pub grown: usize,
}

/// Tables hold function references; this bounds the host memory they can take.
const TABLE_ELEMENTS_LIMIT: usize = 100_000;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        // Creating a memory asks for its initial size from zero: that is not growth.
        if current > 0 {
            self.grown += desired - current;
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_LIMIT)
    }
}

struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links exactly the [`ALLOWED_IMPORTS`] WASI interfaces, backed by [`PluginState`].
pub fn add_allowed_wasi(linker: &mut Linker<PluginState>) -> Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::random::WasiRandom;
    let l = linker;
    wasi_io::error::add_to_linker::<_, Io>(l, |s| &mut s.table)?;
    wasi_io::poll::add_to_linker::<_, Io>(l, |s| &mut s.table)?;
    wasi_io::streams::add_to_linker::<_, Io>(l, |s| &mut s.table)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    random::random::add_to_linker::<_, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |s| s.wasi.random())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_created_large_has_not_grown_and_the_cap_holds() {
        let mut cap = MemoryCap { limit: 64 << 20, exceeded: false, grown: 0 };
        // Creation: a packaged model's snapshot starts at 26 MB.
        assert!(cap.memory_growing(0, 26 << 20, None).unwrap());
        assert_eq!(cap.grown, 0);
        assert!(cap.memory_growing(26 << 20, 27 << 20, None).unwrap());
        assert_eq!(cap.grown, 1 << 20);
        assert!(!cap.memory_growing(27 << 20, 65 << 20, None).unwrap());
        assert!(cap.exceeded);
    }
}

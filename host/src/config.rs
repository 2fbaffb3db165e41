//! Command line and environment: one struct per subcommand is its whole configuration,
//! and every flag can be set by environment variable (as Kubernetes does).

use clap::{Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "predict-host", version, about = "Serves predictions from WebAssembly component plugins.")]
pub struct Cli {
    /// Log format: `auto` is text on a terminal and JSON lines otherwise.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve predictions over HTTP.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Directory of plugin versions (`<name>-<version>.wasm`), watched for changes.
    #[arg(long, env = "PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,

    /// Serve the plugin bundled into this binary when no other version is available.
    #[arg(long, env = "BUNDLED_PLUGIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub bundled_plugin: bool,

    /// Seconds between full rescans of the plugin directory (changes are also watched).
    #[arg(long, env = "PLUGIN_DIR_RESCAN_SECS", default_value_t = 30)]
    pub plugin_dir_rescan_secs: u64,

    /// Wall-clock budget of one plugin call in milliseconds; past it the request gets 504.
    #[arg(long, env = "CALL_TIMEOUT_MS", default_value_t = 100)]
    pub call_timeout_ms: u64,

    /// Largest linear memory of one plugin instance, in MiB.
    #[arg(long, env = "PLUGIN_MEMORY_LIMIT_MIB", default_value_t = 64)]
    pub plugin_memory_limit_mib: usize,

    /// Bytes of plugin stdout/stderr kept per call for the log.
    #[arg(long, env = "PLUGIN_OUTPUT_LIMIT_BYTES", default_value_t = 16 * 1024)]
    pub plugin_output_limit_bytes: usize,

    /// Plugin calls that may run at once; more get 503 with Retry-After.
    #[arg(long, env = "MAX_CONCURRENT_CALLS", default_value_t = 64)]
    pub max_concurrent_calls: u32,

    /// Largest request body in bytes; larger gets 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most rows in one batch request.
    #[arg(long, env = "MAX_BATCH_ROWS", default_value_t = 4096)]
    pub max_batch_rows: usize,

    /// On SIGTERM, seconds to keep accepting requests while reporting not ready, so load
    /// balancers stop sending traffic before the listener closes.
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    pub shutdown_delay_secs: u64,

    /// On SIGTERM, seconds to let in-flight requests finish once the listener is closed.
    #[arg(long, env = "DRAIN_TIMEOUT_SECS", default_value_t = 20)]
    pub drain_timeout_secs: u64,
}

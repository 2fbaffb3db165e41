//! Command line and environment: one struct per subcommand is its whole configuration,
//! and every flag can be set by environment variable (as Kubernetes does).

use crate::artifact::signature::PluginKey;
use crate::aws::AwsArgs;
use crate::runtime::{Compiler, SandboxLimits};
use crate::telemetry::LogFormat;
use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "predict-host", version, about = "Serves predictions from WebAssembly component plugins.")]
pub struct Cli {
    /// Log format: `auto` is text on a terminal and JSON lines otherwise.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve predictions over HTTP.
    Serve(ServeArgs),
    /// Start a plugin crate bound to this host's contract, with a small model to replace.
    NewPlugin(NewPluginArgs),
    /// Package an ONNX classifier (scikit-learn, LightGBM, XGBoost exports) as a plugin.
    Package(PackageArgs),
    /// Upload a plugin (or an ONNX model, packaged on the way) and register it as a new
    /// version in the model registry.
    Publish(PublishArgs),
    /// List, approve or reject versions in the model registry.
    Models(ModelsArgs),
    /// Create an ed25519 key pair for signing plugins; prints the public key.
    Keygen(KeygenArgs),
    /// Sign a plugin for a plugin directory: writes `<plugin>.sig` beside it.
    Sign(SignArgs),
}

/// The model package group every registry command works on.
#[derive(Debug, Clone, clap::Args)]
pub struct GroupArgs {
    /// SageMaker model package group.
    #[arg(long = "group", env = "MODEL_PACKAGE_GROUP", default_value = "retail-price-sensitivity-models")]
    pub group: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NewPluginArgs {
    /// The directory to create the crate in (new or empty).
    pub dir: PathBuf,

    /// The crate's name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PackageArgs {
    /// The ONNX model (`.onnx`).
    pub model: PathBuf,

    /// Where to write the plugin component (`.wasm`).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,

    /// What the graph cannot say (JSON): name, version, description, labels, field
    /// descriptions and which fields are optional, column names, a sample row.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The plugin component to publish (`.wasm`), or an ONNX model (`.onnx`), which is
    /// packaged first.
    pub plugin: PathBuf,

    /// The manifest to package an ONNX model with (see `package --help`).
    #[arg(long)]
    pub manifest: Option<PathBuf>,

    #[command(flatten)]
    pub group: GroupArgs,

    /// S3 bucket for the plugin and its metrics.
    #[arg(long, env = "PLUGIN_BUCKET")]
    pub bucket: String,

    /// Key prefix inside the bucket; objects go under `<prefix><group>/`.
    #[arg(long, env = "PLUGIN_PREFIX", default_value = "")]
    pub prefix: String,

    /// Held-out metrics JSON to publish with the version (served at /model/metrics).
    #[arg(long)]
    pub metrics: Option<PathBuf>,

    /// Register the version as Approved (hosts switch to it) instead of pending.
    #[arg(long)]
    pub approve: bool,

    /// Description stored with the model package.
    #[arg(long)]
    pub description: Option<String>,

    /// Create the model package group if it does not exist.
    #[arg(long)]
    pub create_group: bool,

    /// Create the bucket if it does not exist.
    #[arg(long)]
    pub create_bucket: bool,

    /// Container image recorded in the model package (the registry requires one; hosts
    /// run the plugin themselves and ignore it).
    #[arg(long, env = "PLUGIN_CONTAINER_IMAGE", default_value = "predict-host")]
    pub container_image: String,

    /// Ed25519 private key to sign the plugin with (PKCS#8 PEM, or base64 of the 32-byte
    /// seed); hosts with the matching `PLUGIN_PUBLIC_KEY` load only signed plugins.
    #[arg(long, env = "PLUGIN_SIGNING_KEY")]
    pub sign_key: Option<PathBuf>,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the new private key (PKCS#8 PEM, readable by the owner only).
    #[arg(long)]
    pub private_key: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SignArgs {
    /// The plugin component to sign; the signature goes to `<plugin>.sig`.
    pub plugin: PathBuf,

    /// Ed25519 private key (PKCS#8 PEM, or base64 of the 32-byte seed).
    #[arg(long, env = "PLUGIN_SIGNING_KEY")]
    pub key: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub action: ModelsAction,

    #[command(flatten)]
    pub group: GroupArgs,

    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ModelsAction {
    /// List the group's versions, newest first.
    List,
    /// Approve a version: hosts serve the highest Approved version.
    Approve { version: u32 },
    /// Reject a version: hosts serving it fall back to the next Approved one.
    Reject { version: u32 },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// TCP port of the Open Inference Protocol over gRPC (0 picks a free one). 8001 is
    /// Triton's, beside HTTP on 8000, so its clients' habits carry over.
    #[arg(long, env = "GRPC_PORT", default_value_t = 8001)]
    pub grpc_port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Follow this SageMaker model package group: serve its highest Approved version.
    #[arg(long, env = "MODEL_PACKAGE_GROUP", conflicts_with = "plugin_dir")]
    pub model_package_group: Option<String>,

    /// How often to poll the model registry (jittered ±20%, backing off on errors).
    #[arg(long, env = "POLL_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// Directory for downloaded plugins, registry records and compiled code; with it a
    /// restart needs no download or compilation, and starts even if the registry is down.
    #[arg(long, env = "CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Directory of plugin versions (`<name>-<version>.wasm`), watched for changes.
    #[arg(long, env = "PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,

    /// Serve the plugin bundled into this binary when no other version is available
    /// (plugin-directory mode, or no source at all; never with a registry).
    #[arg(long, env = "BUNDLED_PLUGIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub bundled_plugin: bool,

    /// Seconds between full rescans of the plugin directory (changes are also watched).
    #[arg(long, env = "PLUGIN_DIR_RESCAN_SECS", default_value_t = 30)]
    pub plugin_dir_rescan_secs: u64,

    /// Wall-clock budget of one plugin call in milliseconds; past it the request gets 504.
    #[arg(long, env = "CALL_TIMEOUT_MS", default_value_t = SandboxLimits::DEFAULT.call_timeout.as_millis() as u64)]
    pub call_timeout_ms: u64,

    /// Largest linear memory of one plugin instance, in MiB.
    #[arg(long, env = "PLUGIN_MEMORY_LIMIT_MIB", default_value_t = SandboxLimits::DEFAULT.memory_limit >> 20)]
    pub plugin_memory_limit_mib: usize,

    /// Bytes of plugin stdout/stderr kept per call for the log.
    #[arg(long, env = "PLUGIN_OUTPUT_LIMIT_BYTES", default_value_t = SandboxLimits::DEFAULT.output_limit)]
    pub plugin_output_limit_bytes: usize,

    /// Calls one plugin instance may serve (after clean returns only) before it is
    /// replaced; 1 gives every call a fresh instance.
    #[arg(long, env = "PLUGIN_CALLS_PER_INSTANCE", default_value_t = SandboxLimits::DEFAULT.calls_per_instance,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub plugin_calls_per_instance: u32,

    /// The compiler a swap uses: `winch` (a fifth of Cranelift's CPU, so requests keep
    /// the cores; the version moves onto Cranelift's code once the CPU is idle) or
    /// `cranelift` (the swap waits for optimised code). A first load uses Cranelift.
    #[arg(long, env = "SWAP_COMPILER", value_enum, default_value_t = Compiler::Winch)]
    pub swap_compiler: Compiler,

    /// How long a version swapped in with Winch serves before it is compiled again with
    /// Cranelift on idle CPU (skipped if by then it neither serves nor is the version a
    /// rollback would restore).
    #[arg(long, env = "TIER_UP_AFTER", default_value = "3s", value_parser = humantime::parse_duration)]
    pub tier_up_after: Duration,

    /// Plugin calls that may run at once; more get 503 with Retry-After.
    #[arg(long, env = "MAX_CONCURRENT_CALLS", default_value_t = SandboxLimits::DEFAULT.max_concurrent_calls)]
    pub max_concurrent_calls: u32,

    /// Largest request body in bytes; larger gets 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Bound on one whole request in seconds (a slow client included); past it, 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Most rows in one batch request.
    #[arg(long, env = "MAX_BATCH_ROWS", default_value_t = 4096)]
    pub max_batch_rows: usize,

    /// On SIGTERM, seconds to keep accepting requests while reporting not ready, so load
    /// balancers stop sending traffic before the listener closes.
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    pub shutdown_delay_secs: u64,

    /// Ed25519 public key (SPKI PEM, base64 of the raw 32 bytes, or a file holding
    /// either): when set, only plugins whose signature verifies over their digest load.
    #[arg(long, env = "PLUGIN_PUBLIC_KEY")]
    pub plugin_public_key: Option<String>,

    /// Bearer token for the operator API under /admin; unset, /admin does not exist.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// On SIGTERM, seconds to let in-flight requests finish once the listener is closed.
    #[arg(long, env = "DRAIN_TIMEOUT_SECS", default_value_t = 20)]
    pub drain_timeout_secs: u64,

    #[command(flatten)]
    pub aws: AwsArgs,
}

impl ServeArgs {
    /// The configured plugin public key, read from a file if the setting names one.
    pub fn plugin_key(&self) -> anyhow::Result<Option<PluginKey>> {
        let Some(setting) = self.plugin_public_key.as_deref().filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let path = std::path::Path::new(setting.trim());
        let text = if path.is_file() { std::fs::read_to_string(path)? } else { setting.to_string() };
        Ok(Some(PluginKey::parse(&text)?))
    }
}

//! Command line and environment: one struct per subcommand is its whole configuration,
//! and every flag can be set by environment variable (as Kubernetes does).

use crate::artifact::signature::PluginKey;
use crate::aws::AwsArgs;
use crate::capture::sink::{Sink, parse_s3_uri};
use crate::capture::{CaptureSettings, FlushRule};
use crate::rollout::policy::{RolloutPolicy, Strategy};
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

    /// The version's rollout policy overrides: JSON such as `{"strategy":"phased",
    /// "canary_percent":5}`, or a file holding it (at most 256 bytes). Hosts judge the
    /// version under it instead of their own default.
    #[arg(long)]
    pub rollout: Option<String>,

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
    pub rollout: RolloutArgs,

    #[command(flatten)]
    pub capture: DataCaptureArgs,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Data capture for model monitoring: which requests are recorded, and where.
#[derive(Debug, Clone, clap::Args)]
pub struct DataCaptureArgs {
    /// Percent of answered requests (`/predict` and V2 alike) whose input rows and answer
    /// are recorded as SageMaker data-capture records; 0 turns capture off.
    #[arg(long, env = "DATA_CAPTURE_PERCENT", default_value_t = 0.0)]
    pub data_capture_percent: f64,

    /// Where records go: `s3://bucket/prefix`, as SageMaker's `DestinationS3Uri`.
    #[arg(long, env = "DATA_CAPTURE_S3_URI", conflicts_with = "data_capture_dir")]
    pub data_capture_s3_uri: Option<String>,

    /// Where records go without S3: a local directory, laid out as in S3.
    #[arg(long, env = "DATA_CAPTURE_DIR")]
    pub data_capture_dir: Option<PathBuf>,

    /// Input fields never written to a record (comma-separated names).
    #[arg(long, env = "DATA_CAPTURE_EXCLUDE_FIELDS", value_delimiter = ',')]
    pub data_capture_exclude_fields: Vec<String>,

    /// A capture file is written once its records reach this many bytes (at most 1 MiB:
    /// a larger buffer cost p99 20 times over in the benchmark)…
    #[arg(long, env = "DATA_CAPTURE_FLUSH_BYTES", default_value_t = 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024))]
    pub data_capture_flush_bytes: u64,

    /// …or once its first record has waited this long.
    #[arg(long, env = "DATA_CAPTURE_FLUSH_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub data_capture_flush_interval: Duration,

    /// Records that may wait to be written; past them (a slow or unreachable sink),
    /// records are dropped and counted, and requests are never held up.
    #[arg(long, env = "DATA_CAPTURE_QUEUE_RECORDS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub data_capture_queue_records: u64,
}

impl DataCaptureArgs {
    /// Whether any request is to be captured (the settings are checked by `settings`).
    pub fn enabled(&self) -> bool {
        self.data_capture_percent > 0.0
    }

    /// The checked settings, with `sink` for the configured destination.
    pub fn settings(&self, sink: Sink) -> CaptureSettings {
        CaptureSettings {
            percent: self.data_capture_percent,
            sink,
            exclude_fields: self
                .data_capture_exclude_fields
                .iter()
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
            flush: FlushRule {
                bytes: self.data_capture_flush_bytes as usize,
                interval: self.data_capture_flush_interval.max(Duration::from_millis(10)),
            },
            queue_records: self.data_capture_queue_records as usize,
        }
    }

    /// Refuses a share outside 0–100, or capture with nowhere to write.
    pub fn check(&self) -> anyhow::Result<()> {
        let percent = self.data_capture_percent;
        anyhow::ensure!(
            percent.is_finite() && (0.0..=100.0).contains(&percent),
            "DATA_CAPTURE_PERCENT must be between 0 and 100, got {percent}"
        );
        anyhow::ensure!(
            !self.enabled() || self.data_capture_s3_uri.is_some() || self.data_capture_dir.is_some(),
            "DATA_CAPTURE_PERCENT is {percent} but there is nowhere to write: set DATA_CAPTURE_S3_URI or DATA_CAPTURE_DIR"
        );
        if let Some(uri) = &self.data_capture_s3_uri {
            parse_s3_uri(uri).map_err(|e| anyhow::anyhow!("DATA_CAPTURE_S3_URI: {e}"))?;
        }
        Ok(())
    }
}

/// How new versions are rolled out: the host's defaults, which a version's own policy
/// (in its registry record, or a `.rollout.json` beside its file) may override.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    /// `immediate`: a new version serves once it loads. `phased`: it is judged on live
    /// traffic first (shadow, then canary), then promoted or rolled back.
    #[arg(long = "rollout-strategy", env = "ROLLOUT_STRATEGY", value_enum, default_value_t = RolloutPolicy::DEFAULT.strategy)]
    pub strategy: Strategy,

    /// Percent of requests the candidate also scores, off the response path, in the
    /// shadow phase (0 skips the phase).
    #[arg(long, env = "ROLLOUT_SHADOW_PERCENT", default_value_t = RolloutPolicy::DEFAULT.shadow_percent)]
    pub rollout_shadow_percent: f64,

    /// Percent of requests the candidate answers in the canary phase (0 skips the phase).
    #[arg(long, env = "ROLLOUT_CANARY_PERCENT", default_value_t = RolloutPolicy::DEFAULT.canary_percent)]
    pub rollout_canary_percent: f64,

    /// Candidate calls a phase must count before it is judged.
    #[arg(long, env = "ROLLOUT_MIN_REQUESTS", default_value_t = RolloutPolicy::DEFAULT.min_requests)]
    pub rollout_min_requests: u64,

    /// Least time a phase lasts.
    #[arg(long, env = "ROLLOUT_MIN_DURATION", default_value = "1m", value_parser = humantime::parse_duration)]
    pub rollout_min_duration: Duration,

    /// Least share (0 to 1) of shadowed rows on which the candidate must choose the
    /// stable version's label.
    #[arg(long, env = "ROLLOUT_MIN_AGREEMENT", default_value_t = RolloutPolicy::DEFAULT.min_agreement)]
    pub rollout_min_agreement: f64,

    /// Largest share (0 to 1) of the candidate's calls that may fail.
    #[arg(long, env = "ROLLOUT_MAX_ERROR_RATE", default_value_t = RolloutPolicy::DEFAULT.max_error_rate)]
    pub rollout_max_error_rate: f64,

    /// Largest ratio of the candidate's p99 plugin-call time to the stable version's.
    #[arg(long, env = "ROLLOUT_MAX_LATENCY_RATIO", default_value_t = RolloutPolicy::DEFAULT.max_latency_ratio)]
    pub rollout_max_latency_ratio: f64,

    /// Also mark a rolled-back version Rejected in the model registry, so the whole fleet
    /// stops offering it (the host's role must be allowed `sagemaker:UpdateModelPackage`).
    #[arg(long, env = "ROLLOUT_REJECT_IN_REGISTRY", default_value_t = false, action = clap::ArgAction::Set)]
    pub rollout_reject_in_registry: bool,
}

impl RolloutArgs {
    /// The host's default policy, checked.
    pub fn policy(&self) -> anyhow::Result<RolloutPolicy> {
        let policy = RolloutPolicy {
            strategy: self.strategy,
            shadow_percent: self.rollout_shadow_percent,
            canary_percent: self.rollout_canary_percent,
            min_requests: self.rollout_min_requests,
            min_duration: self.rollout_min_duration,
            min_agreement: self.rollout_min_agreement,
            max_error_rate: self.rollout_max_error_rate,
            max_latency_ratio: self.rollout_max_latency_ratio,
        };
        policy.check().map_err(|e| anyhow::anyhow!("the ROLLOUT_* settings are not valid: {e}"))?;
        Ok(policy)
    }
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

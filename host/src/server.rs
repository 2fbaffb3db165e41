//! The `serve` command: wires runtime, source, slot and API together, and shuts down
//! gracefully (not ready → stop accepting → finish in-flight requests, bounded).

use crate::api::{self, AppState};
use crate::aws::AwsClients;
use crate::aws::s3::ObjectStore;
use crate::aws::sagemaker::ModelRegistry;
use crate::capture::sink::{Sink, parse_s3_uri};
use crate::capture::{Capture, Closer};
use crate::config::ServeArgs;
use crate::loader::{Loader, SwapCompile};
use crate::runtime::{Runtime, SandboxLimits};
use crate::slot::{LoadFailureKind, ServingSlot};
use crate::source::control::{self, Command};
use crate::source::registry::RegistrySource;
use crate::source::registry::cache::ArtifactCache;
use crate::source::{self, BundledSource, plugin_dir::PluginDirSource};
use crate::telemetry;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    grpc_listener: TcpListener,
    args: ServeArgs,
    slot: Arc<ServingSlot>,
    loader: Arc<Loader>,
}

impl Server {
    /// Builds the runtime and binds the listener; fails on bad configuration.
    pub async fn bind(args: ServeArgs) -> anyhow::Result<Self> {
        if let Some(dir) = &args.plugin_dir {
            anyhow::ensure!(dir.is_dir(), "PLUGIN_DIR {} is not a directory", dir.display());
        }
        anyhow::ensure!(
            args.model_package_group.is_some() || args.plugin_dir.is_some() || args.bundled_plugin,
            "nothing to serve: set MODEL_PACKAGE_GROUP or PLUGIN_DIR, or leave BUNDLED_PLUGIN on"
        );
        anyhow::ensure!(
            args.admin_token.as_deref().is_none_or(|t| !t.trim().is_empty()),
            "ADMIN_TOKEN is set but empty: set a secret token, or unset it to disable /admin"
        );
        telemetry::metrics::declare_load_failure_kinds(LoadFailureKind::ALL.map(LoadFailureKind::as_str));
        telemetry::metrics::rollout_phase(None);
        let policy = args.rollout.policy()?;
        args.capture.check()?;
        let compiled_cache = args.cache_dir.as_ref().map(|dir| dir.join("compiled"));
        let runtime = Runtime::new(sandbox_limits(&args), compiled_cache)
            .context("starting the WebAssembly runtime")?;
        let key = args.plugin_key().context("PLUGIN_PUBLIC_KEY")?;
        if key.is_some() {
            tracing::info!("plugin signatures required: only plugins signed with PLUGIN_PUBLIC_KEY load");
        }
        let slot = ServingSlot::new();
        let swaps = SwapCompile { compiler: args.swap_compiler, recompile_after: args.tier_up_after };
        let loader =
            Arc::new(Loader::new(runtime, Arc::clone(&slot), key, swaps).with_rollout_policy(policy));
        let address = SocketAddr::new(args.bind, args.port);
        let listener = TcpListener::bind(address).await.with_context(|| format!("binding {address}"))?;
        let grpc_address = SocketAddr::new(args.bind, args.grpc_port);
        let grpc_listener = TcpListener::bind(grpc_address)
            .await
            .with_context(|| format!("binding {grpc_address} (gRPC)"))?;
        Ok(Self { listener, grpc_listener, args, slot, loader })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the gRPC services listen.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc_listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, grpc_listener, args, slot, loader } = self;
        tracing::info!(address = %listener.local_addr()?, grpc = %grpc_listener.local_addr()?, "listening");
        let (control, commands) = control::channel();
        let source = tokio::spawn(follow_source(args.clone(), Arc::clone(&loader), commands));
        let judge = tokio::spawn(Arc::clone(&slot).judge_rollouts());

        let (capture, capture_closer) = start_capture(&args).await.context("starting data capture")?;
        let mut state = AppState::new(
            Arc::clone(&slot),
            args.max_concurrent_calls,
            args.max_batch_rows,
            args.max_body_bytes,
        )
        .with_request_timeout(Duration::from_secs(args.request_timeout_secs.max(1)))
        .with_capture(capture);
        if let Some(token) = &args.admin_token {
            state = state.with_admin(token, control);
        }
        let (grpc, keep_health) = api::grpc_app(state.clone());
        let health = tokio::spawn(keep_health);
        let app = api::app(state);
        let anchor = tokio::spawn(api::anchor_timers());

        let delay = Duration::from_secs(args.shutdown_delay_secs);
        let drain = Duration::from_secs(args.drain_timeout_secs);
        // Both listeners close together once the delay has passed; the drain deadline
        // starts then too.
        let (closed_tx, closed_rx) = tokio::sync::watch::channel(false);
        let draining_slot = Arc::clone(&slot);
        tokio::spawn(async move {
            shutdown.await;
            draining_slot.start_draining();
            tracing::info!(delay_secs = delay.as_secs(), "shutting down: not ready");
            tokio::time::sleep(delay).await;
            tracing::info!(drain_secs = drain.as_secs(), "closing listeners, draining in-flight requests");
            let _ = closed_tx.send(true);
        });
        // Resolves when the listeners close; never, should the sender go without closing.
        let closed = |mut closed: tokio::sync::watch::Receiver<bool>| async move {
            if closed.wait_for(|closed| *closed).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let serve_http = axum::serve(listener, app).with_graceful_shutdown(closed(closed_rx.clone()));
        let serve_grpc = axum::serve(grpc_listener, grpc).with_graceful_shutdown(closed(closed_rx.clone()));
        let deadline = async move {
            closed(closed_rx).await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            (http, grpc) = async { tokio::join!(serve_http, serve_grpc) } => {
                http.context("serving HTTP")?;
                grpc.context("serving gRPC")?;
            }
            () = deadline => tracing::warn!("drain timeout reached; abandoning remaining requests"),
        }
        // Requests are over: what they queued for capture is written before the exit.
        capture_closer.close(drain).await;
        source.abort();
        judge.abort();
        anchor.abort();
        health.abort();
        tracing::info!("stopped");
        Ok(())
    }
}

/// The sandbox limits `serve` flags ask for.
pub fn sandbox_limits(args: &ServeArgs) -> SandboxLimits {
    SandboxLimits {
        call_timeout: Duration::from_millis(args.call_timeout_ms),
        memory_limit: args.plugin_memory_limit_mib * 1024 * 1024,
        max_concurrent_calls: args.max_concurrent_calls,
        output_limit: args.plugin_output_limit_bytes,
        calls_per_instance: args.plugin_calls_per_instance,
    }
}

/// Starts data capture as configured (checked by `bind`), writing to S3 or a directory.
async fn start_capture(args: &ServeArgs) -> std::io::Result<(Capture, Closer)> {
    let settings = &args.capture;
    telemetry::metrics::declare_capture_outcomes();
    if !settings.enabled() {
        return Ok((Capture::off(), Closer::default()));
    }
    let sink = match (&settings.data_capture_s3_uri, &settings.data_capture_dir) {
        (Some(uri), _) => {
            let (bucket, prefix) = parse_s3_uri(uri).expect("checked when the server was bound");
            let aws = AwsClients::from_env(&args.aws).await;
            Sink::S3 { store: ObjectStore::new(aws.s3), bucket, prefix }
        }
        (None, Some(dir)) => Sink::Dir(dir.clone()),
        (None, None) => unreachable!("checked when the server was bound"),
    };
    Capture::start(settings.settings(sink), tokio::runtime::Handle::current())
}

/// Runs the configured source for the life of the process.
async fn follow_source(args: ServeArgs, loader: Arc<Loader>, commands: mpsc::Receiver<Command>) {
    if let Some(group) = args.model_package_group {
        let aws = AwsClients::from_env(&args.aws).await;
        let cache = args.cache_dir.map(ArtifactCache::new);
        let registry = ModelRegistry::new(aws.sagemaker, group);
        let source =
            RegistrySource::new(registry, ObjectStore::new(aws.s3), cache, loader, args.poll_interval)
                .rejecting_rolled_back(args.rollout.rollout_reject_in_registry);
        source.run(commands).await;
        return;
    }
    let fallback = args.bundled_plugin.then(source::bundled);
    match args.plugin_dir {
        Some(dir) => {
            let rescan = Duration::from_secs(args.plugin_dir_rescan_secs.max(1));
            let source = PluginDirSource::new(dir, rescan, fallback, loader);
            source.run(commands).await;
        }
        None => {
            if let Some(bundled) = fallback {
                BundledSource::new(bundled, loader).run(commands).await;
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

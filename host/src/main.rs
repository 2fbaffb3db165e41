//! The `predict-host` binary.

use clap::Parser;
use predict_host::config::{Cli, Command};
use predict_host::{commands, server, telemetry};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(telemetry::flush_worker)
        .on_thread_stop(telemetry::end_thread)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => match server::Server::bind(args).await {
            Ok(server) => server.run(server::termination_signal()).await,
            Err(e) => Err(e),
        },
        Command::NewPlugin(args) => commands::new_plugin(args),
        Command::Package(args) => commands::package(args).await,
        Command::Publish(args) => commands::publish(args).await,
        Command::Models(args) => commands::models(args).await,
        Command::Keygen(args) => commands::keygen(args),
        Command::Sign(args) => commands::sign(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

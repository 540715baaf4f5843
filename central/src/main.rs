//! `bench-central`: thin entry point; everything lives in the library.

use anyhow::Context;
use bench_central::agent_client::error_chain;
use bench_central::cli::Cli;
use bench_central::config::{MachinesFile, Settings};
use bench_central::{AppState, serve, telemetry};
use clap::Parser;

/// Exits non-zero with the error chain on one line (a config error is for a person to fix,
/// not a backtrace to read).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-central: error: {}", error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    telemetry::init();
    let args = Cli::parse().serve_args();
    let machines = MachinesFile::load(&args.config)?;
    let central = machines.central.clone().with_env(|k| std::env::var(k).ok());
    let state = AppState::start(&machines.machines, &args.results_dir, Settings::default())
        .with_context(|| format!("cannot open results directory {}", args.results_dir.display()))?
        .with_central(central);
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot bind {addr}"))?;
    serve(listener, state, shutdown_signal()).await.context("server failed")?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

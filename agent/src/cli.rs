//! The command line: `bench-agent [serve] --config PATH [--host H] [--port P]` and
//! `bench-agent sweep …` (the terminal sweep, see [`crate::sweep::cli`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::sweep::cli::SweepArgs;
use crate::{AgentConfig, AppState};

/// bench-agent: benchmarks this machine's LLM engine and streams results as NDJSON events.
///
/// Without a command it serves (`bench-agent --config config/agent.yaml` = `bench-agent serve …`).
#[derive(Debug, Parser)]
#[command(name = "bench-agent", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, the default command.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the agent's REST API and WebSocket (the default command).
    Serve(ServeArgs),
    /// Run an LLMBench sweep (warm-up, calibration, context × parallelism) against an engine
    /// from this terminal, with a live table and CSVs.
    Sweep(Box<SweepArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Path of agent.yaml (see config/agent.example.yaml).
    #[arg(long, short = 'c', value_name = "PATH", default_value = "config/agent.yaml")]
    pub config: PathBuf,
    /// Address to bind; overrides bind_host and AGENT_HOST.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port to bind (0 = any free port, logged at start); overrides bind_port and AGENT_PORT.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Sweep(args)) => crate::sweep::cli::run_terminal(*args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = AgentConfig::load(&args.config)?;
    config.override_bind(args.host, args.port);
    // The certificate first: a TLS mistake fails the start without touching the port.
    let tls = match config.tls.clone() {
        Some(files) => {
            let built = tokio::task::spawn_blocking(move || {
                bench_shared::tls::server_config(&files.cert_file, &files.key_file)
            })
            .await?;
            Some(built.with_context(|| format!("tls in {}", args.config.display()))?)
        }
        None => None,
    };
    let listener = TcpListener::bind((config.bind_host.as_str(), config.bind_port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.bind_host, config.bind_port))?;
    let addr: SocketAddr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        machine_id = %config.machine_id,
        engine = %config.engine.kind,
        engine_url = %config.engine.base_url,
        "listening on {scheme}://{addr}"
    );
    if !addr.ip().is_loopback() && config.auth_token.is_none() {
        tracing::warn!(
            "SECURITY: listening on {addr} (reachable from other machines) without auth_token: anyone who can \
             reach this port can run jobs. Set auth_token in {} or bind to 127.0.0.1.",
            args.config.display()
        );
    }
    let state = AppState::new(config);
    match tls {
        Some(tls) => crate::serve(crate::tls::TlsListener::new(listener, tls)?, state, shutdown_signal()).await?,
        None => crate::serve(listener, state, shutdown_signal()).await?,
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
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
                tracing::error!(error = %e, "cannot listen for SIGTERM");
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
}

//! `bench-central`: thin entry point; everything lives in the library.

use anyhow::Context;
use bench_central::agent_client::error_chain;
use bench_central::cli::{Action, Cli};
use bench_central::config::{MachinesFile, Settings};
use bench_central::{AppState, serve, telemetry};
use clap::Parser;

/// Exits non-zero with the error chain on one line (a config error is for a person to fix,
/// not a backtrace to read).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench-central: error: {}", error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<std::process::ExitCode> {
    let args = match Cli::parse().action() {
        Action::Serve(args) => args,
        Action::Check(args) => {
            println!("{}", bench_central::cli::check(&args)?);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        // The gate's own exit codes: 0 pass, 1 regression, 2 not valid.
        Action::Compare(args) => return Ok(bench_central::gate::run(&args).await.into()),
    };
    telemetry::init();
    let machines = MachinesFile::load(&args.config)?;
    let central = machines.central.clone().with_env(|k| std::env::var(k).ok());
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot bind {addr}"))?;
    let bound = listener.local_addr()?;
    let resolve_args = args.clone();
    let central =
        tokio::task::spawn_blocking(move || bench_central::cli::resolve_auth(central, &resolve_args, bound)).await??;
    let state = AppState::start(&machines.machines, &args.results_dir, Settings::default())
        .with_context(|| format!("cannot open results directory {}", args.results_dir.display()))?
        .with_central(central);
    serve(listener, state, bench_server::shutdown_signal()).await.context("server failed")?;
    Ok(std::process::ExitCode::SUCCESS)
}

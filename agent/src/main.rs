//! `bench-agent`: see `bench_agent::cli`.

use clap::Parser;

/// Exits non-zero with the error chain on one line (a config error is for a person to fix,
/// not a backtrace to read).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-agent: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let cli = bench_agent::cli::Cli::parse();
    bench_agent::telemetry::init();
    bench_agent::cli::run(cli).await
}

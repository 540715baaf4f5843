//! `bench-agent`: see `bench_agent::cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = bench_agent::cli::Cli::parse();
    bench_agent::telemetry::init();
    bench_agent::cli::run(cli).await
}

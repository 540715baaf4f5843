//! The command line: `bench-agent [serve] --config PATH [--host H] [--port P]` and
//! `bench-agent sweep …` (the terminal sweep, see [`crate::sweep::cli`]), `bench-agent load …` /
//! `bench-agent capacity …` (see [`crate::load::cli`]), `bench-agent check …`
//! (validate the config), `bench-agent tui` (the interactive terminal app, [`crate::tui`]) and
//! `bench-agent calibrate` (the client ceiling, [`crate::calibrate`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bench_shared::engine::EngineKind;
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
    /// Validate agent.yaml (and the bind overrides) without starting anything: prints what would
    /// be served and exits 0, or prints the error and exits 1 (`scripts/agents restart` runs it first).
    Check(ServeArgs),
    /// The LLMBench terminal app: pick models and sweep settings, start, watch the live table,
    /// get the CSV paths (works over SSH and in an 80x24 terminal).
    Tui(Box<crate::tui::TuiArgs>),
    /// Measure the client ceiling: how fast this agent's own measuring path can go, against an
    /// in-process engine with no latency (tok_s, events_per_s, ttft_floor_ms). The agent runs a
    /// quick one (at most 1 s) at every start and shows it as `client_ceiling` in /capabilities;
    /// this runs a longer one and prints it (nothing is saved).
    Calibrate(CalibrateArgs),
    /// Run an llm_load job against an engine from this terminal: a fixed request rate (open
    /// loop, constant / poisson / gamma arrivals) and/or concurrency (closed loop), with a live
    /// line and a final table (or --json: the job's load_done).
    Load(Box<crate::load::cli::LoadArgs>),
    /// Run an llm_capacity job against an engine from this terminal: load steps, bracket then
    /// bisect, to the highest rate or concurrency that meets the SLO at a percentile.
    Capacity(Box<crate::load::cli::CapacityArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Seconds of calibration requests (1 to 600).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration_s: u64,
    /// agent.yaml whose stream_flush_chars / stream_flush_seconds to use (they are part of the
    /// measuring path); without it, the defaults.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the figures as one JSON object (the `client_ceiling` shape) instead of a sentence.
    #[arg(long)]
    pub json: bool,
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
    /// Serve beyond loopback without a token (trusted networks only; logged as a warning).
    /// Without it, an agent bound beyond loopback with no auth_token generates a token on first
    /// start (kept next to the config file, e.g. config/agent.token) and requires it.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// The binary's whole life: parse the command line and run it; exits non-zero with the error
/// chain on one line (a config error is for a person to fix, not a backtrace to read). It lives
/// here rather than in `main.rs` so the binary crate instantiates no generic code of its own: an
/// optimised build would otherwise generate the runtime and every future it polls a second time,
/// serially at the end of the build.
pub fn main() -> std::process::ExitCode {
    match main_async() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-agent: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main_async() -> anyhow::Result<()> {
    let cli = Cli::parse();
    crate::telemetry::init();
    run(cli).await
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Sweep(args)) => crate::sweep::cli::run_terminal(*args).await,
        Some(Command::Check(args)) => check(&args).map(|line| println!("{line}")),
        Some(Command::Tui(args)) => crate::tui::run(*args).await,
        Some(Command::Calibrate(args)) => calibrate(&args).await.map(|line| println!("{line}")),
        Some(Command::Load(args)) => crate::load::cli::run_terminal(&args.common, args.spec()?).await,
        Some(Command::Capacity(args)) => crate::load::cli::run_terminal(&args.common, args.spec()?).await,
    }
}

/// `bench-agent calibrate`: the full calibration, as a sentence or JSON.
pub async fn calibrate(args: &CalibrateArgs) -> anyhow::Result<String> {
    let config = match &args.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::new("calibrate", crate::engine::EngineSettings::defaults(EngineKind::Mock)),
    };
    let flush = crate::bench::coalesce::FlushPolicy::new(config.stream_flush_chars, config.stream_flush_seconds);
    let plan = crate::calibrate::Plan::full(std::time::Duration::from_secs(args.duration_s));
    let c = crate::calibrate::calibrate(&plan, flush, None, &tokio_util::sync::CancellationToken::new()).await?;
    Ok(if args.json {
        serde_json::to_string(&c)?
    } else {
        format!(
            "client ceiling ({} calibration, {} requests, {} tokens in {:.2} s, measured {}): {:.0} tok/s, \
             {:.0} events/s, TTFT floor {:.3} ms",
            c.kind.as_str(),
            c.requests,
            c.tokens,
            c.duration_s,
            c.measured_at,
            c.tok_s,
            c.events_per_s,
            c.ttft_floor_ms
        )
    })
}

/// `bench-agent check`: the config as `serve` would resolve it, or the error.
pub fn check(args: &ServeArgs) -> anyhow::Result<String> {
    let mut config = AgentConfig::load(&args.config)?;
    config.override_bind(args.host.clone(), args.port);
    Ok(format!(
        "config ok: {} (machine_id {}, engine {} at {}, listen {}:{}, auth {})",
        args.config.display(),
        config.machine_id,
        config.engine.kind,
        config.engine.base_url,
        config.bind_host,
        config.bind_port,
        if config.auth_token.is_some() {
            "on (auth_token)"
        } else if config.insecure_no_auth || args.insecure_no_auth {
            "off (insecure_no_auth)"
        } else {
            "a generated token when bound beyond loopback"
        }
    ))
}

/// Who may use the agent: its `auth_token`; else, bound beyond loopback, the token in
/// `<config>.token` (generated now if missing, with the login URL printed once); else open.
async fn resolve_auth(
    config: &mut AgentConfig,
    config_path: &std::path::Path,
    insecure_flag: bool,
    scheme: &'static str,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    use bench_server::auth::token::{AuthPlan, resolve};
    if insecure_flag && config.auth_token.is_some() {
        anyhow::bail!(
            "--insecure-no-auth while {} sets auth_token: remove one (a token, or no authentication at all)",
            config_path.display()
        );
    }
    let insecure = insecure_flag || config.insecure_no_auth;
    let file = AgentConfig::token_file(config_path);
    let plan = AuthPlan::decide(config.auth_token.is_some(), insecure, addr.ip(), file);
    let machine_id = config.machine_id.clone();
    let configured = config.auth_token.clone();
    let hints = move |token: &str| {
        vec![
            format!("  central:    in machines.yaml, for machine_id \"{machine_id}\":  token: \"{token}\""),
            format!(
                "  curl:       curl -H \"Authorization: Bearer {token}\" {scheme}://127.0.0.1:{}/capabilities",
                addr.port()
            ),
        ]
    };
    let resolved =
        tokio::task::spawn_blocking(move || resolve(&plan, configured.as_deref(), "bench-agent", scheme, addr, &hints))
            .await??;
    if let Some(w) = &resolved.warning {
        tracing::warn!("{w}");
    }
    if let Some(n) = &resolved.notice {
        eprintln!("{n}");
    }
    config.auth_token = resolved.token;
    Ok(())
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
    let max_connections = config.max_connections;
    resolve_auth(&mut config, &args.config, args.insecure_no_auth, scheme, addr).await?;
    let state = AppState::new(config);
    match tls {
        Some(tls) => {
            let listener = bench_server::tls::TlsListener::bounded(listener, tls, max_connections)?;
            crate::serve(listener, state, bench_server::shutdown_signal()).await?
        }
        None => crate::serve(listener, state, bench_server::shutdown_signal()).await?,
    }
    tracing::info!("stopped");
    Ok(())
}

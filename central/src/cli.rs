//! The `bench-central` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bench-central", version, about = "Race one prompt across every bench-race agent")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and the browser UI (the default).
    Serve(ServeArgs),
    /// Validate machines.yaml without starting anything: prints the machines and exits 0, or
    /// prints the error and exits 1 (`scripts/central restart` runs it first).
    Check(ServeArgs),
    /// Regression gate for CI: compare a candidate run with a baseline run, machine by machine.
    /// Exits 1 when a machine is significantly worse by at least --fail-on-regression percent,
    /// 2 when the comparison is not valid (incomparable, too few repeats), 0 otherwise.
    Compare(crate::gate::CompareArgs),
}

/// What `main` should do.
#[derive(Debug)]
pub enum Action {
    Serve(ServeArgs),
    Check(ServeArgs),
    Compare(crate::gate::CompareArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// machines.yaml: the agents to race.
    #[arg(long, default_value = "config/machines.yaml")]
    pub config: PathBuf,
    /// Where runs are stored (`<dir>/runs/<run_id>/`).
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// Address to listen on (0.0.0.0: every interface, so other machines' browsers can reach it).
    #[arg(long, env = "CENTRAL_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0: any free port; the log says which).
    #[arg(long, env = "CENTRAL_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Serve beyond loopback without a token (trusted networks only; logged as a warning).
    /// Without it, a central listening beyond loopback with no central.auth_token generates a
    /// token on first start (<results-dir>/central.token), prints a ready login URL and requires it.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

impl Cli {
    /// The chosen action (`serve` when no command is named).
    pub fn action(self) -> Action {
        match self.command {
            Some(Command::Serve(a)) => Action::Serve(a),
            Some(Command::Check(a)) => Action::Check(a),
            Some(Command::Compare(a)) => Action::Compare(a),
            None => Action::Serve(self.serve),
        }
    }
}

/// Who may use central: the configured token; else, listening beyond loopback, the token in
/// `<results_dir>/central.token` (generated now if missing, with the login URL printed once);
/// else open. Returns the settings with the token to require. Blocking file I/O.
pub fn resolve_auth(
    mut central: crate::config::CentralConfig,
    args: &ServeArgs,
    bound: std::net::SocketAddr,
) -> anyhow::Result<crate::config::CentralConfig> {
    use bench_server::auth::token::{AuthPlan, resolve};
    let insecure = args.insecure_no_auth || central.insecure_no_auth;
    if insecure && central.token().is_some() {
        anyhow::bail!(
            "{} while a token is set (central.auth_token or {}): remove one (a token, or no authentication at all)",
            if args.insecure_no_auth { "--insecure-no-auth" } else { "central.insecure_no_auth: true" },
            crate::config::TOKEN_ENV
        );
    }
    let file = args.results_dir.join(crate::state::TOKEN_FILE);
    let plan = AuthPlan::decide(central.token().is_some(), insecure, bound.ip(), file);
    let hints = |token: &str| {
        vec![format!(
            "  scripts:    curl -H \"Authorization: Bearer {token}\" http://127.0.0.1:{}/api/machines  (or BENCH_CENTRAL_TOKEN)",
            bound.port()
        )]
    };
    let resolved = resolve(&plan, central.token(), "bench-central", "http", bound, &hints)?;
    if let Some(w) = &resolved.warning {
        tracing::warn!("{w}");
    }
    if let Some(n) = &resolved.notice {
        eprintln!("{n}");
    }
    central.auth_token = resolved.token;
    Ok(central)
}

/// `bench-central check`: one line describing the validated machines file (or the error).
pub fn check(args: &ServeArgs) -> Result<String, crate::config::ConfigError> {
    let file = crate::config::MachinesFile::load(&args.config)?;
    let machines: Vec<String> = file.machines.iter().map(|m| format!("{} ({})", m.machine_id, m.base_url())).collect();
    let c = &file.central;
    let auth = if c.auth_token.is_some() || std::env::var(crate::config::TOKEN_ENV).is_ok_and(|t| !t.trim().is_empty())
    {
        "on (token configured)".to_owned()
    } else if c.insecure_no_auth || args.insecure_no_auth {
        "off (insecure_no_auth)".to_owned()
    } else {
        format!(
            "a token generated in {} when listening beyond loopback",
            args.results_dir.join(crate::state::TOKEN_FILE).display()
        )
    };
    Ok(format!(
        "config ok: {} ({} machines: {}; listen {}:{}, results {}, auth {auth})",
        args.config.display(),
        machines.len(),
        machines.join(", "),
        args.host,
        args.port,
        args.results_dir.display()
    ))
}

/// The binary's whole life: exits non-zero with the error chain on one line (a config error is
/// for a person to fix, not a backtrace to read). It lives here rather than in `main.rs` so the
/// binary crate instantiates no generic code of its own (see `bench_agent::cli::main`).
pub fn main() -> std::process::ExitCode {
    match main_async() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench-central: error: {}", crate::agent_client::error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main_async() -> anyhow::Result<std::process::ExitCode> {
    let args = match Cli::parse().action() {
        Action::Serve(args) => args,
        Action::Check(args) => {
            println!("{}", check(&args)?);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        // The gate's own exit codes: 0 pass, 1 regression, 2 not valid.
        Action::Compare(args) => return Ok(crate::gate::run(&args).await.into()),
    };
    crate::telemetry::init();
    let machines = crate::config::MachinesFile::load(&args.config)?;
    let central = machines.central.clone().with_env(|k| std::env::var(k).ok());
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot bind {addr}"))?;
    let bound = listener.local_addr()?;
    let resolve_args = args.clone();
    let central = tokio::task::spawn_blocking(move || resolve_auth(central, &resolve_args, bound)).await??;
    let state = crate::AppState::start(&machines.machines, &args.results_dir, crate::config::Settings::default())
        .with_context(|| format!("cannot open results directory {}", args.results_dir.display()))?
        .with_central(central);
    crate::serve(listener, state, bench_server::shutdown_signal()).await.context("server failed")?;
    Ok(std::process::ExitCode::SUCCESS)
}

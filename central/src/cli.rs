//! The `bench-central` command line.

use std::path::PathBuf;

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

/// `bench-central check`: one line describing the validated machines file (or the error).
pub fn check(args: &ServeArgs) -> Result<String, crate::config::ConfigError> {
    let file = crate::config::MachinesFile::load(&args.config)?;
    let machines: Vec<String> = file.machines.iter().map(|m| format!("{} ({})", m.machine_id, m.base_url())).collect();
    Ok(format!(
        "config ok: {} ({} machines: {}; listen {}:{}, results {})",
        args.config.display(),
        machines.len(),
        machines.join(", "),
        args.host,
        args.port,
        args.results_dir.display()
    ))
}

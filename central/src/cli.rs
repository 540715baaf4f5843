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
    /// The serve arguments, whether `serve` was named or not.
    pub fn serve_args(self) -> ServeArgs {
        match self.command {
            Some(Command::Serve(a)) => a,
            None => self.serve,
        }
    }
}

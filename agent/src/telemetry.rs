//! Tracing set-up for the binary (library code only emits events; it never installs a subscriber).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs a formatter on stderr with `RUST_LOG` (default `info`); colours only on a terminal,
/// so log files stay greppable. Safe to call twice.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// For tests: logs only when `TEST_LOG` is set, so test output stays readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init();
    }
}

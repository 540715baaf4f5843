//! Tracing set-up for the binary (library code only emits events; it never installs a subscriber).

/// Installs a formatter on stderr with `RUST_LOG` (default `info`; see [`bench_server::logging`]);
/// colours only on a terminal, so log files stay greppable. Safe to call twice.
pub fn init() {
    bench_server::logging::init();
}

/// For tests: logs only when `TEST_LOG` is set, so test output stays readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init();
    }
}

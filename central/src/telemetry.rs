//! Tracing set-up for the binary (library code only emits events; it never installs a subscriber).

/// Logs to stderr; `RUST_LOG` overrides the default `info` filter (see [`bench_server::logging`]).
pub fn init() {
    bench_server::logging::init();
}

//! The binaries' log set-up: a formatter on stderr filtered by `RUST_LOG`.
//!
//! `RUST_LOG` takes a default level and per-target levels (`info`, `warn,bench_agent=debug`);
//! span and field filters are not supported (a filter with them is reported and `info` is used).
//! A plain target filter keeps a regular-expression engine out of both binaries.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter a `RUST_LOG` value asks for: `Err` with the reason when it cannot be read.
pub fn filter_of(value: Option<&str>) -> Result<Targets, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(Targets::new().with_default(LevelFilter::INFO)),
        Some(v) => {
            v.parse::<Targets>().map_err(|e| format!("RUST_LOG={v:?} is not a target filter ({e}); logging at info"))
        }
    }
}

/// Installs the formatter on stderr; colours only on a terminal, so log files stay greppable.
/// Safe to call twice (the second call changes nothing).
pub fn init() {
    let value = std::env::var("RUST_LOG").ok();
    let (filter, problem) = match filter_of(value.as_deref()) {
        Ok(f) => (f, None),
        Err(reason) => (Targets::new().with_default(LevelFilter::INFO), Some(reason)),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if tracing_subscriber::registry().with(fmt).with(filter).try_init().is_ok()
        && let Some(reason) = problem
    {
        tracing::warn!("{reason}");
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter_of;

    #[test]
    fn unset_or_empty_means_info() {
        for v in [None, Some(""), Some("  ")] {
            let f = filter_of(v).unwrap();
            assert!(f.would_enable("bench_agent::jobs", &Level::INFO));
            assert!(!f.would_enable("bench_agent::jobs", &Level::DEBUG));
        }
    }

    #[test]
    fn per_target_levels_are_honoured() {
        let f = filter_of(Some("warn,bench_agent=debug")).unwrap();
        assert!(f.would_enable("bench_agent::engine", &Level::DEBUG));
        assert!(!f.would_enable("hyper::proto", &Level::INFO));
        assert!(f.would_enable("hyper::proto", &Level::WARN));
    }

    #[test]
    fn a_filter_that_is_not_a_target_list_is_an_error_naming_it() {
        let e = filter_of(Some("bench_agent[span{x=1}]=debug")).unwrap_err();
        assert!(e.contains("RUST_LOG=\"bench_agent[span{x=1}]=debug\""), "{e}");
    }
}

//! Wire types and pure logic that `bench-agent` and `bench-central` both use.
//!
//! Nothing here touches the network or a web framework: it is data, validation and arithmetic,
//! so every function can be unit-tested on known inputs.
//!
//! # Layout
//! - [`job`]: job specifications (`llm_generate`, `llm_sweep`, `llm_load`, `llm_capacity`,
//!   `image_generate`, `transcribe`, `compute`) and their validation.
//! - [`workload`]: the image, speech and compute races: specs, events, WER, RTFx, steps/s.
//! - [`event`]: the event envelope streamed by agents (`{job_id, type, payload, seq, machine_id}`).
//! - [`load`]: `llm_load` / `llm_capacity`: specs, seeded schedules and prompts, load figures
//!   (goodput, percentiles), the capacity search.
//! - [`metrics`]: per-request timing traces → metrics; summary statistics over repeats.
//! - [`engine`]: engine kinds and model details as the agent reports them.
//! - [`hardware`]: machine fingerprint types and the original bench-race's flat fields.
//! - [`runtime`]: live telemetry samples (`runtime_metrics`), energy and throttling arithmetic.
//! - [`fit`]: whether a model and its KV cache fit a machine's memory.
//! - [`run`]: persisted run types used by central (metadata, summary).
//! - [`compare`]: the statistical comparison of machines (verdicts, fairness, winner).
//! - [`share`]: results beyond one race: the leaderboard, run bundles' manifest, imports.
//! - [`feed`]: what central sends browsers and stores: its own events ([`feed::CentralEvent`]) and
//!   the agent events it relays, read back typed ([`feed::StoredLine`]).
//! - [`pull`]: fleet model management: which machine has which model, pulls across machines.
//! - [`api`]: the agent's HTTP contract (`Health`, `Capabilities`, `JobAccepted`, `JobView`).
//! - [`ids`]: `MachineId`, `JobId`, `RunId` newtypes (a run id is checked on the way in).
//! - [`time`], [`fmt`], [`hash`]: wall-clock helpers, number formatting, stable hashing (one of each).
//! - [`sync`]: the lock-poisoning policy (`sync::lock`).
//! - [`clock`]: a run's clock offsets and achieved start skew (`metadata.json` → `clock`).
//! - [`timeouts`]: every time bound between central, agents and engines, in one place.
//! - [`tls`]: rustls (ring provider) set-up: certificates, keys, server and client configs.
//! - [`reference`]: the config keys and event kinds the code accepts, read from serde, for the
//!   tests that keep `docs/` true to the code.

pub mod api;
pub mod clock;
pub mod close;
pub mod compare;
pub mod engine;
pub mod event;
pub mod feed;
pub mod fit;
pub mod fmt;
pub mod hardware;
pub mod hash;
pub mod ids;
pub mod job;
pub mod load;
pub mod metrics;
pub mod pull;
pub mod reference;
pub mod run;
pub mod runtime;
pub mod share;
pub mod sweep;
pub mod sync;
pub mod time;
pub mod timeouts;
pub mod tls;
pub mod workload;

/// An error with its sources in one line (reqwest hides the useful part, e.g. "connection
/// refused", in them); a source whose text the message already contains is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chain_joins_sources_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let outer = std::io::Error::other(inner);
        assert_eq!(super::error_chain(&outer), "connection refused");
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(std::io::Error::other("refused"));
        assert_eq!(super::error_chain(&e), "request failed: refused");
    }
}

//! Wire types and pure logic that `bench-agent` and `bench-central` both use.
//!
//! Nothing here touches the network or a web framework: it is data, validation and arithmetic,
//! so every function can be unit-tested on known inputs.
//!
//! # Layout
//! - [`job`]: job specifications (`llm_generate`, `llm_sweep`) and their validation.
//! - [`event`]: the event envelope streamed by agents (`{job_id, type, payload, seq, machine_id}`).
//! - [`metrics`]: per-request timing traces → metrics; summary statistics over repeats.
//! - [`engine`]: engine kinds and model details as the agent reports them.
//! - [`hardware`]: machine fingerprint types.
//! - [`run`]: persisted run types used by central (metadata, summary).
//! - [`api`]: the agent's HTTP contract (`Health`, `Capabilities`, `JobAccepted`, `JobView`).
//! - [`sync`]: the lock-poisoning policy (`sync::lock`).
//! - [`timeouts`]: every time bound between central, agents and engines, in one place.
//! - [`tls`]: rustls (ring provider) set-up: certificates, keys, server and client configs.

pub mod api;
pub mod engine;
pub mod event;
pub mod hardware;
pub mod job;
pub mod metrics;
pub mod run;
pub mod sweep;
pub mod sync;
pub mod timeouts;
pub mod tls;

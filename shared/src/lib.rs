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
//! - [`hardware`]: machine fingerprint types and the original bench-race's flat fields.
//! - [`runtime`]: live telemetry samples (`runtime_metrics`), energy and throttling arithmetic.
//! - [`fit`]: whether a model and its KV cache fit a machine's memory.
//! - [`run`]: persisted run types used by central (metadata, summary).
//! - [`compare`]: the statistical comparison of machines (verdicts, fairness, winner).
//! - [`api`]: the agent's HTTP contract (`Health`, `Capabilities`, `JobAccepted`, `JobView`).
//! - [`sync`]: the lock-poisoning policy (`sync::lock`).
//! - [`timeouts`]: every time bound between central, agents and engines, in one place.
//! - [`tls`]: rustls (ring provider) set-up: certificates, keys, server and client configs.

pub mod api;
pub mod compare;
pub mod engine;
pub mod event;
pub mod fit;
pub mod hardware;
pub mod job;
pub mod metrics;
pub mod run;
pub mod runtime;
pub mod sweep;
pub mod sync;
pub mod timeouts;
pub mod tls;

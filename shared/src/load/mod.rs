//! Load runs: `llm_load` (a fixed load for a while) and `llm_capacity` (the search for the
//! highest load that still meets an SLO), as pure parts both the agent and central use.
//!
//! # Layout
//! - [`spec`]: the two job specs (serde structs, `deny_unknown_fields`) and their validation.
//! - [`rng`]: the seeded random stream (ChaCha8) and the draws the schedule needs (exponential,
//!   gamma, normal), value-stable across machines and versions.
//! - [`schedule`]: arrival offsets from the seed (constant, Poisson, gamma with burstiness).
//! - [`prompt`]: each request's prompt from the seed (synthetic or shared-prefix).
//! - [`record`]: one request's record (the `requests.csv` row) and its derived figures.
//! - [`summary`]: records → the figures of `load_done` (throughput, goodput, percentiles).
//! - [`search`]: the bracket-then-bisect capacity search, as a state machine.
//! - [`events`]: the payloads of `load_progress`, `load_step`, `load_requests` and `load_done`.
//!
//! # Metric definitions (vLLM's; also in docs/load.md)
//! - TTFT: request sent → first chunk carrying generated text.
//! - TPOT: `(E2E − TTFT) ÷ (output tokens − 1)`, per request (undefined below 2 tokens).
//! - ITL: every gap between consecutive streamed chunks that arrived in different reads
//!   (chunks read together share one instant; their zero gap is the reader's, not the engine's).
//! - E2E: request sent → last byte of the answer.
//! - Goodput: measured requests meeting every SLO given ÷ duration.

pub mod events;
pub mod prompt;
pub mod record;
pub mod rng;
pub mod schedule;
pub mod search;
pub mod spec;
pub mod summary;

pub use events::{CapacityResult, CapacityStep, LoadDone, LoadPhase, LoadProgress, LoadRequests, LoadStep};
pub use record::RequestRecord;
pub use search::{Search, SearchMode, StopReason};
pub use spec::{Arrival, CapacitySpec, Dataset, LoadLevel, LoadSpec, Slo, TokenCount, Workload};
pub use summary::{Dist, LoadSummary, UnderDeliveredReason, summarize};

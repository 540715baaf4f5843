//! bench-agent: drives the machine's LLM engine, measures it, and streams NDJSON events.
//!
//! # Layout
//! - [`engine`]: `trait Engine` and its Ollama, OpenAI-compatible and mock implementations.
//! - [`sweep`]: the LLMBench sweep (warm-up, calibration, ctx × parallel, CSVs, terminal table).

pub mod engine;
pub mod sweep;
pub mod testkit;

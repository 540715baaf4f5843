//! Test support shared by the agent's and central's integration tests: the real local engine
//! launcher, a protocol-faithful fake Ollama, an OpenAI-compatible engine with a fixed number of
//! slots (load tests) and a strict Prometheus text parser. Not used by the product itself.

pub mod fake_ollama;
pub mod local_engine;
pub mod prometheus;
pub mod raw_http;
pub mod slot_engine;

pub use local_engine::{LOCAL_MODEL, local_engine_url};

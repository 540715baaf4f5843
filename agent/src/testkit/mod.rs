//! Test support shared by the agent's and central's integration tests: the real local engine
//! launcher and a protocol-faithful fake Ollama. Not used by the product itself.

pub mod fake_ollama;
pub mod local_engine;

pub use local_engine::{LOCAL_MODEL, local_engine_url};

//! Test support shared by the agent's and central's integration tests: the real local engine
//! launcher, a protocol-faithful fake Ollama, an OpenAI-compatible engine with a fixed number of
//! slots (load tests), a strict Prometheus text parser and a slow-headers flood. Not used by the
//! product itself.

pub mod fake_comfy;
pub mod fake_media;
pub mod fake_ollama;
pub mod flood;
pub mod local_engine;
pub mod png;
pub mod prometheus;
pub mod raw_http;
pub mod slot_engine;

pub use local_engine::{LOCAL_MODEL, LOCAL_SPEECH_MODEL, local_engine_url, local_speech_url};

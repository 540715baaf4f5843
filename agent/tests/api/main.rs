//! Integration tests of bench-agent: one binary, one module per area. Every test starts a real
//! agent on 127.0.0.1:0 ([`support::TestAgent`]) and talks to it over HTTP and WebSocket.

mod support;

mod bad_input;
mod binary;
mod ceiling;
mod engine_status;
mod jobs_queue;
mod journal;
mod load;
mod machine;
mod mock_engine;
mod ollama;
mod openai_engine;
mod pulls;
mod real_engine;
mod security;
mod speech_real;
mod sweep;
mod websocket;
mod workloads;

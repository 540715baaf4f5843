//! Central's integration tests: one binary, one module per concern.
//!
//! Agents are real `bench-agent` instances in-process on port 0 (over the mock engine and over the
//! real local llama.cpp engine), plus fake agents for fault cases (an agent that dies, drops its
//! WebSocket, or streams a sweep).

mod browser;
mod browser_capacity;
mod browser_workload;
mod capacity;
mod clock;
mod compare_runs;
mod comparison;
mod config_file;
mod disk;
mod fake_agent;
mod fake_original;
mod faults;
mod flood;
mod history;
mod leaderboard;
mod login;
mod machine_telemetry;
mod manners;
mod original;
mod pulls;
mod races;
mod replay;
mod security;
mod sharing;
mod support;
mod sweeps;
mod tls;
mod webdriver;
mod workload_races;

//! bench-agent

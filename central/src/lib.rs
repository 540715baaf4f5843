//! bench-central

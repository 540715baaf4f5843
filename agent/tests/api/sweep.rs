//! Integration tests for the sweep engineer (placeholder).

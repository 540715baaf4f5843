//! Persisted run types (central's `results/runs/<run_id>/`). Filled in by the central issue.

//! jobs_queue tests.

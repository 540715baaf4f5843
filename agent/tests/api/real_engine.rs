//! real_engine tests.

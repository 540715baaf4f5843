//! websocket tests.

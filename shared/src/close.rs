//! WebSocket close codes (RFC 6455 §7.4.1), in one place for the agent's `/ws`, central's
//! `/api/ws` and central's agent connections.

/// The stream ended as intended (a followed job finished).
pub const NORMAL: u16 = 1000;
/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// The client broke a rule: too slow to keep up, or it stopped answering pings.
pub const POLICY: u16 = 1008;
/// Refused for now (e.g. the subscriber cap is reached): try again later.
pub const TRY_AGAIN_LATER: u16 = 1013;

//! Every time bound between central, agents and engines, in one place.
//!
//! The rule these constants keep: a caller always waits longer than the callee's own bound, so a
//! request the callee will still honour is never recorded as failed by the caller (central must
//! not record a job as refused that the agent then accepts). The unit test below checks it.
//!
//! | bound | value | who waits | for what |
//! |---|---|---|---|
//! | [`AGENT_MODEL_REFRESH`] | 1 s | agent, in `POST /jobs` | a fresh model list when the job names a model the cache lacks |
//! | [`AGENT_ENGINE_PROBE`] | 5 s | agent, background / `?refresh=1` | the engine's model list + version |
//! | [`AGENT_ENGINE_STATUS_INTERVAL`] | 10 s | agent | between background probes (none while a job runs) |
//! | [`CENTRAL_AGENT_HTTP`] | 10 s | central | any agent REST call (`/health`, `/capabilities`, `POST /jobs`, …) |
//! | [`CENTRAL_WS_CONNECT`] | 10 s | central | the agent WebSocket handshake |
//! | [`CENTRAL_CLOCK_MEASURE`] | 1 s | central, before dispatch | all round trips of one agent's clock-offset measurement |
//!
//! The engine request bounds (`engine.request_timeout_s`, …) are the agent's configuration and
//! govern jobs, not any call central waits on: central follows jobs through events, a deadline
//! derived from the job, and probes.

use std::time::Duration;

/// `POST /jobs`: the longest the agent spends refreshing its model list for an unknown model.
pub const AGENT_MODEL_REFRESH: Duration = Duration::from_secs(1);
/// One engine status probe (model list + version): background refresh, `?refresh=1`.
pub const AGENT_ENGINE_PROBE: Duration = Duration::from_secs(5);
/// Between background engine status probes.
pub const AGENT_ENGINE_STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Central's limit on one REST call to an agent: above every bound the agent applies inside a
/// request (the slowest is `?refresh=1`, one [`AGENT_ENGINE_PROBE`]).
pub const CENTRAL_AGENT_HTTP: Duration = Duration::from_secs(10);
/// Central's limit on the agent WebSocket handshake.
pub const CENTRAL_WS_CONNECT: Duration = Duration::from_secs(10);
/// Central's limit on measuring one agent's clock offset before a run (every round trip to
/// `GET /time` together): it delays the run's dispatch, so it is short; an agent that does not
/// answer in time starts uncorrected (the run records why).
pub const CENTRAL_CLOCK_MEASURE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_wait_longer_than_callees() {
        let slowest_agent_answer = AGENT_MODEL_REFRESH.max(AGENT_ENGINE_PROBE);
        assert!(CENTRAL_AGENT_HTTP > slowest_agent_answer, "central gives up before the agent answers");
        assert!(AGENT_MODEL_REFRESH < AGENT_ENGINE_PROBE);
        assert!(AGENT_ENGINE_STATUS_INTERVAL >= AGENT_ENGINE_PROBE, "probes would overlap");
    }
}

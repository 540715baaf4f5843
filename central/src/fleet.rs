//! The fleet: one task per machine keeps central's view of that agent current.
//!
//! Each task runs two loops side by side: a WebSocket subscription to the agent's `/ws` (every
//! event goes to the run that owns its job; reconnects use exponential backoff with jitter, capped)
//! and a `/health` + `/capabilities` refresh (every `health_interval`, and at once after a
//! reconnect). After every (re)connect the runs with jobs on the machine are told, so they fetch
//! what they missed from `GET /jobs/{id}/events?after_seq=`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_shared::api::Protocol;
use bench_shared::event::{RawEnvelope, Received};
use bench_shared::feed::{CentralEvent, MachineStateChange};
use bench_shared::ids::MachineId;
use bench_shared::run::{MachineState, MachineView};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use tokio_util::sync::CancellationToken;

use crate::agent_client::{AgentClient, error_chain};
use crate::config::{MachineConfig, Settings};
use crate::hub::Hub;
use crate::routing::JobRouter;

/// The reason shown for a machine whose agent answers 401 to central's requests.
pub const UNAUTHORIZED: &str =
    "agent refused central's token (401): set this machine's `token` in machines.yaml to the agent's auth_token";

/// One configured machine and what central last learned about it.
#[derive(Debug)]
pub struct Machine {
    pub config: MachineConfig,
    /// `config.machine_id`, typed.
    pub id: MachineId,
    pub client: AgentClient,
    view: Mutex<MachineView>,
    /// Wakes the health loop (after a reconnect).
    refresh: Notify,
}

impl Machine {
    pub fn view(&self) -> MachineView {
        bench_shared::sync::lock(&self.view).clone()
    }

    /// Applies `f` to the view; publishes a `machine_state` event when something a user sees changed.
    fn update(&self, hub: &Hub, f: impl FnOnce(&mut MachineView)) {
        let (changed, view) = {
            let mut v = bench_shared::sync::lock(&self.view);
            let before = (v.state, v.ws_connected, v.models.clone(), v.last_error.clone());
            f(&mut v);
            let after = (v.state, v.ws_connected, v.models.clone(), v.last_error.clone());
            (before != after, v.clone())
        };
        if changed {
            tracing::info!(machine_id = %view.machine_id, state = ?view.state, ws = view.ws_connected,
                error = view.last_error.as_deref().unwrap_or(""), "machine state");
            hub.publish_event(&CentralEvent::MachineState(Box::new(MachineStateChange {
                machine_id: view.machine_id.clone(),
                machine: view,
            })));
        }
    }
}

/// Every configured machine.
#[derive(Debug)]
pub struct Fleet {
    machines: Vec<Arc<Machine>>,
}

impl Fleet {
    pub fn new(configs: &[MachineConfig], http: &reqwest::Client, settings: &Settings) -> Self {
        let machines = configs
            .iter()
            .map(|c| {
                Arc::new(Machine {
                    config: c.clone(),
                    id: MachineId::from(c.machine_id.as_str()),
                    client: AgentClient::new(http.clone(), c, settings.http_timeout),
                    view: Mutex::new(MachineView {
                        machine_id: c.machine_id.clone(),
                        label: c.label().to_owned(),
                        agent_base_url: c.base_url().to_owned(),
                        notes: c.notes.clone(),
                        state: MachineState::Offline,
                        ws_connected: false,
                        last_error: Some("not contacted yet".into()),
                        last_seen_s: None,
                        models: Vec::new(),
                        engine: None,
                        hardware: None,
                        health: None,
                        capabilities: None,
                        protocol: c.protocol.unwrap_or_default(),
                    }),
                    refresh: Notify::new(),
                })
            })
            .collect();
        Fleet { machines }
    }

    pub fn machines(&self) -> &[Arc<Machine>] {
        &self.machines
    }

    pub fn get(&self, machine_id: &str) -> Option<&Arc<Machine>> {
        self.machines.iter().find(|m| m.config.machine_id == machine_id)
    }

    pub fn views(&self) -> Vec<MachineView> {
        self.machines.iter().map(|m| m.view()).collect()
    }

    /// Starts one task per machine; they stop when `cancel` fires.
    pub fn spawn(&self, router: Arc<JobRouter>, hub: Hub, settings: Settings, cancel: CancellationToken) {
        for m in &self.machines {
            let (m, router, hub, settings, cancel) =
                (m.clone(), router.clone(), hub.clone(), settings.clone(), cancel.clone());
            tokio::spawn(async move {
                let originals = forward_original_events(&m, &router);
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = async {
                        tokio::join!(health_loop(&m, &hub, &settings), ws_loop(&m, &router, &hub, &settings), originals)
                    } => {}
                }
            });
        }
    }
}

/// Routes the events central makes of an original agent's broadcasts (see [`crate::original`]).
async fn forward_original_events(m: &Machine, router: &JobRouter) {
    let Some(mut events) = m.client.original().take_events() else { return };
    while let Some(event) = events.recv().await {
        router.route(&m.id, event);
    }
}

async fn health_loop(m: &Machine, hub: &Hub, settings: &Settings) {
    loop {
        refresh(m, hub).await;
        tokio::select! {
            _ = tokio::time::sleep(settings.health_interval) => {}
            _ = m.refresh.notified() => {}
        }
    }
}

/// One `/health` + `/capabilities` round, from the agent's cached engine status.
pub async fn refresh(m: &Machine, hub: &Hub) {
    refresh_with(m, hub, false).await
}

/// Like [`refresh`], but the agent probes its engine first (a model may have just been pulled).
pub async fn refresh_now(m: &Machine, hub: &Hub) {
    refresh_with(m, hub, true).await
}

async fn refresh_with(m: &Machine, hub: &Hub, fresh: bool) {
    let health = m.client.health().await;
    let caps = match &health {
        Ok(_) => Some(m.client.capabilities(fresh).await),
        Err(_) => None,
    };
    m.update(hub, |v| match health {
        Err(e) => {
            v.state = MachineState::Offline;
            v.last_error = Some(e.to_string());
        }
        Ok(h) => {
            v.state = if h.is_busy() { MachineState::Busy } else { MachineState::Online };
            v.last_seen_s = Some(crate::store::now_s());
            v.protocol = m.client.protocol();
            v.health = Some(h);
            let ws_error = v.last_error.as_deref().is_some_and(|e| e.starts_with("event stream"));
            if v.ws_connected || !ws_error {
                v.last_error = None;
            }
            match caps {
                Some(Err(e)) if e.is_token_refused() => {
                    v.state = MachineState::Unauthorized;
                    v.last_error = Some(UNAUTHORIZED.into());
                }
                Some(Ok(c)) => {
                    v.models = c.model_names();
                    v.engine = Some(c.engine.clone());
                    v.hardware = Some(c.hardware.clone());
                    v.capabilities = Some(c);
                }
                Some(Err(e)) => v.last_error = Some(format!("capabilities: {e}")),
                None => {}
            }
        }
    });
}

async fn ws_loop(m: &Machine, router: &JobRouter, hub: &Hub, settings: &Settings) {
    let mut attempt: u32 = 0;
    let mut ever_connected = false;
    loop {
        match connect(&m.config).await {
            Ok(stream) => {
                attempt = 0;
                ever_connected = true;
                m.update(hub, |v| v.ws_connected = true);
                m.refresh.notify_one();
                router.reconnected(&m.id);
                let why = read_events(m, router, stream, settings.ping_interval).await;
                tracing::warn!(machine_id = %m.config.machine_id, "agent WebSocket closed: {why}");
                // Runs with a job there probe it now: a killed agent is an error at once, not after `silence`.
                m.client.original().connection_lost(&why);
                router.connection_lost(&m.id);
                m.update(hub, |v| {
                    v.ws_connected = false;
                    v.last_error = Some(format!("event stream: {why}"));
                });
                // Health says at once whether the agent is still there.
                m.refresh.notify_one();
            }
            Err(e) => {
                // The health loop reports an unreachable agent; a refused WebSocket on an agent
                // that answers `/health` (wrong token, proxy) is worth saying, once.
                tracing::debug!(machine_id = %m.config.machine_id, "agent WebSocket connect failed: {e}");
                m.update(hub, |v| {
                    v.ws_connected = false;
                    // 429: the agent limits the wrong tokens it kept getting from central.
                    if (e.contains("401") || e.contains("429")) && v.state != MachineState::Offline {
                        v.state = MachineState::Unauthorized;
                        v.last_error = Some(UNAUTHORIZED.into());
                    } else if v.state != MachineState::Offline && v.last_error.is_none() {
                        v.last_error = Some(format!("event stream: {e}"));
                    }
                });
            }
        }
        tokio::time::sleep(reconnect_delay(attempt, ever_connected, settings)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Longest pause between reconnects to an agent that was connected and got lost: a restarted
/// agent is back in the race within 2 s, whatever the backoff had grown to while it was down.
pub const LOST_AGENT_RETRY_MAX: Duration = Duration::from_secs(2);

/// The pause before reconnect `attempt`: the capped backoff, and at most
/// [`LOST_AGENT_RETRY_MAX`] for an agent that was connected before (a machine never reached
/// backs off up to `backoff_max`).
pub fn reconnect_delay(attempt: u32, ever_connected: bool, settings: &Settings) -> Duration {
    if ever_connected {
        let lost = Settings { backoff_max: settings.backoff_max.min(LOST_AGENT_RETRY_MAX), ..settings.clone() };
        backoff(attempt, &lost)
    } else {
        backoff(attempt, settings)
    }
}

/// Exponential backoff with "equal jitter": a random delay in `[d/2, d]`, `d` capped.
pub fn backoff(attempt: u32, settings: &Settings) -> Duration {
    let d = settings.backoff_initial.saturating_mul(1u32 << attempt.min(16)).min(settings.backoff_max);
    let half = d / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(config: &MachineConfig) -> Result<WsStream, String> {
    let mut req = config.ws_url().into_client_request().map_err(|e| e.to_string())?;
    if let Some(token) = &config.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?;
        req.headers_mut().insert("authorization", value);
    }
    // wss:// with the machine's own CA when it has one; else the system's roots (rustls, ring).
    let connector = config.tls_client_config().map(tokio_tungstenite::Connector::Rustls);
    // `true`: no Nagle, so pings and pongs are not held back behind unacknowledged frames.
    let connecting = tokio_tungstenite::connect_async_tls_with_config(req, None, true, connector);
    match tokio::time::timeout(bench_shared::timeouts::CENTRAL_WS_CONNECT, connecting).await {
        Ok(Ok((stream, _))) => Ok(stream),
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(_) => Err("WebSocket connect timed out".into()),
    }
}

/// Pings that may go unanswered before the agent counts as gone (a partition, a stopped process).
const MISSED_PONGS: u32 = 2;

/// Routes every event until the stream ends; returns why it ended. Pings the agent every
/// `ping_interval` and gives up after [`MISSED_PONGS`] unanswered pings: a silent peer (a
/// SIGSTOPped agent, a cut cable) never closes the socket by itself.
async fn read_events(m: &Machine, router: &JobRouter, mut stream: WsStream, ping_interval: Duration) -> String {
    let mut heartbeat = tokio::time::interval(ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unanswered = 0u32;
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            _ = heartbeat.tick() => {
                if unanswered >= MISSED_PONGS {
                    return format!("no pong to {MISSED_PONGS} pings {:.1} s apart", ping_interval.as_secs_f64());
                }
                unanswered += 1;
                match tokio::time::timeout(ping_interval, stream.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => return error_chain(&e),
                    Err(_) => return "a ping could not be sent in time".into(),
                }
            }
        };
        let Some(msg) = msg else { break };
        // Any frame proves the agent alive, a pong or an event.
        unanswered = 0;
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(frame)) => {
                return format!("closed by agent ({})", frame.map(|f| f.reason.to_string()).unwrap_or_default());
            }
            Ok(_) => continue,
            Err(e) => return error_chain(&e),
        };
        match serde_json::from_str::<RawEnvelope>(&text) {
            // An original agent broadcasts its own jobs' events: central translates them.
            Ok(env) if m.client.protocol() == Protocol::Original => m.client.original().on_event(env),
            Ok(env) => {
                router.route(&m.id, Received::decode(env));
            }
            Err(e) => tracing::warn!(machine_id = %m.config.machine_id, "ignoring malformed agent event: {e}"),
        }
    }
    "stream ended".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = Settings {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            ..Settings::default()
        };
        for attempt in 0..40 {
            let d = (Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(16))).min(Duration::from_secs(10));
            let got = backoff(attempt, &s);
            assert!(got >= d / 2 && got <= d, "attempt {attempt}: {got:?} not in [{:?}, {d:?}]", d / 2);
        }
        assert!(backoff(100, &s) <= Duration::from_secs(10));
    }

    #[test]
    fn a_lost_agent_is_retried_within_two_seconds_at_every_attempt() {
        let s = Settings::default();
        for attempt in 0..40 {
            let lost = reconnect_delay(attempt, true, &s);
            assert!(lost <= LOST_AGENT_RETRY_MAX, "attempt {attempt}: {lost:?}");
            assert!(lost >= s.backoff_initial.min(LOST_AGENT_RETRY_MAX) / 2, "attempt {attempt}: {lost:?}");
        }
        assert!((10..40).any(|a| reconnect_delay(a, false, &s) > LOST_AGENT_RETRY_MAX), "never reached: backs off");
    }
}

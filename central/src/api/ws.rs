//! `GET /api/ws`: the browser's live feed.
//!
//! On connect the client gets `{"type":"hello","machines":[…],"running":[run ids]}`, then every
//! event central publishes: agent events (with `machine_id` and `run_id`), `run_start`, `run_end`,
//! `machine_status` and `machine_state`. A client that falls behind the broadcast buffer, or whose
//! socket does not take a frame within [`SEND_TIMEOUT`], is disconnected with a close reason: a
//! slow browser never slows a run. Central pings every `ping_interval` and drops a browser that
//! leaves two pings unanswered. At most `central.ws_max_subscribers` sockets (503 beyond).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bench_shared::feed::{CentralEvent, Hello};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;

const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A browser that leaves this many pings unanswered is gone (a sleeping laptop, a dead network).
const MISSED_PONGS: u32 = 2;
/// WebSocket close code for a client that fell behind ("policy violation").
const CLOSE_TOO_SLOW: u16 = bench_shared::close::POLICY;
/// WebSocket close code for a server going down ("going away").
const CLOSE_GOING_AWAY: u16 = bench_shared::close::GOING_AWAY;

pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let permit = match state.access.ws_cap.join() {
        Ok(p) => p,
        Err(full) => return full,
    };
    bench_server::ws::bounded(ws).on_upgrade(move |socket| async move {
        let _permit = permit;
        client(socket, state).await;
    })
}

async fn client(socket: WebSocket, state: AppState) {
    let mut rx = state.hub.subscribe();
    let (mut tx, mut incoming) = socket.split();
    let hello = CentralEvent::Hello(Hello { machines: state.fleet.views(), running: state.runs.running_ids() });
    if tx.send(Message::text(hello.line().text.as_ref())).await.is_err() {
        return;
    }
    // Reads what the browser sends (dropping it), so its pings are answered, its pongs counted
    // and a close is noticed.
    let (pong_tx, mut pongs) = tokio::sync::mpsc::channel::<()>(1);
    let mut reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            if matches!(msg, Message::Pong(_)) {
                let _ = pong_tx.try_send(());
            }
        }
    });
    let mut heartbeat = tokio::time::interval(state.settings.ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unanswered = 0u32;
    let close_reason = loop {
        tokio::select! {
            _ = state.cancel.cancelled() => break Some((CLOSE_GOING_AWAY, "central is shutting down".to_owned())),
            _ = &mut reader => break None,
            Some(()) = pongs.recv() => unanswered = 0,
            _ = heartbeat.tick() => {
                if unanswered >= MISSED_PONGS {
                    break Some((CLOSE_TOO_SLOW, format!("no pong to {MISSED_PONGS} pings")));
                }
                unanswered += 1;
                match tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => break Some((CLOSE_TOO_SLOW, "too slow: a ping was not accepted in time".to_owned())),
                }
            }
            msg = rx.recv() => match msg {
                Ok(line) => match tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::text(line.text.as_ref()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => break Some((CLOSE_TOO_SLOW, "too slow: a frame was not accepted in time".to_owned())),
                },
                Err(RecvError::Lagged(n)) => break Some((CLOSE_TOO_SLOW, format!("too slow: missed {n} events"))),
                Err(RecvError::Closed) => break None,
            },
        }
    };
    if let Some((code, reason)) = close_reason {
        tracing::info!("closing browser WebSocket: {reason}");
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = tokio::time::timeout(Duration::from_secs(1), tx.send(Message::Close(Some(frame)))).await;
    }
    reader.abort();
}

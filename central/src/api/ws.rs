//! `GET /api/ws`: the browser's live feed.
//!
//! On connect the client gets `{"type":"hello","machines":[…],"running":[run ids]}`, then every
//! event central publishes: agent events (with `machine_id` and `run_id`), `run_start`, `run_end`,
//! `machine_status` and `machine_state`. A client that falls behind the broadcast buffer, or whose
//! socket does not take a frame within [`SEND_TIMEOUT`], is disconnected with a close reason: a
//! slow browser never slows a run.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;

const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// WebSocket close code for a client that fell behind ("policy violation").
const CLOSE_TOO_SLOW: u16 = 1008;
/// WebSocket close code for a server going down ("going away").
const CLOSE_GOING_AWAY: u16 = 1001;

pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| client(socket, state))
}

async fn client(socket: WebSocket, state: AppState) {
    let mut rx = state.hub.subscribe();
    let (mut tx, mut incoming) = socket.split();
    let hello = json!({"type": "hello", "machines": state.fleet.views(), "running": state.runs.running_ids()});
    if tx.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    // Reads (and drops) what the browser sends, so pings are answered and a close is noticed.
    let mut reader = tokio::spawn(async move { while let Some(Ok(_)) = incoming.next().await {} });
    let close_reason = loop {
        tokio::select! {
            _ = state.cancel.cancelled() => break Some((CLOSE_GOING_AWAY, "central is shutting down".to_owned())),
            _ = &mut reader => break None,
            msg = rx.recv() => match msg {
                Ok(line) => match tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::text(line.as_ref()))).await {
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

//! `GET /ws[?job_id=…&after_seq=N]`: every event as one compact JSON text frame.
//!
//! With `job_id`, the job's events so far are replayed first (so connecting after `POST /jobs`
//! loses nothing), and the socket is closed normally after the job's terminal event (at once
//! when `after_seq` is already past it). At most `ws_max_subscribers` sockets live at once (503
//! beyond), each with small buffers (`bench_server::ws::bounded`).
//!
//! A slow client must never slow a benchmark: one task writes to the socket from a bounded
//! per-client buffer, this task only moves events from the hub into it without waiting. When
//! the buffer is full, or the hub's broadcast has moved on without this client, the client is
//! disconnected with a Close frame saying why and how to catch up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use bench_shared::close;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::jobs::parse_after_seq;
use super::state::AppState;
use crate::hub::{HubMsg, Subscription};

/// How long a closing socket may take to flush what it still owes the client.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::bad("upgrade", format!("{e}; connect with a WebSocket client")))?;
    let after_seq = parse_after_seq(&query)?;
    let permit = match state.ws_cap.join() {
        Ok(p) => p,
        Err(full) => return Ok(full),
    };
    let filter: Option<Arc<str>> = query.get("job_id").filter(|j| !j.is_empty()).map(|j| Arc::from(j.as_str()));
    // Subscribe before the upgrade completes so that nothing published meanwhile is missed.
    let sub = match &filter {
        Some(job) => {
            if state.jobs.get(job).is_none() && state.hub.events_full(job, 0).await.is_none() {
                return Err(ApiError::NotFound(format!("no job {job:?} on this agent")));
            }
            state.hub.subscribe_job_full(job, after_seq).await
        }
        None => Subscription { replay: Vec::new(), rx: state.hub.subscribe(), finished: false },
    };
    let limits = Limits {
        buffer: state.ws_client_buffer,
        closing: state.closing.clone(),
        slow_disconnects: state.ws_slow_disconnects.clone(),
    };
    Ok(bench_server::ws::bounded(ws).on_upgrade(move |socket| async move {
        let _permit = permit;
        serve_socket(socket, sub, filter, limits).await;
    }))
}

/// What a connection shares with the agent.
struct Limits {
    /// Events buffered for this client before it counts as too slow.
    buffer: usize,
    /// Agent shutdown.
    closing: CancellationToken,
    slow_disconnects: Arc<watch::Sender<u64>>,
}

/// Why the server ends a connection.
enum End {
    /// The client went away; nothing to say.
    ClientGone,
    /// Close after flushing what the client is owed.
    Graceful(u16, String),
    /// The client fell behind: drop what it is owed and close at once.
    TooSlow(String),
}

async fn serve_socket(socket: WebSocket, mut sub: Subscription, filter: Option<Arc<str>>, limits: Limits) {
    let closing = limits.closing;
    let (sink, mut incoming) = socket.split();
    let (tx, rx) = mpsc::channel::<Message>(limits.buffer);
    let stop_writer = CancellationToken::new();
    let mut writer = tokio::spawn(write_loop(sink, rx, stop_writer.clone()));

    let end = 'run: {
        // Replay is history, not live: it may wait for the socket.
        for msg in std::mem::take(&mut sub.replay) {
            let terminal = msg.terminal;
            tokio::select! {
                sent = tx.send(Message::text(msg.json.to_string())) => if sent.is_err() {
                    break 'run End::ClientGone;
                },
                _ = closing.cancelled() => break 'run End::Graceful(close::GOING_AWAY, "agent shutting down".into()),
            }
            if terminal {
                break 'run End::Graceful(close::NORMAL, "job finished".into());
            }
        }
        // `after_seq` at or past the terminal event of a finished job: nothing more will come.
        if filter.is_some() && sub.finished {
            break 'run End::Graceful(close::NORMAL, "job finished".into());
        }
        loop {
            tokio::select! {
                r = sub.rx.recv() => match r {
                    Ok(msg) => {
                        if let Some(end) = forward(&tx, &msg, filter.as_deref()) {
                            break 'run end;
                        }
                    }
                    Err(RecvError::Lagged(n)) => break 'run too_slow(&format!("{n} events were dropped")),
                    Err(RecvError::Closed) => break 'run End::Graceful(close::GOING_AWAY, "agent shutting down".into()),
                },
                m = incoming.next() => match m {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break 'run End::ClientGone,
                    // Client text is ignored; pings are answered by the protocol layer.
                    Some(Ok(_)) => {}
                },
                _ = closing.cancelled() => {
                    // The last job's terminal event is already in the hub: pass on what is queued.
                    while let Ok(msg) = sub.rx.try_recv() {
                        if let Some(end) = forward(&tx, &msg, filter.as_deref()) {
                            break 'run end;
                        }
                    }
                    break 'run End::Graceful(close::GOING_AWAY, "agent shutting down".into());
                }
            }
        }
    };

    drop(tx);
    let (code, reason) = match end {
        End::ClientGone => {
            stop_writer.cancel();
            let _ = writer.await;
            return;
        }
        End::Graceful(code, reason) => (code, reason),
        End::TooSlow(reason) => {
            tracing::warn!(%reason, "disconnecting a slow WebSocket client");
            stop_writer.cancel();
            limits.slow_disconnects.send_modify(|n| *n += 1);
            (close::POLICY, reason)
        }
    };
    let sink = match tokio::time::timeout(CLOSE_GRACE, &mut writer).await {
        Ok(joined) => joined,
        Err(_) => {
            stop_writer.cancel();
            writer.await
        }
    };
    if let Ok(mut sink) = sink {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// Hands one live event to the writer without waiting. `Some` ends the connection.
fn forward(tx: &mpsc::Sender<Message>, msg: &HubMsg, filter: Option<&str>) -> Option<End> {
    if filter.is_some_and(|f| f != &*msg.job_id) {
        return None;
    }
    match tx.try_send(Message::text(msg.json.to_string())) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return Some(too_slow(&format!("its buffer of {} events is full", tx.max_capacity())));
        }
        Err(mpsc::error::TrySendError::Closed(_)) => return Some(End::ClientGone),
    }
    (filter.is_some() && msg.terminal).then(|| End::Graceful(close::NORMAL, "job finished".into()))
}

/// The Close reason (at most 123 bytes by the protocol) for a client that fell behind.
fn too_slow(detail: &str) -> End {
    let mut reason = format!("client too slow: {detail}; replay with GET /jobs/{{id}}/events?after_seq=N");
    while reason.len() > 123 {
        reason.pop();
    }
    End::TooSlow(reason)
}

type Sink = SplitSink<WebSocket, Message>;

/// The only writer of the socket. Returns the sink so the caller can send the Close frame.
async fn write_loop(mut sink: Sink, mut rx: mpsc::Receiver<Message>, stop: CancellationToken) -> Sink {
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.cancelled() => return sink,
            m = rx.recv() => match m {
                Some(m) => m,
                None => return sink,
            },
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => return sink,
            sent = sink.send(msg) => if sent.is_err() { return sink },
        }
    }
}

//! Fan-out of events to browser WebSockets.
//!
//! One `broadcast` channel of pre-serialized JSON lines: a run or the fleet publishes once and every
//! browser client gets the same `Arc<str>`. Publishing never waits; a client that falls more than
//! the channel's capacity behind is disconnected by its own task (see `api::ws`), so a slow browser
//! can never slow a run.

use std::sync::Arc;

use tokio::sync::broadcast;

#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<str>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Hub { tx }
    }

    /// Sends one compact JSON object to every connected browser. Having no browser connected is
    /// normal, so a send without receivers is not an error.
    pub fn publish(&self, value: &serde_json::Value) {
        self.publish_line(value.to_string().into());
    }

    pub fn publish_line(&self, line: Arc<str>) {
        if self.tx.receiver_count() > 0 {
            // Err only means every receiver went away between the check and the send.
            let _ = self.tx.send(line);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    /// How many receivers are subscribed (browser sockets and `?wait` requests).
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

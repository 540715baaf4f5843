//! Fan-out of events to browser WebSockets.
//!
//! One `broadcast` channel of pre-serialized JSON lines ([`FeedLine`]: the text with its kind and
//! run id, so no reader parses it again): a run or the fleet publishes once and every browser client
//! gets the same `Arc<str>`. Publishing never waits; a client that falls more than
//! the channel's capacity behind is disconnected by its own task (see `api::ws`), so a slow browser
//! can never slow a run.

use bench_shared::feed::{CentralEvent, FeedLine};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::broadcast;

/// The `type` label of a relayed message.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<FeedLine>,
    /// Messages published, by their `type` (Prometheus `bench_central_relayed_messages_total`).
    relayed: Family<TypeLabel, Counter>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Hub { tx, relayed: Family::default() }
    }

    /// The relay counter (shared: clones count into the same family).
    pub fn relayed(&self) -> Family<TypeLabel, Counter> {
        self.relayed.clone()
    }

    /// Browser WebSockets subscribed now.
    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Sends one line to every connected browser. Having no browser connected is normal, so a
    /// send without receivers is not an error.
    pub fn publish(&self, line: FeedLine) {
        self.relayed.get_or_create(&TypeLabel { r#type: line.kind.to_string() }).inc();
        if self.tx.receiver_count() > 0 {
            // Err only means every receiver went away between the check and the send.
            let _ = self.tx.send(line);
        }
    }

    /// Serializes and sends one of central's own events.
    pub fn publish_event(&self, event: &CentralEvent) {
        self.publish(event.line());
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedLine> {
        self.tx.subscribe()
    }

    /// How many receivers are subscribed (browser sockets and `?wait` requests).
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

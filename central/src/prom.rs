//! Prometheus metrics of central (`GET /metrics`, text format; open like the rest of central's
//! API). Stored runs by status and machines by state are read at scrape time; messages relayed
//! to browsers are counted by the [`Hub`] as they go out.

use bench_shared::run::MachineState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::hub::Hub;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug)]
pub struct CentralMetrics {
    registry: Registry,
    runs: Family<StatusLabel, Gauge>,
    machines: Family<StateLabel, Gauge>,
    browser_clients: Gauge,
}

impl CentralMetrics {
    /// Registers every metric; the relay counter is the hub's own.
    pub fn new(hub: &Hub) -> Self {
        let mut r = Registry::with_prefix("bench_central");
        let (runs, machines, browser_clients) = (Family::default(), Family::default(), Gauge::default());
        r.register("runs", "Stored runs by status (running, complete, partial, failed, interrupted)", runs.clone());
        r.register("machines", "Configured machines by state (online, busy, offline)", machines.clone());
        r.register("browser_clients", "Browser WebSockets connected now", browser_clients.clone());
        r.register("relayed_messages", "Messages relayed to browsers, by event type", hub.relayed());
        CentralMetrics { registry: r, runs, machines, browser_clients }
    }

    /// Sets the scrape-time gauges and encodes everything.
    pub fn encode(&self, runs: &[(String, i64)], machines: &[MachineState], browser_clients: usize) -> String {
        for (status, n) in runs {
            self.runs.get_or_create(&StatusLabel { status: status.clone() }).set(*n);
        }
        for state in [MachineState::Online, MachineState::Busy, MachineState::Offline] {
            let n = machines.iter().filter(|m| **m == state).count() as i64;
            let name = serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            self.machines.get_or_create(&StateLabel { state: name }).set(n);
        }
        self.browser_clients.set(browser_clients as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

//! What central sends browsers (`GET /api/ws`) and writes to `events.ndjson`.
//!
//! Two kinds of line: central's own events ([`CentralEvent`], one `#[serde(tag = "type")]` enum)
//! and the agents' events it relays ([`Relayed`]: the agent's envelope, with central's
//! `machine_id` and the `run_id`). [`StoredLine`] reads either back from a run's
//! `events.ndjson`, typed, so a summary is folded from typed payloads only.

use serde::{Deserialize, Serialize};

use crate::engine::EngineInfo;
use crate::event::{RawEnvelope, Received};
use crate::hardware::Hardware;
use crate::job::TestType;
use crate::run::{MachineRunStatus, MachineView, RunMetadata, RunStatus, RunSummary};

/// Central's own events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CentralEvent {
    /// First message on a browser socket: the fleet and the runs in progress.
    Hello(Hello),
    /// A run was created (first line of its `events.ndjson`).
    RunStart(RunStart),
    /// A run ended (last line of its `events.ndjson`), with its summary when it could be written.
    RunEnd(Box<RunEnd>),
    /// Central changed a machine's status in a run (job accepted, refused, timed out, agent lost).
    MachineStatus(MachineStatus),
    /// A machine's fleet state changed (online, busy, offline, …); not stored in runs.
    MachineState(Box<MachineStateChange>),
    /// A machine's model pull progressed, ended or failed (`POST /api/models/pull`); not stored in runs.
    ModelPull(Box<crate::pull::MachinePull>),
}

/// Every kind of [`CentralEvent`], as on the wire (the docs' event reference is checked against it).
pub const KINDS: &[&str] = &["hello", "run_start", "run_end", "machine_status", "machine_state", "model_pull"];

impl CentralEvent {
    /// The wire name of the event type.
    pub fn kind(&self) -> &'static str {
        match self {
            CentralEvent::Hello(_) => "hello",
            CentralEvent::RunStart(_) => "run_start",
            CentralEvent::RunEnd(_) => "run_end",
            CentralEvent::MachineStatus(_) => "machine_status",
            CentralEvent::MachineState(_) => "machine_state",
            CentralEvent::ModelPull(_) => "model_pull",
        }
    }

    /// The run the event belongs to, if any.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            CentralEvent::RunStart(e) => Some(&e.run_id),
            CentralEvent::RunEnd(e) => Some(&e.run_id),
            CentralEvent::MachineStatus(e) => Some(&e.run_id),
            CentralEvent::Hello(_) | CentralEvent::MachineState(_) | CentralEvent::ModelPull(_) => None,
        }
    }

    /// `run_start` for a run just created.
    pub fn run_start(meta: &RunMetadata) -> CentralEvent {
        CentralEvent::RunStart(RunStart {
            run_id: meta.run_id.clone(),
            test_type: meta.test_type,
            models: meta.models.clone(),
            prompt: meta.prompt.clone(),
            start_at: meta.spec.start_at_ms(),
            started_at_s: meta.started_at_s,
            machines: meta
                .machines
                .iter()
                .map(|m| RunStartMachine {
                    machine_id: m.machine_id.clone(),
                    label: m.label.clone(),
                    status: m.status,
                    reason: m.reason.clone(),
                    engine: m.engine.clone(),
                    hardware: m.hardware.clone(),
                })
                .collect(),
        })
    }

    /// `run_end` for a run whose final files are written (`summary` `None` when they could not be).
    pub fn run_end(meta: &RunMetadata, ended_at_s: f64, summary: Option<&RunSummary>) -> CentralEvent {
        CentralEvent::RunEnd(Box::new(RunEnd {
            run_id: meta.run_id.clone(),
            status: meta.status,
            reason: meta.reason.clone(),
            ended_at_s,
            summary: summary.cloned(),
        }))
    }

    /// The compact JSON line, with its kind (serializing these types cannot fail: plain data,
    /// string keys).
    pub fn line(&self) -> FeedLine {
        FeedLine {
            kind: self.kind().into(),
            run_id: self.run_id().map(Into::into),
            text: serde_json::to_string(self).expect("central events serialize").into(),
        }
    }
}

/// One line for browsers and `events.ndjson`, with what a reader needs to route it without
/// parsing it again.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedLine {
    /// The line's `type`.
    pub kind: std::sync::Arc<str>,
    /// The run it belongs to, if any.
    pub run_id: Option<std::sync::Arc<str>>,
    /// The compact JSON object (no newline).
    pub text: std::sync::Arc<str>,
}

/// `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub machines: Vec<MachineView>,
    /// Ids of the runs in progress.
    pub running: Vec<String>,
}

/// `run_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    pub run_id: String,
    pub test_type: TestType,
    pub models: Vec<String>,
    pub prompt: Option<String>,
    /// The common start instant on central's clock, epoch ms.
    pub start_at: Option<u64>,
    pub started_at_s: f64,
    pub machines: Vec<RunStartMachine>,
}

/// A machine in `run_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStartMachine {
    pub machine_id: String,
    pub label: String,
    pub status: MachineRunStatus,
    pub reason: Option<String>,
    pub engine: Option<EngineInfo>,
    pub hardware: Option<Hardware>,
}

/// `run_end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    pub run_id: String,
    pub status: RunStatus,
    pub reason: Option<String>,
    pub ended_at_s: f64,
    pub summary: Option<RunSummary>,
}

/// `machine_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineStatus {
    pub run_id: String,
    pub machine_id: String,
    pub status: MachineRunStatus,
    pub reason: Option<String>,
    pub job_id: Option<String>,
}

/// `machine_state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineStateChange {
    pub machine_id: String,
    pub machine: MachineView,
}

/// An agent event as central relays and stores it: the envelope as the agent sent it (payload
/// untouched, so kinds central does not know lose nothing), with central's id of the machine in
/// `machine_id` and the run it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Relayed {
    pub run_id: String,
    pub received: Received,
}

/// The stored form of [`Relayed`]: the envelope's fields and `run_id`.
#[derive(Serialize, Deserialize)]
struct RelayedWire<E, S> {
    #[serde(flatten)]
    env: E,
    #[serde(default)]
    run_id: S,
}

impl Relayed {
    /// The envelope as received.
    pub fn env(&self) -> &RawEnvelope {
        &self.received.env
    }

    /// The compact JSON line, with its kind.
    pub fn line(&self) -> FeedLine {
        let wire = RelayedWire { env: &self.received.env, run_id: self.run_id.as_str() };
        FeedLine {
            kind: self.received.env.kind.as_str().into(),
            run_id: Some(self.run_id.as_str().into()),
            // An envelope is plain data with string keys: serializing it cannot fail.
            text: serde_json::to_string(&wire).expect("an envelope serializes").into(),
        }
    }
}

/// One line of a run's `events.ndjson`, read back typed.
// Agent events are nearly every line: boxing them would cost an allocation per token.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StoredLine {
    Central(CentralEvent),
    /// An agent event central relayed.
    Agent(Relayed),
}

impl StoredLine {
    /// Reads one line: central's kinds by their enum, anything else as an agent envelope.
    pub fn parse(line: &str) -> Result<StoredLine, serde_json::Error> {
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        let kind: Kind<'_> = serde_json::from_str(line)?;
        if KINDS.contains(&kind.kind.as_ref()) {
            serde_json::from_str(line).map(StoredLine::Central)
        } else {
            let wire: RelayedWire<RawEnvelope, String> = serde_json::from_str(line)?;
            Ok(StoredLine::Agent(Relayed { run_id: wire.run_id, received: Received::decode(wire.env) }))
        }
    }

    /// Every complete line of `events.ndjson` (a torn or unreadable line is skipped, with a
    /// warning from the caller's side: it carries nothing a summary could use).
    pub fn parse_all(bytes: &[u8]) -> Vec<StoredLine> {
        String::from_utf8_lossy(bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| Self::parse(l).ok())
            .collect()
    }

    /// The compact JSON line, with its kind, as written to `events.ndjson` and sent to browsers.
    pub fn line(&self) -> FeedLine {
        match self {
            StoredLine::Central(e) => e.line(),
            StoredLine::Agent(r) => r.line(),
        }
    }

    /// The machine the line is about, if any.
    pub fn machine_id(&self) -> Option<&str> {
        match self {
            StoredLine::Central(CentralEvent::MachineStatus(s)) => Some(&s.machine_id),
            StoredLine::Central(CentralEvent::MachineState(s)) => Some(&s.machine_id),
            StoredLine::Central(_) => None,
            StoredLine::Agent(r) => Some(&r.received.env.machine_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn every_central_event_kind_is_in_docs_events_md() {
        use crate::reference::{PROBE, expected_names, read_doc, undocumented};
        let err = serde_json::from_value::<CentralEvent>(json!({"type": PROBE})).unwrap_err();
        let kinds = expected_names(&err.to_string(), "variant").expect("serde lists central's event kinds");
        assert_eq!(kinds, KINDS, "KINDS is serde's list of tags, in order");
        let missing =
            undocumented(&read_doc(env!("CARGO_MANIFEST_DIR"), "events.md"), kinds.iter().map(String::as_str));
        assert!(missing.is_empty(), "docs/events.md lacks these central event kinds: {missing:?}");
    }

    #[test]
    fn kinds_match_the_tags() {
        let status = CentralEvent::MachineStatus(MachineStatus {
            run_id: "r".into(),
            machine_id: "m".into(),
            status: MachineRunStatus::Running,
            reason: None,
            job_id: Some("j".into()),
        });
        let v: Value = serde_json::to_value(&status).unwrap();
        assert_eq!(
            v,
            json!({"type": "machine_status", "run_id": "r", "machine_id": "m", "status": "running",
                             "reason": null, "job_id": "j"})
        );
        assert!(KINDS.contains(&status.kind()));
        let line = status.line();
        assert_eq!((&*line.kind, line.run_id.as_deref()), ("machine_status", Some("r")));
        assert_eq!(StoredLine::parse(&line.text).unwrap(), StoredLine::Central(status));
        let hello = CentralEvent::Hello(Hello { machines: vec![], running: vec!["r1".into()] });
        assert_eq!(serde_json::to_value(&hello).unwrap(), json!({"type": "hello", "machines": [], "running": ["r1"]}));
        assert!(KINDS.contains(&hello.kind()));
    }

    #[test]
    fn agent_lines_are_read_as_agent_events_known_or_not() {
        let token = r#"{"job_id":"j","seq":2,"machine_id":"m","type":"llm_token","run_id":"r","emitted_at_s":1.0,"payload":{"text":"Hi","timestamp_s":1.5,"repeat_index":0}}"#;
        let stored = StoredLine::parse(token).unwrap();
        let StoredLine::Agent(r) = &stored else { panic!() };
        assert_eq!(r.run_id, "r");
        assert!(matches!(r.received.event, crate::event::Decoded::Known(crate::event::Event::LlmToken(_))));
        let back: Value = serde_json::from_str(&stored.line().text).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(token).unwrap(), "written back as read");
        let novel = r#"{"job_id":"j","seq":3,"machine_id":"m","type":"gpu_dance","payload":{"steps":3}}"#;
        let StoredLine::Agent(r) = StoredLine::parse(novel).unwrap() else { panic!() };
        assert!(matches!(r.received.event, crate::event::Decoded::Unknown));
        assert_eq!(r.received.env.payload, json!({"steps": 3}));
        let lines = format!("{token}\n{{torn\n{novel}\n");
        assert_eq!(StoredLine::parse_all(lines.as_bytes()).len(), 2);
    }
}

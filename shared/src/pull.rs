//! Fleet model management: which machines have which model, and pulls of a model onto the
//! machines that lack it (central's `GET /api/models`, `POST /api/models/pull`, and its
//! `model_pull` events). The agent's own pull API is in [`crate::api`] (`PullRequest`,
//! `PullAccepted`, `RunningPull`).

use serde::{Deserialize, Serialize};

use crate::engine::EngineKind;
use crate::run::{MachineState, MachineView};

/// Where one machine's pull of a model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullState {
    /// Central is asking the agent to start.
    Starting,
    /// The agent accepted; progress events follow.
    Running,
    /// The engine has the model.
    Done,
    /// The pull failed (or was not started); `error` says why.
    Failed,
}

impl PullState {
    pub fn is_finished(self) -> bool {
        matches!(self, PullState::Done | PullState::Failed)
    }
}

/// One machine's part in a fleet pull (central's `model_pull` event and API answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachinePull {
    /// Central's id of the fleet pull this belongs to.
    pub pull_id: String,
    pub model: String,
    pub machine_id: String,
    /// The agent's job id of the pull, once it accepted.
    pub job_id: Option<String>,
    pub state: PullState,
    /// The engine's last words (`pulling manifest`, `verifying sha256 digest`, …).
    pub status: Option<String>,
    pub completed_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// Why it failed (the agent's or engine's reason), when it did.
    pub error: Option<String>,
    pub started_at_s: f64,
    pub ended_at_s: Option<f64>,
}

/// `POST /api/models/pull` on central: pull `model` on `machine_ids`, or (without them) on
/// every reachable machine that lacks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetPullRequest {
    pub model: String,
    #[serde(default)]
    pub machine_ids: Option<Vec<String>>,
}

/// A machine left out of a fleet pull, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullSkipped {
    pub machine_id: String,
    pub reason: String,
}

/// `202` answer of central's `POST /api/models/pull`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPullStarted {
    pub pull_id: String,
    pub model: String,
    /// One entry per machine asked (its state is `starting`, or `failed` with the reason).
    pub machines: Vec<MachinePull>,
    /// Machines not asked: they have the model, or are offline / unauthorized.
    pub skipped: Vec<PullSkipped>,
}

/// `GET /api/models` on central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsView {
    /// Every model some machine reports, with where it is and is not.
    pub models: Vec<ModelAvailability>,
    /// The machines, in configuration order, with whether they can pull.
    pub machines: Vec<PullTarget>,
    /// Pulls running now and the last finished ones.
    pub pulls: Vec<MachinePull>,
}

/// One model across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelAvailability {
    pub model: String,
    /// Machines whose engine lists the model.
    pub present_on: Vec<String>,
    /// Reachable machines whose engine does not list it.
    pub missing_on: Vec<String>,
}

/// A machine as a pull target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullTarget {
    pub machine_id: String,
    pub label: String,
    pub state: MachineState,
    pub engine: Option<EngineKind>,
    /// The engine can pull models (Ollama); `None` when central does not know the engine yet.
    pub can_pull: Option<bool>,
}

impl PullTarget {
    pub fn of(v: &MachineView) -> PullTarget {
        let engine = v.engine.as_ref().map(|e| e.kind);
        // An original bench-race agent has no pull endpoint of this kind.
        let can_pull = if v.protocol.is_native() { engine.map(|k| k == EngineKind::Ollama) } else { Some(false) };
        PullTarget { machine_id: v.machine_id.clone(), label: v.label.clone(), state: v.state, engine, can_pull }
    }

    /// Central can talk to it now.
    pub fn reachable(&self) -> bool {
        matches!(self.state, MachineState::Online | MachineState::Busy)
    }
}

/// Which machine has which model, from the fleet's views (models sorted by name).
pub fn availability(views: &[MachineView]) -> Vec<ModelAvailability> {
    let mut names: Vec<&str> = views.iter().flat_map(|v| v.models.iter().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|model| ModelAvailability {
            model: model.to_owned(),
            present_on: views
                .iter()
                .filter(|v| v.models.iter().any(|m| m == model))
                .map(|v| v.machine_id.clone())
                .collect(),
            missing_on: views
                .iter()
                .filter(|v| PullTarget::of(v).reachable() && !v.models.iter().any(|m| m == model))
                .map(|v| v.machine_id.clone())
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, state: MachineState, models: &[&str]) -> MachineView {
        MachineView {
            machine_id: id.into(),
            label: id.into(),
            agent_base_url: String::new(),
            notes: None,
            state,
            ws_connected: true,
            last_error: None,
            last_seen_s: None,
            models: models.iter().map(|m| m.to_string()).collect(),
            engine: None,
            hardware: None,
            health: None,
            capabilities: None,
            protocol: Default::default(),
        }
    }

    #[test]
    fn availability_names_where_each_model_is_and_is_not() {
        let views = [
            view("a", MachineState::Online, &["llama3.2:1b", "qwen3:0.6b"]),
            view("b", MachineState::Busy, &["qwen3:0.6b"]),
            view("c", MachineState::Offline, &[]),
        ];
        let got = availability(&views);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].model, "llama3.2:1b");
        assert_eq!(
            (got[0].present_on.clone(), got[0].missing_on.clone()),
            (vec!["a".to_owned()], vec!["b".to_owned()])
        );
        assert_eq!(got[1].present_on, ["a", "b"]);
        assert!(got[1].missing_on.is_empty(), "an offline machine is not counted as lacking it");
        assert!(PullState::Failed.is_finished() && !PullState::Running.is_finished());
    }
}

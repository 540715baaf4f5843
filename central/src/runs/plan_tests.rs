//! Unit tests of [`super::plan`]: who runs, who is skipped and why, and each start time.

use std::collections::HashMap;
use std::time::Duration;

use bench_shared::api::{Capabilities, EngineHealth, Health};
use bench_shared::engine::EngineKind;
use bench_shared::job::{GenerateSpec, JobSpec};
use bench_shared::run::{MachineRunStatus, MachineState, MachineView};

use super::{able, plan};
use crate::clock::Estimate;

const NOW: u64 = 1_800_000_000_000;
const LEAD: Duration = Duration::from_millis(1500);

fn view(id: &str) -> MachineView {
    MachineView {
        machine_id: id.into(),
        label: format!("{id} box"),
        agent_base_url: format!("http://{id}:9001"),
        notes: None,
        state: MachineState::Online,
        ws_connected: true,
        last_error: None,
        last_seen_s: Some(1.0),
        models: vec!["llm".into()],
        engine: None,
        hardware: None,
        health: Some(Health {
            ok: true,
            machine_id: id.into(),
            label: id.into(),
            engine: EngineHealth {
                kind: EngineKind::Openai,
                base_url: "http://127.0.0.1:8091".into(),
                reachable: true,
                checked_age_s: Some(1.0),
                error: None,
            },
            busy: false,
            queue_len: 0,
            ws_slow_disconnects: 0,
        }),
        capabilities: None,
        protocol: Default::default(),
    }
}

fn job(model: &str) -> JobSpec {
    JobSpec::LlmGenerate(GenerateSpec::new(model, "p"))
}

fn offset(ms: f64) -> Result<Estimate, String> {
    Ok(Estimate { offset_ms: ms, rtt_ms: 0.4, samples: 5 })
}

#[test]
fn every_reason_to_skip_is_named() {
    let ok = view("ok");
    let mut offline = view("offline");
    offline.state = MachineState::Offline;
    offline.last_error = Some("agent unreachable: connection refused".into());
    let mut unauth = view("unauth");
    unauth.state = MachineState::Unauthorized;
    unauth.last_error = Some("agent refused central's token (401)".into());
    let mut down = view("down");
    if let Some(h) = down.health.as_mut() {
        h.engine.reachable = false;
        h.engine.error = Some("connection refused".into());
    }
    let mut other_model = view("other");
    other_model.models = vec!["small".into()];
    let mut old = view("old");
    let mut caps: Capabilities = serde_json::from_value(serde_json::json!({
        "machine_id": "old", "label": "old", "tests": ["llm_sweep"], "llm_models": ["llm"],
        "engine": {"kind": "openai", "base_url": "http://e", "reachable": true},
        "hardware": {"os": null, "hostname": null, "cpu_brand": null, "cpu_logical_cores": 2, "cpu_physical_cores": null,
                     "memory_total_bytes": 1, "gpus": []}
    }))
    .unwrap();
    caps.models.clear();
    old.capabilities = Some(caps);

    let views = [ok, offline, unauth, down, other_model, old];
    let offsets: HashMap<_, _> = [("ok".to_owned(), offset(0.0))].into();
    let p = plan(&views, &job("llm"), &offsets, NOW, LEAD);
    let got: Vec<(&str, MachineRunStatus, Option<&str>)> =
        p.machines.iter().map(|m| (m.machine_id.as_str(), m.status, m.reason.as_deref())).collect();
    assert_eq!(got[0], ("ok", MachineRunStatus::Pending, None));
    assert_eq!(
        got[1],
        ("offline", MachineRunStatus::Skipped, Some("agent offline: agent unreachable: connection refused"))
    );
    assert_eq!(got[2], ("unauth", MachineRunStatus::Skipped, Some("agent refused central's token (401)")));
    assert_eq!(
        got[3],
        ("down", MachineRunStatus::Skipped, Some("engine unreachable at http://127.0.0.1:8091: connection refused"))
    );
    assert_eq!(got[4], ("other", MachineRunStatus::Skipped, Some("model llm not available (machine has: small)")));
    assert_eq!(got[5], ("old", MachineRunStatus::Skipped, Some("agent does not support llm_generate")));
    assert_eq!(p.runners().map(|m| m.machine_id.as_str()).collect::<Vec<_>>(), ["ok"]);
    assert!(p.nobody_reason().is_none());
    assert!(able(&views[0], &job("llm")) && !able(&views[1], &job("llm")));
    // Only runners get a clock entry.
    assert_eq!(p.clock.machines.keys().collect::<Vec<_>>(), ["ok"]);
}

#[test]
fn each_runner_starts_at_the_common_instant_on_its_own_clock() {
    let views = [view("ahead"), view("behind"), view("unmeasured"), view("late")];
    let offsets: HashMap<_, _> = [
        ("ahead".to_owned(), offset(5000.4)),
        ("behind".to_owned(), offset(-250.6)),
        ("unmeasured".to_owned(), Err("clock offset not measured (GET /time): agent answered HTTP 404".to_owned())),
    ]
    .into();
    let p = plan(&views, &job("llm"), &offsets, NOW, LEAD);
    let start = NOW + 1500;
    assert_eq!((p.start_at_ms, p.clock.start_at_ms), (start, start));
    assert_eq!(p.agent_start_at_ms("ahead"), Some(start + 5000));
    assert_eq!(p.agent_start_at_ms("behind"), Some(start - 251));
    // Without an offset a machine starts uncorrected, and the record says why.
    assert_eq!(p.agent_start_at_ms("unmeasured"), Some(start));
    let why = p.clock.machines["unmeasured"].reason.as_deref().unwrap();
    assert!(why.contains("GET /time"), "{why}");
    assert!(p.clock.machines["late"].reason.as_deref().unwrap().contains("became able after the measurement"));
    assert_eq!(p.clock.machines["ahead"].offset_ms, Some(5000.4));
    assert_eq!(p.agent_start_at_ms("nobody"), None);
}

#[test]
fn nobody_runs_when_every_machine_is_skipped_and_the_reason_lists_each() {
    let mut a = view("a");
    a.models = vec![];
    let p = plan(&[a], &job("llm"), &HashMap::new(), NOW, LEAD);
    assert_eq!(p.nobody_reason().as_deref(), Some("a: model llm not available (machine has: )"));
    assert!(p.clock.machines.is_empty());
    let empty = plan(&[], &job("llm"), &HashMap::new(), NOW, LEAD);
    assert_eq!(empty.nobody_reason().as_deref(), Some("no machine selected"));
}

#[test]
fn workload_skips_name_the_engine_and_the_missing_checkpoint() {
    use bench_shared::api::WorkloadEngine;
    let with = |id: &str, image: Option<(bool, &[&str])>| {
        let mut v = view(id);
        let mut caps: Capabilities = serde_json::from_value(serde_json::json!({
            "machine_id": id, "label": id, "tests": ["llm_generate", "compute"], "llm_models": [],
            "engine": {"kind": "openai", "base_url": "http://e", "reachable": true},
            "hardware": {"os": null, "hostname": null, "cpu_brand": null, "cpu_logical_cores": 2,
                         "cpu_physical_cores": null, "memory_total_bytes": 1, "gpus": []}
        }))
        .unwrap();
        if let Some((reachable, ckpts)) = image {
            caps.sdxl_profiles = ckpts.iter().map(|c| c.to_string()).collect();
            if reachable && !ckpts.is_empty() {
                caps.tests.push("image_generate".into());
            }
            caps.image_engine = Some(WorkloadEngine {
                kind: "comfyui".into(),
                base_url: "http://127.0.0.1:8188".into(),
                reachable,
                version: None,
                models: caps.sdxl_profiles.clone(),
                error: None,
            });
        }
        // The LLM engine being down does not keep a machine out of an image or compute race.
        if let Some(h) = v.health.as_mut() {
            h.engine.reachable = false;
        }
        v.capabilities = Some(caps);
        v
    };
    let views = [
        with("ok", Some((true, &["sd15.safetensors"]))),
        with("down", Some((false, &[]))),
        with("other", Some((true, &["sdxl.safetensors"]))),
        with("none", None),
    ];
    let spec: bench_shared::workload::image::ImageSpec =
        serde_json::from_value(serde_json::json!({"prompt": "fox", "checkpoint": "sd15.safetensors"})).unwrap();
    let p = plan(&views, &JobSpec::ImageGenerate(spec), &HashMap::new(), NOW, LEAD);
    let reasons: Vec<Option<&str>> = p.machines.iter().map(|m| m.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        [
            None,
            Some("image engine unreachable at http://127.0.0.1:8188"),
            Some("checkpoint sd15.safetensors not available (machine has: sdxl.safetensors)"),
            Some("no image engine configured on this agent (image_engine)"),
        ]
    );
    let compute: bench_shared::workload::compute::ComputeSpec = serde_json::from_value(serde_json::json!({})).unwrap();
    let p = plan(&views, &JobSpec::Compute(compute), &HashMap::new(), NOW, LEAD);
    assert!(p.machines.iter().all(|m| m.status == MachineRunStatus::Pending), "{:?}", p.machines);
}

//! ComfyUI's wire formats, decoded into types (pure; unit-tested on messages as ComfyUI sends
//! them). Sources: ComfyUI's server (`/prompt`, `/history`, `/view`, `/object_info`, `/queue`)
//! and its WebSocket (`/ws?clientId=`: JSON `{type, data}` text frames; binary preview frames
//! `[u32 BE event = 1][u32 BE format: 1 JPEG, 2 PNG][image bytes]`).

use std::collections::BTreeMap;

use bench_shared::workload::image::ImageSpec;
use serde::Deserialize;
use serde_json::{Value, json};

/// A text frame of ComfyUI's WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    Status(StatusData),
    ExecutionStart(PromptRef),
    ExecutionCached(Cached),
    Executing(Executing),
    Progress(Progress),
    Executed(Executing),
    ExecutionSuccess(PromptRef),
    ExecutionError(ExecError),
    ExecutionInterrupted(ExecError),
    /// A type this client does not use (custom nodes send their own).
    Other,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusData {
    #[serde(default)]
    pub status: Option<StatusInner>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusInner {
    #[serde(default)]
    pub exec_info: Option<ExecInfo>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExecInfo {
    #[serde(default)]
    pub queue_remaining: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PromptRef {
    #[serde(default)]
    pub prompt_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cached {
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub prompt_id: Option<String>,
}

/// `executing {node, prompt_id}` (`node: null`: the prompt finished) and `executed`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Executing {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub prompt_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Progress {
    pub value: u32,
    pub max: u32,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub prompt_id: Option<String>,
}

/// `execution_error` / `execution_interrupted` (and the same in `/history` messages).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExecError {
    #[serde(default)]
    pub prompt_id: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub exception_type: Option<String>,
    #[serde(default)]
    pub exception_message: Option<String>,
}

impl ExecError {
    pub fn describe(&self) -> String {
        format!(
            "node {} ({}) failed: {}{}",
            self.node_id.as_deref().unwrap_or("?"),
            self.node_type.as_deref().unwrap_or("unknown class"),
            self.exception_type.as_deref().map(|t| format!("{t}: ")).unwrap_or_default(),
            self.exception_message.as_deref().unwrap_or("no message").trim()
        )
    }
}

impl WsMessage {
    /// Decodes a text frame; a frame that is not `{type, data}` JSON is an error.
    pub fn parse(text: &str) -> Result<WsMessage, String> {
        let bad = |e: serde_json::Error| format!("unreadable ComfyUI WebSocket message ({e}): {}", short(text));
        let raw: RawMessage = serde_json::from_str(text).map_err(bad)?;
        let d = raw.data;
        Ok(match raw.kind.as_str() {
            "status" => WsMessage::Status(serde_json::from_value(d).map_err(bad)?),
            "execution_start" => WsMessage::ExecutionStart(serde_json::from_value(d).map_err(bad)?),
            "execution_cached" => WsMessage::ExecutionCached(serde_json::from_value(d).map_err(bad)?),
            "executing" => WsMessage::Executing(serde_json::from_value(d).map_err(bad)?),
            "progress" => WsMessage::Progress(serde_json::from_value(d).map_err(bad)?),
            "executed" => WsMessage::Executed(serde_json::from_value(d).map_err(bad)?),
            "execution_success" => WsMessage::ExecutionSuccess(serde_json::from_value(d).map_err(bad)?),
            "execution_error" => WsMessage::ExecutionError(serde_json::from_value(d).map_err(bad)?),
            "execution_interrupted" => WsMessage::ExecutionInterrupted(serde_json::from_value(d).map_err(bad)?),
            _ => WsMessage::Other,
        })
    }

    /// The prompt the message is about, when it says.
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            WsMessage::ExecutionStart(p) | WsMessage::ExecutionSuccess(p) => p.prompt_id.as_deref(),
            WsMessage::ExecutionCached(c) => c.prompt_id.as_deref(),
            WsMessage::Executing(e) | WsMessage::Executed(e) => e.prompt_id.as_deref(),
            WsMessage::Progress(p) => p.prompt_id.as_deref(),
            WsMessage::ExecutionError(e) | WsMessage::ExecutionInterrupted(e) => e.prompt_id.as_deref(),
            WsMessage::Status(_) | WsMessage::Other => None,
        }
    }
}

/// A preview frame's image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewFormat {
    Jpeg,
    Png,
}

impl PreviewFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            PreviewFormat::Jpeg => "image/jpeg",
            PreviewFormat::Png => "image/png",
        }
    }
}

/// Decodes a binary frame: `Some` for a preview image (event 1), `None` for other events.
pub fn parse_binary(frame: &[u8]) -> Option<(PreviewFormat, &[u8])> {
    let event = u32::from_be_bytes(frame.get(0..4)?.try_into().ok()?);
    if event != 1 {
        return None;
    }
    let format = match u32::from_be_bytes(frame.get(4..8)?.try_into().ok()?) {
        1 => PreviewFormat::Jpeg,
        2 => PreviewFormat::Png,
        _ => return None,
    };
    let image = &frame[8..];
    (!image.is_empty()).then_some((format, image))
}

/// `POST /prompt` accepted it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PromptAccepted {
    pub prompt_id: String,
    #[serde(default)]
    pub number: Option<i64>,
}

/// Why `POST /prompt` refused a prompt: the error and every node at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    /// `(node id, class_type, what is wrong)`, in node-id order.
    pub nodes: Vec<(String, String, String)>,
    /// A `ckpt_name` not in ComfyUI's list (`value_not_in_list` on the checkpoint loader).
    pub missing_checkpoint: bool,
}

#[derive(Debug, Deserialize)]
struct RefusalBody {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    node_errors: Option<BTreeMap<String, NodeErrors>>,
}

#[derive(Debug, Deserialize)]
struct NodeErrors {
    #[serde(default)]
    errors: Vec<NodeError>,
    #[serde(default)]
    class_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NodeError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorObject {
    #[serde(default)]
    message: Option<String>,
}

/// Decodes a refused `POST /prompt` answer (ComfyUI: 400 with `error` and `node_errors`).
pub fn parse_refusal(status: u16, body: &str) -> Refusal {
    let Ok(parsed) = serde_json::from_str::<RefusalBody>(body) else {
        return Refusal {
            message: format!("HTTP {status}: {}", short(body)),
            nodes: Vec::new(),
            missing_checkpoint: false,
        };
    };
    let message = match parsed.error {
        Some(Value::String(s)) => s,
        Some(v) => serde_json::from_value::<ErrorObject>(v)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or_else(|| format!("HTTP {status}")),
        None => format!("HTTP {status}"),
    };
    let mut missing_checkpoint = false;
    let nodes = parsed
        .node_errors
        .unwrap_or_default()
        .into_iter()
        .map(|(id, n)| {
            let class = n.class_type.unwrap_or_else(|| "unknown class".into());
            let what: Vec<String> = n
                .errors
                .iter()
                .map(|e| {
                    if e.kind.as_deref() == Some("value_not_in_list") && class == "CheckpointLoaderSimple" {
                        missing_checkpoint = true;
                    }
                    match (&e.message, &e.details) {
                        (Some(m), Some(d)) if !d.is_empty() => format!("{m}: {d}"),
                        (Some(m), _) => m.clone(),
                        (None, Some(d)) => d.clone(),
                        (None, None) => e.kind.clone().unwrap_or_else(|| "invalid".into()),
                    }
                })
                .collect();
            (id, class, what.join("; "))
        })
        .collect();
    Refusal { message, nodes, missing_checkpoint }
}

impl Refusal {
    pub fn describe(&self) -> String {
        let nodes: Vec<String> =
            self.nodes.iter().map(|(id, class, what)| format!("node {id} ({class}): {what}")).collect();
        if nodes.is_empty() {
            format!("ComfyUI refused the prompt: {}", self.message)
        } else {
            format!("ComfyUI refused the prompt: {} — {}", self.message, nodes.join("; "))
        }
    }
}

/// An image a finished prompt wrote, as `/history` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OutputImage {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// A prompt's entry in `GET /history/{prompt_id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// `success`, `error` …
    pub status: String,
    pub completed: bool,
    /// Output images (`type: output`), in node-id order.
    pub images: Vec<OutputImage>,
    /// The `execution_error` (or `execution_interrupted`) among its messages.
    pub error: Option<(bool, ExecError)>,
}

#[derive(Debug, Deserialize)]
struct HistoryEntry {
    #[serde(default)]
    outputs: BTreeMap<String, NodeOutput>,
    #[serde(default)]
    status: Option<HistoryStatus>,
}

#[derive(Debug, Deserialize)]
struct NodeOutput {
    #[serde(default)]
    images: Vec<OutputImage>,
}

#[derive(Debug, Deserialize)]
struct HistoryStatus {
    #[serde(default)]
    status_str: Option<String>,
    #[serde(default)]
    completed: bool,
    #[serde(default)]
    messages: Vec<(String, Value)>,
}

/// Decodes `/history/{prompt_id}`: `Ok(None)` while the prompt has no entry yet (`{}`).
pub fn parse_history(prompt_id: &str, body: &str) -> Result<Option<History>, String> {
    let mut all: BTreeMap<String, HistoryEntry> =
        serde_json::from_str(body).map_err(|e| format!("unreadable ComfyUI /history answer ({e}): {}", short(body)))?;
    let Some(entry) = all.remove(prompt_id) else { return Ok(None) };
    let status = entry.status.unwrap_or(HistoryStatus { status_str: None, completed: false, messages: Vec::new() });
    let error = status.messages.iter().find_map(|(kind, data)| {
        let interrupted = kind == "execution_interrupted";
        (kind == "execution_error" || interrupted)
            .then(|| serde_json::from_value::<ExecError>(data.clone()).ok().map(|e| (interrupted, e)))
            .flatten()
    });
    let images = entry
        .outputs
        .into_values()
        .flat_map(|o| o.images)
        .filter(|i| i.kind.is_empty() || i.kind == "output")
        .collect();
    Ok(Some(History { status: status.status_str.unwrap_or_default(), completed: status.completed, images, error }))
}

/// The checkpoint names of `GET /object_info/CheckpointLoaderSimple`
/// (`input.required.ckpt_name[0]`: a list, or `["COMBO", {options}]` in newer versions).
pub fn parse_checkpoints(body: &str) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Node {
        input: Inputs,
    }
    #[derive(Deserialize)]
    struct Inputs {
        required: BTreeMap<String, Vec<Value>>,
    }
    #[derive(Deserialize)]
    struct Combo {
        options: Vec<String>,
    }
    let all: BTreeMap<String, Node> =
        serde_json::from_str(body).map_err(|e| format!("unreadable /object_info answer ({e}): {}", short(body)))?;
    let node = all.get("CheckpointLoaderSimple").ok_or("ComfyUI has no CheckpointLoaderSimple node")?;
    let spec = node.input.required.get("ckpt_name").ok_or("CheckpointLoaderSimple has no ckpt_name input")?;
    match spec.first() {
        Some(Value::Array(list)) => Ok(list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()),
        Some(Value::String(s)) if s == "COMBO" => spec
            .get(1)
            .and_then(|o| serde_json::from_value::<Combo>(o.clone()).ok())
            .map(|c| c.options)
            .ok_or_else(|| "ckpt_name COMBO without options".to_owned()),
        _ => Err("ckpt_name is neither a list nor a COMBO".into()),
    }
}

/// How many prompts are running and waiting (`GET /queue`).
pub fn parse_queue(body: &str) -> Option<(usize, usize)> {
    #[derive(Deserialize)]
    struct Queue {
        queue_running: Vec<Value>,
        queue_pending: Vec<Value>,
    }
    let q: Queue = serde_json::from_str(body).ok()?;
    Some((q.queue_running.len(), q.queue_pending.len()))
}

/// ComfyUI's version (`GET /system_stats` → `system.comfyui_version`).
pub fn parse_version(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Stats {
        system: System,
    }
    #[derive(Deserialize)]
    struct System {
        comfyui_version: Option<String>,
    }
    serde_json::from_str::<Stats>(body).ok()?.system.comfyui_version
}

/// The txt2img graph: CheckpointLoaderSimple → CLIPTextEncode ×2 → EmptyLatentImage → KSampler
/// → VAEDecode → SaveImage, with repeat `index`'s seed.
pub fn txt2img_graph(spec: &ImageSpec, index: u32, checkpoint: &str) -> Value {
    let (sampler, scheduler) = spec.sampler_and_scheduler();
    json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": spec.prompt, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": spec.negative_prompt, "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": spec.width, "height": spec.height, "batch_size": spec.num_images}},
        "5": {"class_type": "KSampler", "inputs": {
            "seed": spec.seed_for(index), "steps": spec.steps, "cfg": spec.cfg,
            "sampler_name": sampler, "scheduler": scheduler, "denoise": 1.0,
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "bench_race"}},
    })
}

fn short(s: &str) -> String {
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() { format!("{}…", &s[..end]) } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_messages_as_comfyui_sends_them() {
        let m = WsMessage::parse(
            r#"{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}, "sid": "abc"}}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            WsMessage::Status(StatusData {
                status: Some(StatusInner { exec_info: Some(ExecInfo { queue_remaining: Some(2) }) })
            })
        ));
        let m = WsMessage::parse(
            r#"{"type": "executing", "data": {"node": null, "display_node": null, "prompt_id": "p1"}}"#,
        )
        .unwrap();
        assert_eq!(m, WsMessage::Executing(Executing { node: None, prompt_id: Some("p1".into()) }));
        let m = WsMessage::parse(
            r#"{"type": "progress", "data": {"value": 3, "max": 20, "prompt_id": "p1", "node": "5"}}"#,
        )
        .unwrap();
        assert_eq!(m.prompt_id(), Some("p1"));
        let m = WsMessage::parse(r#"{"type": "execution_error", "data": {"prompt_id": "p1", "node_id": "5", "node_type": "KSampler", "executed": [], "exception_message": "CUDA out of memory", "exception_type": "torch.OutOfMemoryError", "traceback": []}}"#).unwrap();
        let WsMessage::ExecutionError(e) = m else { panic!() };
        assert_eq!(e.describe(), "node 5 (KSampler) failed: torch.OutOfMemoryError: CUDA out of memory");
        assert_eq!(WsMessage::parse(r#"{"type": "crystools.monitor", "data": {"cpu": 3}}"#).unwrap(), WsMessage::Other);
        assert!(WsMessage::parse("not json").is_err());
    }

    #[test]
    fn binary_preview_frames() {
        let mut f = 1u32.to_be_bytes().to_vec();
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(b"\xFF\xD8jpeg");
        assert_eq!(parse_binary(&f), Some((PreviewFormat::Jpeg, &b"\xFF\xD8jpeg"[..])));
        f[7] = 2;
        assert_eq!(parse_binary(&f).unwrap().0, PreviewFormat::Png);
        f[3] = 3;
        assert_eq!(parse_binary(&f), None, "event 3 is not a preview");
        assert_eq!(parse_binary(&[0, 0]), None);
    }

    #[test]
    fn refusal_names_each_node() {
        let body = r#"{"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
            "node_errors": {"1": {"errors": [{"type": "value_not_in_list", "message": "Value not in list", "details": "ckpt_name: 'nope.safetensors' not in ['sd15.safetensors']", "extra_info": {}}], "dependent_outputs": ["7"], "class_type": "CheckpointLoaderSimple"}}}"#;
        let r = parse_refusal(400, body);
        assert!(r.missing_checkpoint);
        assert_eq!(r.nodes[0].0, "1");
        let text = r.describe();
        assert!(text.contains("node 1 (CheckpointLoaderSimple)") && text.contains("nope.safetensors"), "{text}");
        let r = parse_refusal(500, "<html>oops</html>");
        assert!(r.describe().contains("HTTP 500"), "{r:?}");
    }

    #[test]
    fn history_shapes() {
        assert_eq!(parse_history("p1", "{}").unwrap(), None);
        let ok = r#"{"p1": {"prompt": [0, "p1", {}, {}, ["7"]], "outputs": {"7": {"images": [{"filename": "bench_race_00001_.png", "subfolder": "", "type": "output"}]}, "9": {"images": [{"filename": "t.png", "subfolder": "", "type": "temp"}]}},
            "status": {"status_str": "success", "completed": true, "messages": [["execution_start", {"prompt_id": "p1", "timestamp": 1}], ["execution_success", {"prompt_id": "p1", "timestamp": 2}]]}, "meta": {}}}"#;
        let h = parse_history("p1", ok).unwrap().unwrap();
        assert_eq!((h.status.as_str(), h.completed, h.images.len(), h.error.is_none()), ("success", true, 1, true));
        let err = r#"{"p1": {"outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [["execution_error", {"prompt_id": "p1", "node_id": "6", "node_type": "VAEDecode", "exception_message": "boom", "exception_type": "RuntimeError"}]]}}}"#;
        let h = parse_history("p1", err).unwrap().unwrap();
        let (interrupted, e) = h.error.unwrap();
        assert!(!interrupted && e.node_type.as_deref() == Some("VAEDecode"));
        assert!(parse_history("p1", "[]").is_err());
    }

    #[test]
    fn checkpoints_old_and_new_shapes() {
        let old =
            r#"{"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors", "b.ckpt"]]}}}}"#;
        assert_eq!(parse_checkpoints(old).unwrap(), ["a.safetensors", "b.ckpt"]);
        let new = r#"{"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": ["COMBO", {"options": ["c.safetensors"]}]}}}}"#;
        assert_eq!(parse_checkpoints(new).unwrap(), ["c.safetensors"]);
        assert!(parse_checkpoints("{}").is_err());
    }

    #[test]
    fn graph_carries_the_spec() {
        let spec: ImageSpec = serde_json::from_value(json!({"prompt": "fox", "negative_prompt": "blur", "seed": 7,
            "steps": 4, "width": 256, "height": 320, "sampler": "DPM++ 2M Karras", "num_images": 2}))
        .unwrap();
        let g = txt2img_graph(&spec, 1, "sd15.safetensors");
        assert_eq!(g["5"]["inputs"]["seed"], 8);
        assert_eq!(
            (g["5"]["inputs"]["sampler_name"].as_str(), g["5"]["inputs"]["scheduler"].as_str()),
            (Some("dpmpp_2m"), Some("karras"))
        );
        assert_eq!((g["4"]["inputs"]["width"].as_u64(), g["4"]["inputs"]["batch_size"].as_u64()), (Some(256), Some(2)));
        assert_eq!(g["3"]["inputs"]["text"], "blur");
        assert_eq!(g["1"]["inputs"]["ckpt_name"], "sd15.safetensors");
    }
}

//! The image, speech and compute races on one agent: against a protocol-faithful fake ComfyUI
//! and fake images server (no diffusion model can run here), the real speech server for the
//! non-streamed transcription path (faster-whisper-server with Whisper tiny.en, see
//! `speech_real.rs`) and a streaming fake for the streamed path, and the agent's own CPU race.

use bench_agent::testkit::fake_comfy::{FakeComfy, FakeComfyScript};
use bench_agent::testkit::fake_media::{FakeImages, FakeSpeech};
use bench_agent::workload::config::{ImageEngineSettings, SpeechEngineSettings};
use bench_shared::workload::image::ImageEngineKind;
use serde_json::{Value, json};
use sha2::Digest;

use crate::support::{TestAgent, mock_config, of_type, temp_results_dir};

async fn comfy_agent(script: FakeComfyScript, timeout_s: f64) -> (FakeComfy, TestAgent) {
    let comfy = FakeComfy::spawn(script).await;
    let mut cfg = mock_config();
    cfg.results_dir = temp_results_dir().to_path_buf();
    let mut img = ImageEngineSettings::new(ImageEngineKind::Comfyui, &comfy.base_url);
    img.timeout_s = timeout_s;
    cfg.image_engine = Some(img);
    (comfy, TestAgent::spawn(cfg).await)
}

fn image_job(prompt: &str) -> Value {
    json!({"test_type": "image_generate", "prompt": prompt, "checkpoint": "sd15-fake.safetensors",
        "steps": 6, "width": 64, "height": 64, "seed": 11, "repeat": 2})
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).filter(|k| *k != "runtime_metrics").collect()
}

#[tokio::test]
async fn comfyui_race_reports_progress_previews_and_stored_images() {
    let (comfy, agent) = comfy_agent(FakeComfyScript::default(), 60.0).await;
    let caps = agent.get_json("/capabilities").await;
    assert!(caps["tests"].as_array().unwrap().contains(&json!("image_generate")), "{caps}");
    assert_eq!(caps["sdxl_profiles"], json!(["sd15-fake.safetensors"]));
    assert_eq!(caps["image_engine"]["version"], "0.3.40-fake");
    assert!(!caps["tests"].as_array().unwrap().contains(&json!("transcribe")), "no speech engine configured");
    let id = agent.post_job_ok(image_job("a red fox")).await;
    let events = agent.wait_for_terminal(&id).await;
    let k = kinds(&events);
    assert_eq!(k.first(), Some(&"job_queued"));
    assert_eq!(k.last(), Some(&"job_done"));
    assert_eq!(of_type(&events, "image_started").len(), 2);
    assert_eq!(of_type(&events, "image_progress").len(), 12, "6 steps × 2 repeats");
    let previews = of_type(&events, "image_preview");
    assert!(!previews.is_empty() && previews.len() <= 6, "throttled to every 2nd step: {}", previews.len());
    assert_eq!(previews[0]["payload"]["content_type"], "image/png");
    assert!(previews[0]["payload"]["preview_b64"].as_str().is_some_and(|s| !s.is_empty()));
    let started = &of_type(&events, "image_started")[0]["payload"];
    assert!(started["queue_latency_ms"].as_f64().unwrap() >= 0.0);
    let completes = of_type(&events, "image_complete");
    assert_eq!(completes.len(), 2);
    let c0 = &completes[0]["payload"];
    assert_eq!(
        (c0["resolution"].as_str(), c0["seed"].as_u64(), c0["steps"].as_u64()),
        (Some("64x64"), Some(11), Some(6))
    );
    assert_eq!(completes[1]["payload"]["seed"], 12, "repeat i uses seed + i");
    assert_eq!(c0["steps_per_s_source"], "progress");
    assert!(c0["steps_per_s"].as_f64().unwrap() > 0.0 && c0["s_per_image"].as_f64().unwrap() > 0.0);
    assert!(c0["gen_time_ms"].as_f64().unwrap() <= c0["total_ms"].as_f64().unwrap());
    assert_eq!(completes[1]["payload"]["cached_nodes"], json!(["1"]), "the checkpoint stays loaded");
    // The image is served by the original's route, byte for byte what its hash says.
    let img = &c0["images"][0];
    let resp = agent.get(&format!("/api/image/result/{}", img["image_id"].as_str().unwrap())).await;
    assert_eq!(resp.headers()["content-type"], "image/png");
    let bytes = resp.bytes().await.unwrap();
    let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(img["sha256"].as_str(), Some(hex.as_str()));
    let done = &of_type(&events, "job_done")[0]["payload"];
    assert_eq!(
        (done["test_type"].as_str(), done["repeats"].as_u64(), done["engine"].as_str()),
        (Some("image_generate"), Some(2), Some("comfyui"))
    );
    assert_eq!(done["runs"][0]["sha256"][0], img["sha256"]);
    assert!(done["s_per_image"].as_f64().unwrap() > 0.0);
    // What ComfyUI received: the txt2img graph with the job's settings.
    let graph = &comfy.prompts()[0];
    assert_eq!(
        (graph["5"]["inputs"]["steps"].as_u64(), graph["5"]["inputs"]["sampler_name"].as_str()),
        (Some(6), Some("euler"))
    );
    // The original's status route agrees.
    let st = agent.get_json(&format!("/api/image/job_status?job_id={id}")).await;
    assert_eq!((st["status"].as_str(), st["progress"]["percent"].as_f64()), (Some("complete"), Some(100.0)));
    assert_eq!(st["images"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_dropped_socket_is_recovered_from_history() {
    let (_comfy, agent) = comfy_agent(FakeComfyScript { step_ms: 20, ..FakeComfyScript::default() }, 60.0).await;
    let mut job = image_job("a fox DROP_SOCKET");
    job["repeat"] = json!(1);
    let id = agent.post_job_ok(job).await;
    let events = agent.wait_for_terminal(&id).await;
    let done = of_type(&events, "image_complete");
    assert_eq!(done.len(), 1, "{:?}", kinds(&events));
    let notes = done[0]["payload"]["notes"].to_string();
    assert!(notes.contains("WebSocket closed at step 3") && notes.contains("/history"), "{notes}");
    assert_eq!(done[0]["payload"]["images"].as_array().unwrap().len(), 1);
    assert_eq!(of_type(&events, "job_done").len(), 1);
}

#[tokio::test]
async fn node_errors_and_execution_errors_name_the_node() {
    let (_comfy, agent) = comfy_agent(FakeComfyScript::default(), 60.0).await;
    // ComfyUI refuses the graph: its KSampler has no such sampler.
    let mut job = image_job("a fox");
    job["sampler"] = json!("lms");
    let events = agent.wait_for_terminal(&agent.post_job_ok(job).await).await;
    let err = &of_type(&events, "image_error")[0]["payload"];
    assert_eq!(
        (err["node_id"].as_str(), err["node_type"].as_str(), err["category"].as_str()),
        (Some("5"), Some("KSampler"), Some("validation"))
    );
    let je = &of_type(&events, "job_error")[0]["payload"];
    assert!(je["message"].as_str().unwrap().contains("node 5 (KSampler)"), "{je}");
    // A node fails while running.
    let events = agent.wait_for_terminal(&agent.post_job_ok(image_job("FAIL_NODE fox")).await).await;
    let err = &of_type(&events, "image_error")[0]["payload"];
    assert_eq!(
        (err["node_id"].as_str(), err["node_type"].as_str(), err["category"].as_str()),
        (Some("6"), Some("VAEDecode"), Some("execution"))
    );
    let je = &of_type(&events, "job_error")[0]["payload"];
    assert!(je["message"].as_str().unwrap().contains("out of memory"), "{je}");
    assert_eq!(je["kind"], "engine_error");
    // An unknown checkpoint is refused before queueing, naming what there is.
    let mut job = image_job("fox");
    job["checkpoint"] = json!("sdxl-missing.safetensors");
    let resp = agent.post_job(job).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("sdxl-missing.safetensors"), "{body}");
    assert_eq!(body["available"], json!(["sd15-fake.safetensors"]));
}

#[tokio::test]
async fn a_stuck_queue_times_out_and_the_prompt_is_withdrawn() {
    let (comfy, agent) = comfy_agent(FakeComfyScript::default(), 1.0).await;
    let mut job = image_job("STUCK_QUEUE fox");
    job["repeat"] = json!(1);
    let events = agent.wait_for_terminal(&agent.post_job_ok(job).await).await;
    let je = &of_type(&events, "job_error")[0]["payload"];
    assert_eq!(je["kind"], "timeout");
    let msg = je["message"].as_str().unwrap();
    assert!(msg.contains("never started") && msg.contains("1 waiting"), "{msg}");
    assert_eq!(comfy.pending(), 0, "the stuck prompt was taken off ComfyUI's queue");
}

#[tokio::test]
async fn openai_images_server_race() {
    let fake = FakeImages::spawn("sd-turbo", 10).await;
    let mut cfg = mock_config();
    cfg.results_dir = temp_results_dir().to_path_buf();
    cfg.image_engine = Some(ImageEngineSettings::new(ImageEngineKind::Openai, &fake.base_url));
    let agent = TestAgent::spawn(cfg).await;
    let caps = agent.get_json("/capabilities").await;
    assert_eq!(caps["sdxl_profiles"], json!(["sd-turbo"]));
    let job = json!({"test_type": "image_generate", "prompt": "a fox", "model": "sd-turbo", "num_images": 2,
        "width": 64, "height": 64, "seed": 5, "steps": 4});
    let events = agent.wait_for_terminal(&agent.post_job_ok(job).await).await;
    let c = &of_type(&events, "image_complete")[0]["payload"];
    assert_eq!(c["images"].as_array().unwrap().len(), 2);
    assert!(c["queue_latency_ms"].is_null(), "an images server has no observable queue");
    assert_eq!(c["steps_per_s_source"], "gen_time");
    assert_eq!(c["engine_s_per_image"].as_f64(), Some(0.01));
    assert!(c["notes"].to_string().contains("extension fields"), "{c}");
    let body = &fake.bodies()[0];
    assert_eq!(
        (body["size"].as_str(), body["n"].as_u64(), body["response_format"].as_str()),
        (Some("64x64"), Some(2), Some("b64_json"))
    );
    let events = agent
        .wait_for_terminal(&agent.post_job_ok(json!({"test_type": "image_generate", "prompt": "FAIL"})).await)
        .await;
    let je = &of_type(&events, "job_error")[0]["payload"];
    assert!(je["message"].as_str().unwrap().contains("out of memory"), "{je}");
}

#[tokio::test]
async fn image_engine_down_is_an_unreachable_error() {
    let mut cfg = mock_config();
    cfg.image_engine = Some(ImageEngineSettings::new(ImageEngineKind::Comfyui, "http://127.0.0.1:9"));
    let agent = TestAgent::spawn(cfg).await;
    let caps = agent.get_json("/capabilities").await;
    assert!(!caps["tests"].as_array().unwrap().contains(&json!("image_generate")));
    assert_eq!(caps["image_engine"]["reachable"], false);
    assert!(caps["image_engine"]["error"].as_str().unwrap().contains("image engine unreachable at http://127.0.0.1:9"));
    let events = agent.wait_for_terminal(&agent.post_job_ok(image_job("fox")).await).await;
    assert_eq!(of_type(&events, "job_error")[0]["payload"]["kind"], "engine_unreachable");
}

#[tokio::test]
async fn compute_race_counts_primes_on_threads() {
    let agent = TestAgent::spawn(mock_config()).await;
    let caps = agent.get_json("/capabilities").await;
    assert!(caps["tests"].as_array().unwrap().contains(&json!("compute")));
    let id = agent.post_job_ok(json!({"test_type": "compute", "n": 1_000_000, "threads": 2, "repeat": 2})).await;
    let events = agent.wait_for_terminal(&id).await;
    let started = &of_type(&events, "job_started")[0]["payload"];
    assert_eq!(started["engine"], "agent");
    let dones = of_type(&events, "compute_done");
    assert_eq!(dones.len(), 2);
    let d = &dones[0]["payload"];
    assert_eq!(
        (d["result"].as_u64(), d["threads"].as_u64(), d["n"].as_u64()),
        (Some(78_498), Some(2), Some(1_000_000))
    );
    let ops = d["ops_per_s"].as_f64().unwrap();
    assert!((ops - 1e6 / (d["wall_ms"].as_f64().unwrap() / 1000.0)).abs() / ops < 1e-9);
    assert!(!of_type(&events, "compute_line").is_empty());
    let job = &of_type(&events, "job_done")[0]["payload"];
    assert_eq!(
        (job["test_type"].as_str(), job["result"].as_u64(), job["runs"].as_array().map(Vec::len)),
        (Some("compute"), Some(78_498), Some(2))
    );
    // The original's synchronous route, under its own job id.
    let resp = agent
        .client
        .post(agent.url("/api/compute"))
        .json(&json!({"algorithm": "segmented_sieve", "n": 100_000, "threads": 1, "job_id": "orig-1"}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["ok"].as_bool(), body["primes_found"].as_u64(), body["job_id"].as_str()),
        (Some(true), Some(9592), Some("orig-1"))
    );
    let bad = agent.post_job(json!({"test_type": "compute", "threads": 0})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "threads");
}

fn wav_b64(seconds: f64) -> String {
    use base64::Engine as _;
    let rate = 16_000u32;
    let samples = (seconds * f64::from(rate)) as u32;
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    for v in [
        16u32.to_le_bytes().as_slice(),
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
        &rate.to_le_bytes(),
        &(rate * 2).to_le_bytes(),
        &2u16.to_le_bytes(),
        &16u16.to_le_bytes(),
    ] {
        b.extend_from_slice(v);
    }
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(samples * 2).to_le_bytes());
    b.resize(b.len() + (samples * 2) as usize, 0);
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn streamed_transcription_reports_first_segment_and_wer() {
    let fake = FakeSpeech::spawn("The quick brown fox jumps over the lazy dog", 5).await;
    let mut cfg = mock_config();
    cfg.speech_engine = Some(SpeechEngineSettings::new(&fake.base_url));
    let agent = TestAgent::spawn(cfg).await;
    let caps = agent.get_json("/capabilities").await;
    assert_eq!(caps["whisper_models"], json!(["whisper-fake"]));
    let job = json!({"test_type": "transcribe", "model": "whisper-fake", "audio_b64": wav_b64(2.0), "repeat": 2,
        "reference_text": "the quick brown fox jumped over the lazy dog"});
    let events = agent.wait_for_terminal(&agent.post_job_ok(job).await).await;
    let segments = of_type(&events, "transcribe_segment");
    assert_eq!(segments.len(), 18, "9 words × 2 repeats");
    let d = &of_type(&events, "transcribe_done")[0]["payload"];
    assert_eq!(
        (d["audio_s"].as_f64(), d["audio_s_source"].as_str(), d["streamed"].as_bool()),
        (Some(2.0), Some("header"), Some(true))
    );
    let wer = d["wer"].as_f64().unwrap();
    assert!((wer - 1.0 / 9.0).abs() < 1e-9, "one substitution in nine words: {wer}");
    let ttfs = d["time_to_first_segment_ms"].as_f64().unwrap();
    assert!(ttfs > 0.0 && ttfs <= d["wall_ms"].as_f64().unwrap());
    assert!((d["rtfx"].as_f64().unwrap() - 2.0 / (d["wall_ms"].as_f64().unwrap() / 1000.0)).abs() < 1e-9);
    assert_eq!(d["text"], "The quick brown fox jumps over the lazy dog");
    let job = &of_type(&events, "job_done")[0]["payload"];
    assert_eq!((job["test_type"].as_str(), job["runs"].as_array().map(Vec::len)), (Some("transcribe"), Some(2)));
    // A model the server does not list is refused, naming what it has.
    let resp = agent.post_job(json!({"test_type": "transcribe", "model": "large-v3", "audio_b64": wav_b64(0.1)})).await;
    assert_eq!(resp.status(), 404);
}

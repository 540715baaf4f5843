//! Two-machine races of the other workloads, through central: image generation (each agent on
//! its own protocol-faithful fake ComfyUI), speech to text (a streaming fake speech server, the
//! audio from central's assets) and the CPU compute race; files, figures and verdicts.

use bench_agent::testkit::fake_comfy::{FakeComfy, FakeComfyScript};
use bench_agent::testkit::fake_media::FakeSpeech;
use bench_agent::workload::config::{ImageEngineSettings, SpeechEngineSettings};
use bench_shared::workload::image::ImageEngineKind;
use serde_json::{Value, json};
use sha2::Digest;

use super::support::*;

fn machine_summary<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_race_stores_images_and_compares_hashes() {
    let fast = FakeComfy::spawn(FakeComfyScript { step_ms: 2, ..FakeComfyScript::default() }).await;
    let slow = FakeComfy::spawn(FakeComfyScript { step_ms: 12, ..FakeComfyScript::default() }).await;
    let a = RealAgent::with_config("a", |c| {
        c.image_engine = Some(ImageEngineSettings::new(ImageEngineKind::Comfyui, &fast.base_url))
    })
    .await;
    let b = RealAgent::with_config("b", |c| {
        c.image_engine = Some(ImageEngineSettings::new(ImageEngineKind::Comfyui, &slow.base_url))
    })
    .await;
    let down = RealAgent::with_config("down", |c| {
        c.image_engine = Some(ImageEngineSettings::new(ImageEngineKind::Comfyui, "http://127.0.0.1:9"))
    })
    .await;
    let machines = vec![machine("a", &a.base_url), machine("b", &b.base_url), machine("down", &down.base_url)];
    let central = TestCentral::spawn(machines, temp_results_dir()).await;
    central.wait_online(&["a", "b", "down"]).await;
    let run_id = central
        .start_run(json!({"test_type": "image_generate", "prompt": "a red fox", "checkpoint": "sd15-fake.safetensors",
            "steps": 10, "width": 64, "height": 64, "seed": 7, "repeat": 3}))
        .await;
    central.wait_run_end(&run_id).await;
    let meta = central.read_json(&run_id, "metadata.json");
    let rec = meta["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "down").unwrap();
    assert_eq!(rec["status"], "skipped");
    assert_eq!(rec["reason"], "image engine unreachable at http://127.0.0.1:9");
    let summary = central.read_json(&run_id, "summary.json");
    assert_eq!(summary["test_type"], "image_generate");
    let wc = &summary["workload_comparison"];
    assert_eq!(wc["metrics"], json!(["s_per_image", "steps_per_s", "queue_latency_ms"]));
    assert!(wc["outputs"].as_str().unwrap().contains("byte-identical"), "{wc}");
    assert!(wc["winner_text"].is_string(), "{wc}");
    let sa = machine_summary(&summary, "a");
    for k in ["s_per_image", "steps_per_s", "queue_latency_ms"] {
        assert!(sa[k].as_f64().is_some_and(|x| x >= 0.0), "{k} in {sa}");
    }
    // Every image is in the run's images/ folder, with the hash the agent reported.
    let images = sa["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    let dir = central.run_file(&run_id, "images");
    let first = &images[0];
    let path = dir.join(first["file"].as_str().unwrap());
    let bytes = central
        .wait_for("the images stored", || {
            let path = path.clone();
            async move { std::fs::read(&path).ok() }
        })
        .await;
    let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(first["sha256"].as_str(), Some(hex.as_str()));
    let events = central.events(&run_id).await;
    assert_eq!(of(&events, "a", "image_progress").len(), 30);
    assert!(!of(&events, "b", "image_preview").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn speech_race_from_an_audio_asset() {
    let heard = "The quick brown fox jumps over the lazy dog.";
    let s1 = FakeSpeech::spawn(heard, 2).await;
    let s2 = FakeSpeech::spawn("The quick brown fox jumped over a lazy dog.", 8).await;
    let a = RealAgent::with_config("a", |c| c.speech_engine = Some(SpeechEngineSettings::new(&s1.base_url))).await;
    let b = RealAgent::with_config("b", |c| c.speech_engine = Some(SpeechEngineSettings::new(&s2.base_url))).await;
    let central =
        TestCentral::spawn(vec![machine("a", &a.base_url), machine("b", &b.base_url)], temp_results_dir()).await;
    central.wait_online(&["a", "b"]).await;
    let assets = central.get_json("/api/assets/audio").await;
    assert!(
        assets.as_array().unwrap().iter().any(|x| x["id"] == "fox" && x["audio_s"].as_f64().unwrap() > 1.0),
        "{assets}"
    );
    let run_id = central
        .start_run(json!({"test_type": "transcribe", "model": "whisper-fake", "audio": "fox", "repeat": 3}))
        .await;
    central.wait_run_end(&run_id).await;
    let summary = central.read_json(&run_id, "summary.json");
    let (sa, sb) = (machine_summary(&summary, "a"), machine_summary(&summary, "b"));
    assert_eq!(sa["wer"].as_f64(), Some(0.0), "{sa}");
    assert!((sb["wer"].as_f64().unwrap() - 2.0 / 9.0).abs() < 1e-9, "{sb}");
    for k in ["rtfx", "wall_ms", "audio_s", "time_to_first_segment_ms"] {
        assert!(sa[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {sa}");
    }
    let wc = &summary["workload_comparison"];
    assert_eq!(wc["metrics"], json!(["rtfx", "wall_ms"]));
    assert_eq!(wc["wer"].as_array().unwrap().len(), 2);
    assert!(!wc["verdicts"].as_array().unwrap().is_empty(), "{wc}");
    audio_is_stored_once(&central, &run_id).await;
    // The export has the speech figures, not the text race's columns.
    let csv = central.get(&format!("/api/runs/{run_id}/export.csv")).await.text().await.unwrap();
    let rows = csv_rows(&csv);
    assert_eq!(rows[0][..9].join(","), "run_id,timestamp,model,machine_id,label,status,rank,reason,repeats");
    assert!(!rows[0].iter().any(|c| c == "ttft_ms"), "{csv}");
    let a = rows.iter().find(|r| r[3] == "a").unwrap();
    assert_eq!(cell(&rows[0], a, "wer"), "0.0");
    assert_eq!(cell(&rows[0], a, "text"), heard);
    assert!(cell(&rows[0], a, "rtfx").parse::<f64>().unwrap() > 0.0, "{csv}");
}

/// The rows of a CSV, its header first.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect()
}

fn cell<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let i = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    &row[i]
}

/// The run's audio is one file, `audio/<sha256>.wav`, named by the stored spec; no stored file
/// or API answer carries its base64 (the agents got it: their `audio_s` comes from its header).
async fn audio_is_stored_once(central: &TestCentral, run_id: &str) {
    use base64::Engine as _;
    let (asset, wav) = bench_central::assets::audio_asset("fox").unwrap();
    let sha: String = sha2::Sha256::digest(&wav).iter().map(|b| format!("{b:02x}")).collect();
    let spec = &central.read_json(run_id, "metadata.json")["spec"];
    assert_eq!(spec["audio_file"].as_str(), Some(format!("audio/{sha}.wav").as_str()), "{spec}");
    assert_eq!(spec["audio_sha256"].as_str(), Some(sha.as_str()));
    let audio_s = spec["audio_s"].as_f64().unwrap();
    assert!((audio_s - asset.audio_s).abs() < 1e-3, "{spec}");
    assert_eq!((spec["audio"].as_str(), spec.get("audio_b64")), (Some("fox"), None), "{spec}");
    let stored = std::fs::read(central.run_file(run_id, &format!("audio/{sha}.wav"))).unwrap();
    let stored_sha: String = sha2::Sha256::digest(&stored).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(stored_sha, sha);
    let summary = central.read_json(run_id, "summary.json");
    assert_eq!(machine_summary(&summary, "a")["audio_s"].as_f64(), Some(audio_s), "the agent got the audio");
    // A piece from the middle of the base64 (its start is a WAV header any WAV may share).
    let b64 = base64::engine::general_purpose::STANDARD.encode(&wav);
    let piece = &b64[b64.len() / 2..b64.len() / 2 + 64];
    for name in ["metadata.json", "summary.json", "events.ndjson", "results.csv"] {
        if let Ok(text) = std::fs::read_to_string(central.run_file(run_id, name)) {
            assert!(!text.contains(piece), "{name} holds the audio's base64");
        }
    }
    for path in [
        format!("/api/runs/{run_id}"),
        "/api/runs".to_owned(),
        format!("/api/runs/{run_id}/events"),
        format!("/api/runs/{run_id}/export.json"),
        format!("/api/runs/{run_id}/export.csv"),
        format!("/api/runs/{run_id}/report.html"),
    ] {
        let res = central.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        let text = res.text().await.unwrap();
        assert!(!text.contains(piece), "{path} answers with the audio's base64");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compute_race_compares_ops_per_s() {
    let a = RealAgent::with_config("a", |_| {}).await;
    let b = RealAgent::with_config("b", |_| {}).await;
    let central =
        TestCentral::spawn(vec![machine("a", &a.base_url), machine("b", &b.base_url)], temp_results_dir()).await;
    central.wait_online(&["a", "b"]).await;
    let run_id = central.start_run(json!({"test_type": "compute", "n": 2_000_000, "threads": 1, "repeat": 3})).await;
    central.wait_run_end(&run_id).await;
    let summary = central.read_json(&run_id, "summary.json");
    for id in ["a", "b"] {
        let s = machine_summary(&summary, id);
        assert_eq!((s["status"].as_str(), s["result"].as_u64()), (Some("complete"), Some(148_933)), "{s}");
        assert!(s["ops_per_s"].as_f64().unwrap() > 0.0);
    }
    let wc = &summary["workload_comparison"];
    assert_eq!(wc["metrics"], json!(["ops_per_s"]));
    let v = &wc["verdicts"][0];
    assert_eq!(v["n"], json!([3, 3]));
    assert!(v["text"].as_str().unwrap().contains("a") && wc["not_comparable"].is_null(), "{wc}");

    // The run list, the export and the comparison of two runs carry the compute figures.
    let list = central.get_json("/api/runs").await;
    let entry = list["runs"].as_array().unwrap().iter().find(|r| r["run_id"] == run_id.as_str()).unwrap();
    assert_eq!((entry["test_type"].as_str(), entry["machines"].as_u64()), (Some("compute"), Some(2)), "{entry}");
    let csv = central.get(&format!("/api/runs/{run_id}/export.csv")).await.text().await.unwrap();
    let rows = csv_rows(&csv);
    assert!(!rows[0].iter().any(|c| c == "ttft_ms" || c == "gen_tokens_per_s"), "{csv}");
    assert_eq!(rows.len(), 3, "{csv}");
    for row in &rows[1..] {
        let id = cell(&rows[0], row, "machine_id");
        let ops: f64 = cell(&rows[0], row, "ops_per_s").parse().unwrap();
        assert_eq!(ops, machine_summary(&summary, id)["ops_per_s"].as_f64().unwrap());
        assert_eq!((cell(&rows[0], row, "result"), cell(&rows[0], row, "repeats")), ("148933", "3"));
    }
    let again = central.start_run(json!({"test_type": "compute", "n": 2_000_000, "threads": 1, "repeat": 3})).await;
    central.wait_run_end(&again).await;
    let cmp = central.get_json(&format!("/api/compare?a={run_id}&b={again}")).await;
    assert_eq!((cmp["kind"].as_str(), cmp["test_type"].as_str()), (Some("workload"), Some("compute")), "{cmp}");
    let machines = cmp["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 2, "{cmp}");
    for m in machines {
        let c = &m["comparison"];
        assert_eq!(c["metrics"], json!(["ops_per_s"]));
        assert_eq!(c["verdicts"][0]["n"], json!([3, 3]), "{c}");
        let text = c["verdicts"][0]["text"].as_str().unwrap();
        assert!(text.contains("run A") && text.contains("run B"), "{text}");
    }
    let (status, body) = {
        let res = central.get(&format!("/api/compare?a={run_id}&b=2020-01-01_000000_abcdef")).await;
        (res.status(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 404, "{body}");
}

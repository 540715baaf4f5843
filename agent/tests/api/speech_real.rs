//! Against the real local speech engine: faster-whisper-server (OpenAI-compatible
//! `/v1/audio/transcriptions`, faster-whisper on CTranslate2) serving Whisper tiny.en, on a
//! sentence spoken by espeak-ng (`assets/audio/`, made by scripts/make-audio-assets).

use base64::Engine as _;
use bench_agent::testkit::{LOCAL_SPEECH_MODEL, local_speech_url};
use bench_agent::workload::config::SpeechEngineSettings;
use serde_json::{Value, json};

use crate::support::{TestAgent, mock_config, of_type};

#[tokio::test]
async fn real_whisper_transcribes_an_espeak_sentence() {
    let root = bench_agent::testkit::local_engine::workspace_root();
    let index: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("assets/audio/index.json")).unwrap()).unwrap();
    let asset = index.iter().find(|a| a["id"] == "weather").expect("the weather asset");
    let wav = std::fs::read(root.join("assets/audio").join(asset["file"].as_str().unwrap())).unwrap();
    let mut cfg = mock_config();
    let mut speech = SpeechEngineSettings::new(local_speech_url());
    speech.models = vec![LOCAL_SPEECH_MODEL.into()];
    cfg.speech_engine = Some(speech);
    let agent = TestAgent::spawn(cfg).await;
    let caps = agent.get_json("/capabilities").await;
    assert_eq!(caps["whisper_models"], json!([LOCAL_SPEECH_MODEL]), "{caps}");
    assert!(caps["tests"].as_array().unwrap().contains(&json!("transcribe")));
    let job = json!({"test_type": "transcribe", "model": LOCAL_SPEECH_MODEL, "audio": "weather",
        "audio_b64": base64::engine::general_purpose::STANDARD.encode(&wav), "language": "en",
        "reference_text": asset["reference_text"]});
    let events = agent.wait_for_terminal(&agent.post_job_ok(job).await).await;
    let d = &of_type(&events, "transcribe_done").first().unwrap_or_else(|| panic!("{events:?}"))["payload"];
    let text = d["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("coat") && text.contains("umbrella"), "Whisper heard: {text}");
    let wer = d["wer"].as_f64().unwrap();
    assert!(wer < 0.35, "WER {wer} for {text:?}");
    let audio_s = d["audio_s"].as_f64().unwrap();
    assert!((audio_s - asset["audio_s"].as_f64().unwrap()).abs() < 1e-3, "{audio_s}");
    assert_eq!(d["audio_s_source"], "header");
    let rtfx = d["rtfx"].as_f64().unwrap();
    let expected = audio_s / (d["wall_ms"].as_f64().unwrap() / 1000.0);
    assert!((rtfx - expected).abs() < 1e-9 && rtfx > 0.0);
    // This server answers in one piece: no time to first segment, and the result says why.
    assert_eq!((d["streamed"].as_bool(), d["time_to_first_segment_ms"].as_f64()), (Some(false), None));
    assert!(d["notes"].to_string().contains("did not stream"));
    assert_eq!(d["language"], "en");
    eprintln!(
        "real Whisper tiny.en: {text:?}, WER {wer:.3}, RTFx {rtfx:.2}, wall {:.0} ms",
        d["wall_ms"].as_f64().unwrap()
    );
}

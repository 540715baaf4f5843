//! An `https://` agent: its certificate is made here (self-signed, rcgen), central trusts it
//! through the machine's `ca_cert_file`, and the race streams live over `wss://`.

use bench_central::config::MachinesFile;
use bench_server::tls::TlsFiles;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

/// A self-signed certificate for `localhost` and its key, as PEM files in `dir`.
fn self_signed(dir: &std::path::Path) -> TlsFiles {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles { cert_file: dir.join("agent-cert.pem"), key_file: dir.join("agent-key.pem") };
    std::fs::write(&files.cert_file, made.cert.pem()).unwrap();
    std::fs::write(&files.key_file, made.signing_key.serialize_pem()).unwrap();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_agent_with_a_self_signed_certificate_streams_a_live_race() {
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(dir.path());
    let agent = RealAgent::mock_tls("secure", &["mock-llm"], &tls).await;
    assert!(agent.base_url.starts_with("https://localhost:"), "{}", agent.base_url);

    // machines.yaml naming the agent's certificate as the CA to trust (relative path).
    let yaml = format!(
        "machines:\n  - machine_id: secure\n    agent_base_url: {}\n    ca_cert_file: agent-cert.pem\n",
        agent.base_url
    );
    let file = MachinesFile::parse(&yaml, &dir.path().join("machines.yaml")).unwrap();
    assert_eq!(file.machines[0].ws_url(), format!("wss://{}/ws", agent.base_url.trim_start_matches("https://")));
    let central = TestCentral::spawn(file.machines, temp_results_dir()).await;
    // Online means /health and /capabilities answered over https and the wss:// socket is up.
    central.wait_online(&["secure"]).await;

    let (mut browser, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", central.addr)).await.unwrap();
    let run_id = central.start_run(generate_body("mock-llm", 24)).await;
    let mut relayed: Vec<Value> = Vec::new();
    let read = async {
        while let Some(Ok(msg)) = browser.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                let end = v["type"] == "run_end" && v["run_id"] == run_id;
                relayed.push(v);
                if end {
                    return;
                }
            }
        }
        panic!("browser socket ended before run_end");
    };
    tokio::time::timeout(WAIT_LIMIT, read).await.expect("run_end relayed in time");

    // Live: the tokens reached the browser one by one before the job's end, not as a backfill.
    let mine: Vec<&Value> = relayed.iter().filter(|e| e["run_id"] == run_id && e["machine_id"] == "secure").collect();
    let first_token = mine.iter().position(|e| e["type"] == "llm_token").expect("llm_token relayed");
    let done = mine.iter().position(|e| e["type"] == "job_done").expect("job_done relayed");
    assert!(first_token < done);
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    let events = central.events(&run_id).await;
    assert_contiguous(&events, "secure");
    let done = of(&events, "secure", "job_done");
    assert_eq!(text_of(&events, "secure"), done[0]["payload"]["output_text"].as_str().unwrap());
    central.stop().await;

    // Without the CA central does not trust the agent: it stays offline, saying why.
    let central = TestCentral::spawn(vec![machine("secure", &agent.base_url)], temp_results_dir()).await;
    let why = central
        .wait_for("a certificate error", || async {
            let ms = central.get_json("/api/machines").await;
            let m = &ms[0];
            let err = m["last_error"].as_str().unwrap_or_default().to_lowercase();
            (m["state"] == "offline" && m["ws_connected"] == false && err.contains("certificate")).then_some(err)
        })
        .await;
    assert!(why.contains("certificate"), "{why}");
}

//! The `bench-agent` binary itself: start-up log with the real port, SIGTERM, config errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

/// `text` as `agent.yaml` in a fresh folder (removed when the returned handle is dropped).
fn write_config(text: &str) -> (crate::support::ResultsDir, std::path::PathBuf) {
    let dir = crate::support::temp_results_dir();
    let path = dir.join("agent.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Starts `bench-agent` with `args`; its stderr lines arrive on the receiver as they are logged.
fn spawn_agent(args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench-agent"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_port_0_logs_the_bound_address_and_stops_cleanly_on_sigterm() {
    let (_dir, config) = write_config("machine_id: bin\nbind_host: 127.0.0.1\nengine: {kind: mock}\n");
    let (mut child, rx) = spawn_agent(&["--config", config.to_str().unwrap(), "--port", "0"]);
    let url = loop {
        let line = rx.recv_timeout(crate::support::WAIT_LIMIT).expect("a log line");
        assert!(!line.contains("SECURITY"), "no warning on loopback: {line}");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(!url.ends_with(":0"), "the real port is logged: {url}");
    let health: serde_json::Value =
        crate::support::http_client().get(format!("{url}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["machine_id"], "bin");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful exit on SIGTERM: {exit}");
}

#[test]
fn a_bad_config_exits_non_zero_naming_file_and_key() {
    let (_dir, config) = write_config("machine_id: bin\nengine: {kind: mock}\nqueue_limt: 3\n");
    let out = Command::new(env!("CARGO_BIN_EXE_bench-agent"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queue_limt") && err.contains("agent.yaml") && err.contains("line 3"), "{err}");
}

#[test]
fn non_loopback_bind_without_token_warns_loudly() {
    let (_dir, config) = write_config("machine_id: bin\nbind_host: 0.0.0.0\nbind_port: 0\nengine: {kind: mock}\n");
    let (mut child, rx) = spawn_agent(&["--config", config.to_str().unwrap()]);
    let warned = loop {
        match rx.recv_timeout(crate::support::WAIT_LIMIT) {
            Ok(line) if line.contains("SECURITY") && line.contains("auth_token") => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "a warning naming auth_token");
}

#[test]
fn check_validates_the_config_without_serving() {
    let (_dir, good) = write_config("machine_id: chk\nbind_port: 0\nengine: {kind: mock}\n");
    let out = Command::new(env!("CARGO_BIN_EXE_bench-agent"))
        .args(["check", "--config", good.to_str().unwrap(), "--port", "9123"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("config ok") && text.contains("machine_id chk") && text.contains(":9123"), "{text}");

    let (_dir2, bad) = write_config("machine_id: chk\nengine: {kind: mock}\nqueue_limt: 3\n");
    let out = Command::new(env!("CARGO_BIN_EXE_bench-agent"))
        .args(["check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queue_limt") && err.contains("line 3") && !err.contains("backtrace"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_certificate_named_in_agent_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("agent.yaml");
    // Relative paths: relative to agent.yaml's folder, whatever the working directory.
    std::fs::write(
        &config,
        "machine_id: tls\nbind_host: 127.0.0.1\nengine: {kind: mock}\ntls: {cert_file: cert.pem, key_file: key.pem}\n",
    )
    .unwrap();
    let (mut child, rx) = spawn_agent(&["--config", config.to_str().unwrap(), "--port", "0"]);
    let url = loop {
        let line = rx.recv_timeout(crate::support::WAIT_LIMIT).expect("a log line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let port = url.strip_prefix("https://127.0.0.1:").expect("an https:// address is logged");
    bench_shared::tls::install_crypto_provider();
    let trusted = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let health: serde_json::Value =
        trusted.get(format!("https://localhost:{port}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["machine_id"], "tls");
    // A client that does not trust the certificate is refused, naming the reason.
    let err = crate::support::http_client().get(format!("https://localhost:{port}/health")).send().await.unwrap_err();
    let chain = format!("{:?}", err).to_lowercase();
    assert!(chain.contains("certificate"), "{chain}");
    let _ = child.kill();
    let _ = child.wait();

    // A key file that is not there stops the start-up, naming the file.
    std::fs::remove_file(dir.path().join("key.pem")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bench-agent"))
        .args(["--config", config.to_str().unwrap(), "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key.pem") && err.contains("tls"), "{err}");
}

#[test]
fn calibrate_prints_the_client_ceiling_and_refuses_a_duration_out_of_range() {
    let out = Command::new(env!("CARGO_BIN_EXE_bench-agent"))
        .args(["calibrate", "--duration-s", "5", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(c["kind"], "full", "{c}");
    for k in ["tok_s", "events_per_s", "ttft_floor_ms"] {
        assert!(c[k].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{k} in {c}");
    }
    let out =
        Command::new(env!("CARGO_BIN_EXE_bench-agent")).args(["calibrate", "--duration-s", "0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--duration-s") && err.contains("1..=600"), "{err}");
}

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

/// Reads log lines until one contains `needle`; returns every line read (guarded by WAIT_LIMIT).
fn lines_until(rx: &Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = rx.recv_timeout(crate::support::WAIT_LIMIT).unwrap_or_else(|_| panic!("no {needle:?} in {seen:#?}"));
        let found = line.contains(needle);
        seen.push(line);
        if found {
            return seen;
        }
    }
}

/// Kills the child when dropped, so a failing assertion leaves no agent running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn no_redirects() -> reqwest::Client {
    bench_shared::tls::install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The generated-token path: a fresh config on 0.0.0.0 refuses every client without the token
/// (loopback included), prints a ready login URL once, keeps the token in a private file next to
/// the config, and the URL opens a browser session that survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_config_beyond_loopback_generates_a_token_and_requires_it() {
    let (dir, config) = write_config(&format!(
        "machine_id: fresh\nbind_host: 0.0.0.0\nbind_port: 0\nresults_dir: {:?}\nengine: {{kind: mock}}\n",
        dir_of_results()
    ));
    let _ = dir;
    let (child, rx) = spawn_agent(&["--config", config.to_str().unwrap()]);
    let mut child = Reaped(child);
    // The notice ends with the opt-out line.
    let lines = lines_until(&rx, "--insecure-no-auth");
    let url = lines
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/login?token=")))
        .unwrap_or_else(|| panic!("a loopback login URL in {lines:#?}"))
        .to_owned();
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let base = url.split("/login").next().unwrap().to_owned();
    let file = config.with_extension("token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token, "the token file next to the config");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "only the user reads it");
    }
    assert!(lines.iter().any(|l| l.contains("machines.yaml") && l.contains(&token)), "says where central needs it");
    let http = no_redirects();
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200, "/health stays open");
    let refused = http.get(format!("{base}/capabilities")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "loopback clients need the token too");
    let ok = http.get(format!("{base}/jobs")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let login = http.get(&url).send().await.unwrap();
    assert_eq!(login.status(), 303, "the printed URL logs a browser in");
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let with_cookie = http.get(format!("{base}/capabilities")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(with_cookie.status(), 200);
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let _ = child.0.wait();

    // A restart keeps the token (printed no more: the log names the file) and the session.
    let (child, rx) = spawn_agent(&["--config", config.to_str().unwrap()]);
    let _child = Reaped(child);
    let lines = lines_until(&rx, "requires the token in");
    assert!(lines.iter().all(|l| !l.contains(&token)), "the token is not printed again: {lines:#?}");
    let line = lines.iter().find(|l| l.contains("listening on")).expect("logged before the auth notice");
    let port = line.rsplit(':').next().unwrap().trim_matches(|c: char| !c.is_ascii_digit()).to_owned();
    let base = format!("http://127.0.0.1:{port}");
    let again = http.get(format!("{base}/capabilities")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(again.status(), 200, "the session survived the restart");
    assert_eq!(http.get(format!("{base}/jobs")).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{base}/jobs")).send().await.unwrap().status(), 401);
}

/// The results folder of the generated-token test (inside its temp dir would need the path
/// before the dir exists; a fresh temp dir of its own is simplest).
fn dir_of_results() -> std::path::PathBuf {
    let d = tempfile::tempdir().unwrap().keep();
    d.join("results")
}

#[test]
fn insecure_no_auth_serves_open_beyond_loopback_with_a_warning() {
    let (dir, config) = write_config("machine_id: bin\nbind_host: 0.0.0.0\nbind_port: 0\nengine: {kind: mock}\n");
    let (child, rx) = spawn_agent(&["--config", config.to_str().unwrap(), "--insecure-no-auth"]);
    let child = Reaped(child);
    let lines = lines_until(&rx, "SECURITY");
    drop(child);
    assert!(lines.iter().any(|l| l.contains("insecure-no-auth")), "{lines:#?}");
    assert!(!config.with_extension("token").exists(), "no token file when opted out");
    let _ = dir;
    // Both at once is a mistake to point out, not to guess at.
    let (_d2, both) = write_config("machine_id: bin\nengine: {kind: mock}\nauth_token: t\ninsecure_no_auth: true\n");
    let out = Command::new(env!("CARGO_BIN_EXE_bench-agent"))
        .args(["check", "--config", both.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("insecure_no_auth"));
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

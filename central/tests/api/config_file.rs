//! `bench-central` refuses a bad machines.yaml at start-up, naming the key and the line.

use std::process::Command;

use super::support::temp_results_dir;

fn run_with(yaml: &str) -> (bool, String) {
    let dir = temp_results_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("machines.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bench-central"))
        .args(["serve", "--config", cfg.to_str().unwrap(), "--results-dir", dir.to_str().unwrap(), "--port", "0"])
        .env("CENTRAL_HOST", "127.0.0.1")
        .output()
        .expect("run bench-central");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn invalid_machines_yaml_fails_naming_key_and_line() {
    let (ok, err) = run_with("machines:\n  - machine_id: a\n    agent_base_url: http://127.0.0.1:1\n    lable: typo\n");
    assert!(!ok);
    assert!(err.contains("lable") && err.contains("line 4"), "{err}");

    let dup = "machines:\n  - machine_id: a\n    agent_base_url: http://127.0.0.1:1\n  - machine_id: a\n    agent_base_url: http://127.0.0.1:2\n";
    let (ok, err) = run_with(dup);
    assert!(!ok);
    assert!(err.contains("machines[1].machine_id") && err.contains("line 4") && err.contains("duplicate"), "{err}");

    let (ok, err) = run_with("machines:\n  - machine_id: a\n    agent_base_url: localhost:9001\n");
    assert!(!ok);
    assert!(err.contains("machines[0].agent_base_url") && err.contains("line 3"), "{err}");

    let (ok, err) = run_with("machines: []\n");
    assert!(!ok);
    assert!(err.contains("machines") && err.contains("line 1") && err.contains("at least one"), "{err}");
}

#[test]
fn binary_serves_on_port_zero_and_logs_the_bound_address() {
    use std::io::{BufRead, BufReader};
    let dir = temp_results_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("machines.yaml");
    std::fs::write(&cfg, "machines:\n  - machine_id: a\n    label: A\n    agent_base_url: http://127.0.0.1:9\n")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench-central"))
        .args(["--config", cfg.to_str().unwrap(), "--results-dir", dir.to_str().unwrap(), "--host", "127.0.0.1"])
        .env("CENTRAL_PORT", "0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bench-central");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split("bench-central listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let addr = addr.expect("a `listening on http://ADDR` line");
    let body = reqwest::blocking_get(&format!("http://{addr}/api/machines"));
    child.kill().unwrap();
    child.wait().unwrap();
    let machines: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(machines[0]["machine_id"], "a");
    assert_eq!(machines[0]["label"], "A");
    assert!(dir.join("runs").is_dir());
}

/// A blocking GET without pulling in reqwest's blocking feature.
mod reqwest {
    pub fn blocking_get(url: &str) -> String {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { crate::support::http_client().get(url).send().await.unwrap().text().await.unwrap() })
    }
}

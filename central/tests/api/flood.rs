//! A slow-headers flood locks nobody out: 3,000 connections that never finish their request
//! headers on central and 3,000 on an agent, and `/health` still answers 200 within 1 s on both,
//! a race through both completes, the flood is closed oldest first, and memory stays bounded.
//! The same for TLS handshakes on an `https://` agent.

use std::net::SocketAddr;
use std::time::Duration;

use bench_agent::testkit::flood::{half_open, rss_kib, timed_get};
use bench_server::tls::TlsFiles;

use super::support::*;

/// Connections per flood (the figure).
const FLOOD: usize = 3000;
/// Both servers' default cap: what a flood can hold at once.
const CAP: usize = bench_server::DEFAULT_MAX_CONNECTIONS;

fn addr_of(base_url: &str) -> SocketAddr {
    let hostport = base_url.split("://").nth(1).unwrap().replace("localhost", "127.0.0.1");
    hostport.parse().unwrap()
}

/// Open files this process may hold (the soft limit).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or("");
    line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_floods_lock_nobody_out_and_a_race_completes() {
    let needed = (2 * FLOOD + 2 * CAP + 512) as u64;
    assert!(
        open_files_limit() >= needed,
        "this test holds ~{needed} sockets: raise the open-files limit (`ulimit -n {needed}`; scripts/test raises it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(dir.path());
    let plain = RealAgent::mock("plain", &["mock-llm"], 5.0, 400.0).await;
    let secure = RealAgent::mock_tls("secure", &["mock-llm"], &tls).await;
    let mut machines = vec![machine("plain", &plain.base_url), machine("secure", &secure.base_url)];
    machines[1].trust_ca_file(tls.cert_file.clone()).unwrap();
    let central = TestCentral::spawn(machines, temp_results_dir()).await;
    central.wait_online(&["plain", "secure"]).await;
    let agent_addr = addr_of(&plain.base_url);
    let rss_before = rss_kib().unwrap_or(0);

    let mut on_agent = half_open(agent_addr, FLOOD).await;
    let mut on_central = half_open(central.addr, FLOOD).await;
    let rss_peak = rss_kib().unwrap_or(0);
    let (agent_status, agent_health) = timed_get(agent_addr, "/health").await;
    let (central_status, central_health) = timed_get(central.addr, "/health").await;
    eprintln!(
        "FIGURE flood: {FLOOD} half-open on the agent (opened in {:.2} s) and {FLOOD} on central ({:.2} s): \
         /health agent {agent_status} in {:.1} ms, central {central_status} in {:.1} ms; test-process RSS \
         {rss_before} KiB before, {rss_peak} KiB with both floods held",
        on_agent.opened_in.as_secs_f64(),
        on_central.opened_in.as_secs_f64(),
        agent_health.as_secs_f64() * 1e3,
        central_health.as_secs_f64() * 1e3,
    );
    assert_eq!((agent_status, central_status), (200, 200), "/health answers on both servers");
    assert!(agent_health < Duration::from_secs(1), "agent /health took {agent_health:?}");
    assert!(central_health < Duration::from_secs(1), "central /health took {central_health:?}");

    // A race through both agents while the flood is held (central's own calls to the flooded
    // agent are complete requests too).
    let run_id = central.start_run(generate_body("mock-llm", 16)).await;
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");

    // The cap held: beyond it the oldest half-open connections were closed, long before the
    // header read timeout (10 s) could have done it.
    let expect = FLOOD - CAP;
    let closed_agent = on_agent.closed(expect, Duration::from_secs(5)).await;
    let closed_central = on_central.closed(expect, Duration::from_secs(5)).await;
    eprintln!("FIGURE flood: closed by the cap: agent {closed_agent}, central {closed_central} of {FLOOD}");
    assert!(closed_agent >= expect && closed_central >= expect, "{closed_agent} / {closed_central} < {expect}");
    // Memory: 6,000 client sockets and 2 × 1,024 server connections in this one process.
    let grown_mib = rss_peak.saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 160, "RSS grew {grown_mib} MiB under the floods");
    drop((on_agent, on_central));

    // TLS: silent connections hold handshake slots; the oldest make room for a real client.
    let secure_addr = addr_of(&secure.base_url);
    let mut on_tls = half_open(secure_addr, FLOOD).await;
    let trusted = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&tls.cert_file).unwrap()).unwrap()])
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let status = trusted.get(format!("{}/health", secure.base_url)).send().await.unwrap().status();
    let tls_health = started.elapsed();
    let closed_tls = on_tls.closed(FLOOD - CAP, Duration::from_secs(5)).await;
    eprintln!(
        "FIGURE flood: {FLOOD} silent connections on the TLS agent: https /health {status} in {:.1} ms (new TLS \
         connection included); {closed_tls} handshakes dropped by the bound",
        tls_health.as_secs_f64() * 1e3
    );
    assert_eq!(status, 200);
    assert!(tls_health < Duration::from_secs(1), "https /health took {tls_health:?}");
    assert!(closed_tls >= FLOOD - CAP, "{closed_tls}");
    central.stop().await;
}

/// A self-signed certificate for `localhost` and its key, as PEM files in `dir`.
fn self_signed(dir: &std::path::Path) -> TlsFiles {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles { cert_file: dir.join("agent-cert.pem"), key_file: dir.join("agent-key.pem") };
    std::fs::write(&files.cert_file, made.cert.pem()).unwrap();
    std::fs::write(&files.key_file, made.signing_key.serialize_pem()).unwrap();
    files
}

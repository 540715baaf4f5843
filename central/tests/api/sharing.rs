//! Results that leave a central: a run bundle exported by one central and imported by another
//! (byte-identical files, marked imported, refused when tampered with, escaping its folder or
//! already there), and the one-file report opened in headless Chromium with every network
//! request going to a proxy that refuses and records it.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;
use super::webdriver::Browser;

/// A label with markup: every page and the report must show it as text.
const FAST: &str = "Fast <b>box</b>";

/// Two mock agents, a central, and one finished race of 3 repeats.
async fn raced() -> (TestCentral, String, [RealAgent; 2]) {
    let fast = RealAgent::mock("fast", &["mock-llm"], 5.0, 400.0).await;
    let slow = RealAgent::mock("slow", &["mock-llm"], 5.0, 150.0).await;
    let mut m = machine("fast", &fast.base_url);
    m.label = Some(FAST.into());
    let central = TestCentral::spawn(vec![m, machine("slow", &slow.base_url)], temp_results_dir()).await;
    central.wait_online(&["fast", "slow"]).await;
    let mut body = generate_body("mock-llm", 12);
    body["repeat"] = json!(3);
    let id = central.start_run(body).await;
    let detail = central.wait_run_end(&id).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    (central, id, [fast, slow])
}

async fn import(central: &TestCentral, bytes: Vec<u8>, content_type: &str) -> (u16, Value) {
    let resp = central
        .client
        .post(central.url("/api/runs/import"))
        .header("Content-Type", content_type)
        .body(bytes)
        .send()
        .await
        .expect("POST /api/runs/import");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

/// The entries of a bundle, by path.
fn entries(gz: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (path, bytes)
        })
        .collect()
}

/// A bundle of `files` (path → bytes, paths written as given, even `..`), optionally with one
/// symbolic link.
fn bundle_of(files: &BTreeMap<String, Vec<u8>>, link: Option<&str>) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        // Written raw, so that a hostile path reaches the importer unchanged.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, bytes.as_slice()).unwrap();
    }
    if let Some(path) = link {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        tar.append_link(&mut h, path, "/etc/passwd").unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bundle_moves_a_run_between_centrals_and_refuses_tampering() {
    let (a, run_id, _agents) = raced().await;
    let resp = a.get(&format!("/api/runs/{run_id}/bundle.tar.gz")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains(&format!("{run_id}.tar.gz")));
    let gz = resp.bytes().await.unwrap().to_vec();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");
    // Every file of the run, and a manifest with each one's size and SHA-256.
    let files = entries(&gz);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let prefix = format!("{run_id}/");
    assert!(names.iter().all(|n| n.starts_with(&prefix)), "{names:?}");
    for name in ["manifest.json", "metadata.json", "events.ndjson", "summary.json"] {
        assert!(files.contains_key(&format!("{prefix}{name}")), "{name} in {names:?}");
    }
    let manifest: Value = serde_json::from_slice(&files[&format!("{prefix}manifest.json")]).unwrap();
    assert_eq!(
        (manifest["format"].as_str(), manifest["run_id"].as_str()),
        (Some("bench-race-run-bundle"), Some(run_id.as_str()))
    );
    for f in manifest["files"].as_array().unwrap() {
        let bytes = std::fs::read(a.run_file(&run_id, f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["bytes"], bytes.len() as u64);
        assert_eq!(f["sha256"].as_str().unwrap(), bench_central::store::bundle::sha256_hex(&bytes), "{f}");
    }

    // Into another central: the same files, marked imported from where it came.
    let b = TestCentral::spawn(vec![], temp_results_dir()).await;
    let (status, body) = import(&b, gz.clone(), "application/gzip").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["run_id"].as_str(), body["status"].as_str()), (Some(run_id.as_str()), Some("complete")), "{body}");
    let origin = a.addr.to_string();
    assert_eq!(body["imported"]["origin"], origin.as_str(), "{body}");
    for name in ["summary.json", "events.ndjson"] {
        let (x, y) =
            (std::fs::read(a.run_file(&run_id, name)).unwrap(), std::fs::read(b.run_file(&run_id, name)).unwrap());
        assert!(x == y, "{name} differs after the round trip");
    }
    let meta = b.read_json(&run_id, "metadata.json");
    assert_eq!(meta["imported"]["origin"], origin.as_str());
    assert_eq!(meta["imported"]["exported_at"], manifest["exported_at"]);
    let mut original = a.read_json(&run_id, "metadata.json");
    original["imported"] = meta["imported"].clone();
    assert_eq!(original, meta, "nothing else of the metadata changed");
    // Listed, shown, on the leaderboard, reported and comparable like any run of its own.
    let list = b.get_json("/api/runs").await;
    assert_eq!((list["total"].as_u64(), list["runs"][0]["imported_from"].as_str()), (Some(1), Some(origin.as_str())));
    assert_eq!(b.get_json(&format!("/api/runs/{run_id}")).await["summary"], a.read_json(&run_id, "summary.json"));
    // (On time to first token: a fast mock can reach its client ceiling, which leaves its decode
    // figure out of the board.)
    let board = b.get_json("/api/leaderboard?metric=ttft_ms").await;
    assert_eq!(board["rows"].as_array().unwrap().len(), 2, "{board:#}");
    assert_eq!(b.get(&format!("/api/runs/{run_id}/report.html")).await.status(), 200);
    // Named by the importer instead.
    let b2 = TestCentral::spawn(vec![], temp_results_dir()).await;
    let resp = b2
        .client
        .post(b2.url("/api/runs/import?origin=lab-central"))
        .header("Content-Type", "application/gzip")
        .body(gz.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(b2.read_json(&run_id, "metadata.json")["imported"]["origin"], "lab-central");

    // Refusals. The same run again: it exists.
    let (status, body) = import(&b, gz.clone(), "application/gzip").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("already exists"), "{body}");
    assert_eq!(body["detail"], serde_json::json!({"run_id": run_id}), "{body}");
    // A file changed after export (the manifest no longer matches): named, refused.
    let empty = TestCentral::spawn(vec![], temp_results_dir()).await;
    let mut tampered = files.clone();
    let events = tampered.get_mut(&format!("{prefix}events.ndjson")).unwrap();
    let at = events.iter().position(|c| c.is_ascii_digit()).unwrap();
    events[at] = if events[at] == b'9' { b'8' } else { events[at] + 1 };
    let (status, body) = import(&empty, bundle_of(&tampered, None), "application/gzip").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("body")), "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("file events.ndjson") && error.contains("does not match the manifest"), "{error}");
    // A path that leaves the run folder: refused, and nothing is written anywhere.
    let mut escaping = files.clone();
    escaping.insert(format!("{prefix}../escaped.txt"), b"outside".to_vec());
    let (status, body) = import(&empty, bundle_of(&escaping, None), "application/gzip").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("leaves the run folder"), "{body}");
    let mut absolute = files.clone();
    absolute.insert("/tmp/escaped.txt".into(), b"outside".to_vec());
    let (status, body) = import(&empty, bundle_of(&absolute, None), "application/gzip").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = import(&empty, bundle_of(&files, Some(&format!("{prefix}link"))), "application/gzip").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not a plain file"), "{body}");
    let mut unlisted = files.clone();
    unlisted.insert(format!("{prefix}extra.csv"), b"a,b\n".to_vec());
    let (status, body) = import(&empty, bundle_of(&unlisted, None), "application/gzip").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not in its manifest"), "{body}");
    let (status, body) = import(&empty, b"not a bundle".to_vec(), "application/gzip").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = import(&empty, gz.clone(), "application/json").await;
    assert_eq!(status, 415, "a bundle is gzip, nothing else");
    assert!(!empty.results_dir.join("escaped.txt").exists() && !empty.results_dir.join("runs/escaped.txt").exists());
    let leftovers: Vec<String> = std::fs::read_dir(empty.results_dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(leftovers.is_empty(), "a refused import leaves nothing: {leftovers:?}");
    assert_eq!(empty.get_json("/api/runs").await["total"], 0);
}

/// A proxy that refuses every request and records its first line: Chromium's only way out.
struct RecordingProxy {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    async fn spawn() -> RecordingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_owned();
                    log.lock().unwrap().push(line);
                    let _ = sock
                        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        RecordingProxy { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_report_renders_offline_in_chromium_and_requests_nothing() -> Result<()> {
    let (central, run_id, _agents) = raced().await;
    let resp = central.get(&format!("/api/runs/{run_id}/report.html")).await;
    ensure!(resp.status() == 200, "report: {}", resp.status());
    ensure!(resp.headers()["content-type"] == "text/html; charset=utf-8");
    let csp = resp.headers()["content-security-policy"].to_str()?.to_owned();
    ensure!(csp.starts_with("default-src 'none'"), "CSP {csp}");
    let html = resp.text().await?;
    // No script, no reference to anything outside the file, the label's markup as text.
    for needle in ["<script", "http://", "https://", "src=", "url(", "@import", "<link"] {
        ensure!(!html.contains(needle), "the report contains {needle:?}");
    }
    ensure!(html.contains("Fast &lt;b&gt;box&lt;/b&gt;") || html.contains("Fast &#60;b&#62;box"), "label not escaped");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(format!("{run_id}-report.html"));
    std::fs::write(&file, &html)?;
    eprintln!("report of {run_id}: {} bytes", html.len());

    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("BENCH_SKIP_BROWSER_TESTS is set: skipping the report in Chromium");
        return Ok(());
    }
    ensure!(super::webdriver::available(), "chromium/chromedriver not found: install chromium and chromium-driver");
    // Every request Chromium makes, loopback included, goes to the proxy, which refuses it: the
    // network is blocked. (Chromium's own background services still try to call home through
    // it; the page's requests are read from DevTools' network log, below.)
    let proxy = RecordingProxy::spawn().await;
    let args = [format!("--proxy-server=http://{}", proxy.addr), "--proxy-bypass-list=<-loopback>".to_owned()];
    let b = Browser::launch_with(1100, 1400, &args).await?;
    let own = format!("file://{}", file.display());
    let result = async {
        // What the browser's start page loaded is not the report's.
        b.goto("about:blank").await?;
        b.page_requests().await?;
        b.goto(&own).await?;
        let shown = b
            .wait_for(
                "the rendered report",
                "const v = document.querySelector('#verdict');
                 return v && document.readyState === 'complete'
                   ? [v.querySelector('.badge').textContent, document.querySelectorAll('svg rect').length,
                      document.querySelectorAll('#machines tbody tr').length, document.querySelectorAll('b').length,
                      document.scripts.length, performance.getEntriesByType('resource').length,
                      [...document.querySelectorAll('[src],[href],[srcset],[action]')].length,
                      document.querySelector('#outputs pre') ? document.querySelector('#outputs pre').textContent.length : 0]
                   : null;",
                Duration::from_secs(20),
            )
            .await?;
        let v = shown.as_array().context("report state")?;
        ensure!(["decided", "tie", "undecided", "unfair"].contains(&v[0].as_str().unwrap_or("")), "verdict badge {shown}");
        ensure!(v[1].as_u64() >= Some(4), "bar charts drawn as SVG: {shown}");
        ensure!(v[2] == 2 && v[3] == 0, "two machines, the label's markup as text: {shown}");
        ensure!(v[4] == 0 && v[5] == 0 && v[6] == 0, "no script, no resource, no reference: {shown}");
        ensure!(v[7].as_u64() > Some(0), "the outputs are shown: {shown}");
        // It prints: a PDF of a page or a few.
        let pdf = b.print_pdf().await?;
        ensure!(pdf.starts_with(b"%PDF"), "not a PDF");
        let pages = pdf.windows(b"/Type /Page".len()).filter(|w| *w == b"/Type /Page").count()
            - pdf.windows(b"/Type /Pages".len()).filter(|w| *w == b"/Type /Pages").count();
        ensure!((1..=8).contains(&pages), "printed to {pages} pages");
        eprintln!("report printed: {} bytes of PDF, {pages} pages", pdf.len());
        Ok(())
    }
    .await;
    // What the page requested (DevTools network events): the file itself, nothing else.
    let requested = b.page_requests().await;
    b.close().await?;
    result?;
    let requested = requested?;
    ensure!(requested.iter().any(|(_, u)| *u == own), "the log shows the report's own load: {requested:?}");
    let others: Vec<&(String, String)> = requested.iter().filter(|(_, u)| *u != own).collect();
    ensure!(others.is_empty(), "the report requested {others:?}");
    // The proxy saw only the browser's own background traffic (update and account services),
    // never anything on behalf of the report.
    let seen = proxy.seen();
    ensure!(!seen.iter().any(|l| l.contains(&run_id) || l.contains("report")), "requests left the report: {seen:?}");
    Ok(())
}

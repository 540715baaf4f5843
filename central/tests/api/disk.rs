//! A full disk: the results directory on a small tmpfs that fills up mid-run. The run ends
//! `failed` with the reason and a `run_end`, no line of `events.ndjson` is torn, and a new run is
//! refused with 507 naming the problem. Needs root (to mount a tmpfs); skipped with a message
//! otherwise.

use std::path::Path;
use std::process::Command;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::fake_agent::FakeAgent;
use super::support::*;

/// A tmpfs of `size` mounted on a fresh temporary directory; unmounted (then the directory
/// removed) on drop.
struct SmallDisk(ResultsDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = temp_results_dir();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&*dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![b'x'; 4096];
        while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&*self.0).status();
    }
}

fn lines_all_parse(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line: {:?}", text.lines().last());
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("unparsable line {line:?}: {e}"));
    }
    text.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_the_run_with_the_reason_and_tears_no_line() {
    let Some(disk) = SmallDisk::mount("512k") else {
        eprintln!(
            "SKIPPED a_full_disk_fails_the_run_with_the_reason_and_tears_no_line: cannot mount a tmpfs (needs root)"
        );
        return;
    };
    let fake = FakeAgent::spawn("filler", &["mock-llm"]).await;
    let central = TestCentral::spawn(vec![machine("filler", &fake.base_url)], disk.0.clone()).await;
    central.wait_online(&["filler"]).await;
    let (mut browser, _) =
        tokio_tungstenite::connect_async(central.url("/api/ws").replace("http", "ws")).await.unwrap();
    let run_id = central.start_run(generate_body("mock-llm", 16)).await;
    let job = fake.wait_jobs(1).await.remove(0);
    fake.started(&job.job_id);
    central.wait_seq(&run_id, "filler", 1).await;

    // The disk fills up; the next events cannot be stored.
    disk.fill();
    let long = "x".repeat(2000);
    for _ in 0..10 {
        fake.token(&job.job_id, &long);
    }

    // Browsers are told: run_end with the run failed and the reason.
    let end = tokio::time::timeout(WAIT_LIMIT, async {
        while let Some(msg) = browser.next().await {
            if let Ok(Message::Text(t)) = msg {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "run_end" && v["run_id"] == run_id.as_str() {
                    return v;
                }
            }
        }
        panic!("browser socket closed before run_end")
    })
    .await
    .expect("run_end in time");
    assert_eq!(end["status"], "failed", "{end}");
    let reason = end["reason"].as_str().unwrap();
    assert!(reason.contains("no space left on device writing events.ndjson"), "{reason}");
    // Its job is cancelled on the agent (nobody can store its results).
    central.wait_for("cancel sent", || async { fake.cancels().contains(&job.job_id).then_some(()) }).await;

    // Every line that reached the file is whole.
    let events = central.run_file(&run_id, "events.ndjson");
    assert!(lines_all_parse(&events) >= 2);

    // A new run is refused with 507 and the reason while the disk is full.
    let (status, body) = central.post_run(generate_body("mock-llm", 16)).await;
    assert_eq!(status, 507, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no space left on device"), "{body}");

    // Meanwhile the API says what happened.
    let detail = central.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(detail["metadata"]["status"], "failed", "{detail}");
    // With space again, the failed run's files are written (retried), whole, and a run works.
    disk.free();
    let path = central.run_file(&run_id, "metadata.json");
    central
        .wait_for("metadata.json says failed", || async {
            let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            (meta["status"] == "failed").then_some(())
        })
        .await;
    let summary = central.read_json(&run_id, "summary.json");
    assert_eq!(summary["status"], "failed", "{summary}");
    lines_all_parse(&events);
    // The lines that could not be written while the disk was full were kept and written once it
    // had space: the agent's events are stored without a gap.
    let stored = central.events(&run_id).await;
    let n = assert_contiguous(&stored, "filler");
    assert!(n >= 2, "{n} events stored");
    let (status, body) = central.post_run(generate_body("mock-llm", 16)).await;
    assert_eq!(status, 201, "{body}");
    central.stop().await;
}

//! Sweep runs against small in-process engines (the real engine's sweep test lives in
//! `agent/tests/api/sweep.rs`). The clock is paused: backoff waits and engine delays take no
//! real time, and every timing figure is exact.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bench_shared::engine::{EngineKind, ModelInfo};
use bench_shared::job::JobSpec;
use bench_shared::metrics::{ChunkArrival, EngineStats, RequestTrace, TokenChannel};
use bench_shared::sweep::{
    CellState, LOAD_TIMES_CSV_HEADER, REQUESTS_CSV_HEADER, SUMMARY_CSV_HEADER, SweepDone, SweepProgress,
};

use super::*;
use crate::engine::{GenOutcome, GenRequest, TextChunk, TokenSink};

type FailRule = Box<dyn Fn(u32, &GenRequest) -> bool + Send + Sync>;

/// An engine whose prompt token count is `TEMPLATE_TOKENS + chars / 3.5` and which fails the
/// calls whose numbers (1-based) `fails` says.
struct TestEngine {
    calls: AtomicU32,
    fails: FailRule,
    /// Prompt tokens seen per call, to check calibration.
    seen: Mutex<Vec<(bool, u64)>>,
}

const TEMPLATE_TOKENS: u64 = 25;

impl TestEngine {
    fn new(fails: impl Fn(u32, &GenRequest) -> bool + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(TestEngine { calls: AtomicU32::new(0), fails: Box::new(fails), seen: Mutex::new(Vec::new()) })
    }
}

impl std::fmt::Debug for TestEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEngine").field("calls", &self.calls).finish_non_exhaustive()
    }
}

#[async_trait]
impl Engine for TestEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Openai
    }
    fn base_url(&self) -> &str {
        "http://test.invalid"
    }
    async fn version(&self) -> Result<Option<String>, EngineError> {
        Ok(None)
    }
    async fn list_models(&self) -> Result<Vec<ModelInfo>, EngineError> {
        Ok(vec![ModelInfo { name: "m".into(), ..Default::default() }])
    }
    async fn generate(&self, req: &GenRequest, tokens: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        if (self.fails)(n, req) {
            return Err(EngineError::Http { status: 503, message: format!("call {n} refused") });
        }
        let prompt_tokens = TEMPLATE_TOKENS + (req.prompt.len() as f64 / 3.5).round() as u64;
        self.seen.lock().unwrap().push((req.stream, prompt_tokens));
        // The first call of the process is slow (a model load); then 50 ms TTFT, 10 ms per token.
        let ttft_ms = if n == 1 { 400 } else { 50 };
        let start = tokio::time::Instant::now();
        let mut chunks = Vec::new();
        for i in 0..req.max_tokens as u64 {
            let offset_ms = ttft_ms + 10 * i;
            tokio::time::sleep_until(start + Duration::from_millis(offset_ms)).await;
            chunks.push(ChunkArrival { offset_us: offset_ms * 1000, channel: TokenChannel::Content });
            if let (Some(sink), true) = (tokens, req.stream) {
                let _ = sink.send(TextChunk {
                    at: std::time::Instant::now(),
                    wall_s: 0.0,
                    text: "x".into(),
                    channel: TokenChannel::Content,
                });
            }
        }
        let end_us = start.elapsed().as_micros() as u64 + 1000;
        if !req.stream {
            chunks.iter_mut().for_each(|c| c.offset_us = end_us);
        }
        Ok(GenOutcome {
            trace: RequestTrace { chunks, end_offset_us: end_us, streamed: req.stream },
            // Like an engine without stream usage: the stream reports prompt tokens only.
            stats: EngineStats {
                prompt_tokens: Some(prompt_tokens),
                completion_tokens: (!req.stream).then_some(req.max_tokens as u64),
                ..Default::default()
            },
            ..Default::default()
        })
    }
    async fn unload(&self, _model: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
}

fn spec(extra: serde_json::Value) -> SweepSpec {
    let mut body = serde_json::json!({
        "test_type": "llm_sweep", "models": ["m"], "ctx": 512, "sweep_count": 2, "parallel": [1, 2],
        "runs": 1, "warmup": 3, "out_tokens": 16
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    match JobSpec::from_json(&body, 0).unwrap() {
        JobSpec::LlmSweep(s) => s,
        other => panic!("{other:?}"),
    }
}

struct Outcome {
    result: Result<SweepDone, SweepError>,
    events: Vec<Event>,
    dir: PathBuf,
}

impl Outcome {
    fn progress(&self) -> impl Iterator<Item = &SweepProgress> {
        self.events.iter().filter_map(|e| if let Event::SweepProgress(p) = e { Some(&**p) } else { None })
    }
    fn read(&self, name: &str) -> Vec<csv::StringRecord> {
        let mut r = csv::Reader::from_path(self.dir.join(name)).unwrap();
        r.records().map(|r| r.unwrap()).collect()
    }
    fn header(&self, name: &str) -> Vec<String> {
        let mut r = csv::Reader::from_path(self.dir.join(name)).unwrap();
        r.headers().unwrap().iter().map(str::to_owned).collect()
    }
}

async fn run(engine: Arc<TestEngine>, spec: SweepSpec, dir: &std::path::Path, cancel: CancellationToken) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let job = SweepJob {
        engine,
        spec,
        out_dir: dir.to_owned(),
        calibration_cache: dir.join("calibration_cache.json"),
        cancel,
    };
    let result = run_job(job, tx).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Outcome { result, events, dir: dir.to_owned() }
}

/// A fresh folder for a sweep's files, removed when dropped.
fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("bench-sweep-").tempdir().unwrap()
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"))
}

#[tokio::test(start_paused = true)]
async fn sweep_writes_three_csvs_calibrates_and_reuses_the_cache() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let engine = TestEngine::new(|_, _| false);
    let out = run(engine.clone(), spec(serde_json::json!({})), dir, CancellationToken::new()).await;
    let done = out.result.as_ref().unwrap();
    assert_eq!(done.summary_rows.len(), 4, "2 ctx points × 2 parallel levels");

    // Headers are the shared constants.
    assert_eq!(out.header("requests.csv"), REQUESTS_CSV_HEADER);
    assert_eq!(out.header("summary.csv"), SUMMARY_CSV_HEADER);
    assert_eq!(out.header("load_times.csv"), LOAD_TIMES_CSV_HEADER);

    // requests.csv: 3 warm-ups per cell + 2 rows per logical request (1 + 2 per ctx point).
    let h = out.header("requests.csv");
    let rows = out.read("requests.csv");
    assert_eq!(rows.len(), 4 * 3 + 2 * 2 * (1 + 2));
    let warm: Vec<_> = rows.iter().filter(|r| &r[col(&h, "warmup_run")] == "true").collect();
    assert_eq!(warm.len(), 12);
    assert!(warm.iter().all(|r| &r[col(&h, "run_mode")] == "stream"));
    let recorded: Vec<_> = rows.iter().filter(|r| &r[col(&h, "warmup_run")] == "false").collect();
    for pair in recorded.chunks(2) {
        assert_eq!((&pair[0][col(&h, "run_mode")], &pair[1][col(&h, "run_mode")]), ("stream", "nonstream"));
        assert_eq!(pair[0][col(&h, "idx")], pair[1][col(&h, "idx")]);
        // The stream reported no completion count: it reuses the non-stream call's.
        assert_eq!(&pair[0][col(&h, "usage_source")], "nonstream");
        assert_eq!(&pair[0][col(&h, "completion_tokens")], "16");
        let ttft: f64 = pair[0][col(&h, "ttft_s")].parse().unwrap();
        let wall: f64 = pair[0][col(&h, "wall_s")].parse().unwrap();
        assert!(ttft > 0.0 && ttft < wall, "ttft {ttft} wall {wall}");
        assert_eq!(&pair[1][col(&h, "ttft_s")], "");
    }
    let events_rows = out.events.iter().filter(|e| matches!(e, Event::SweepRow(_))).count();
    assert_eq!(events_rows, rows.len());

    // Calibration: every recorded prompt within 5 % of its target (512 − 16 and 256 − 16).
    let lh = out.header("load_times.csv");
    let loads = out.read("load_times.csv");
    assert_eq!(loads.len(), 4);
    for (i, l) in loads.iter().enumerate() {
        let target: f64 = l[col(&lh, "target_prompt_tokens")].parse().unwrap();
        let got: f64 = l[col(&lh, "calibrated_prompt_tokens")].parse().unwrap();
        assert!((got - target).abs() <= 0.05 * target, "{target} vs {got}");
        assert_eq!(&l[col(&lh, "calibration_within_tolerance")], "true");
        // Cells are ordered ctx, then par: the par-2 cell reuses the par-1 cell's calibration.
        let hit = if i % 2 == 0 { "false" } else { "true" };
        assert_eq!(&l[col(&lh, "calibration_cache_hit")], hit);
        if hit == "true" {
            assert_eq!(&l[col(&lh, "calibration_calls")], "0");
        }
    }
    assert!([240.0, 496.0].contains(&loads[0][col(&lh, "target_prompt_tokens")].parse::<f64>().unwrap()));
    // The first cell found a 400 ms first TTFT and 50 ms later ones.
    let est: f64 = loads[0][col(&lh, "warmup_load_est_s")].parse().unwrap();
    assert!((est - 0.35).abs() < 0.01, "load estimate {est}");
    assert_eq!(&loads[0][col(&lh, "warmup_load_est_clamped")], "false");
    let first_calls: u32 = loads[0][col(&lh, "calibration_calls")].parse().unwrap();
    assert!(first_calls > 0, "the 4.0 chars/token estimate misses a 3.5 chars/token engine");
    let seen = engine.seen.lock().unwrap().clone();
    let recorded_tokens: Vec<u64> = seen.iter().rev().take(2).map(|(_, t)| *t).collect();
    assert!(recorded_tokens.iter().all(|t| (*t as f64 - 496.0).abs() <= 0.05 * 496.0), "{recorded_tokens:?}");

    // summary.csv: counts by logical request and positive rates.
    let sh = out.header("summary.csv");
    let sums = out.read("summary.csv");
    assert_eq!(&sums[1][col(&sh, "par")], "2");
    assert_eq!(&sums[1][col(&sh, "request_count")], "2");
    assert_eq!(&sums[1][col(&sh, "success_count")], "2");
    assert_eq!(&sums[1][col(&sh, "error_count")], "0");
    for name in
        ["stream_toks_per_s_total", "nonstream_toks_per_s_total", "completion_toks_per_s_total", "aggregate_toks_per_s"]
    {
        assert!(sums[1][col(&sh, name)].parse::<f64>().unwrap() > 0.0, "{name}");
    }
    // The aggregate is all recorded tokens over the cell's wall time.
    let num = |name: &str| sums[1][col(&sh, name)].parse::<f64>().unwrap();
    let all_tokens = num("stream_completion_tokens") + num("nonstream_completion_tokens");
    assert!((num("aggregate_toks_per_s") - all_tokens / num("elapsed_s")).abs() < 1e-6 * all_tokens);

    // Progress reached done for every cell with all requests counted.
    let last: Vec<_> = out.progress().filter(|p| p.state == CellState::Done).collect();
    assert_eq!(last.len(), 4);
    assert!(last.iter().all(|p| p.requests_done == p.requests_total && p.warmup_done == 3));
    assert!(out.progress().any(|p| p.state == CellState::Calibrating));

    // Second sweep: starts calibrated from the cache, no extra calibration calls.
    let out2 = run(engine, spec(serde_json::json!({})), dir, CancellationToken::new()).await;
    out2.result.as_ref().unwrap();
    let loads = out2.read("load_times.csv");
    assert_eq!(loads.len(), 8, "appended under the same header");
    for l in &loads[4..] {
        assert_eq!(&l[col(&lh, "calibration_cache_hit")], "true");
        assert_eq!(&l[col(&lh, "calibration_calls")], "0");
        assert_eq!(&l[col(&lh, "calibration_within_tolerance")], "true");
    }
}

#[tokio::test(start_paused = true)]
async fn failed_calls_are_retried_on_the_backoff_schedule_then_become_error_rows() {
    let tmp = temp_dir();
    let dir = tmp.path();
    // Calls 2 and 3 fail once each (a retry that succeeds); every non-stream call with a full
    // answer fails for good (the recorded non-stream calls: 5 attempts each).
    let engine = TestEngine::new(|n, req| n == 2 || n == 3 || (!req.stream && req.max_tokens > 1));
    let start = tokio::time::Instant::now();
    let out = run(
        engine.clone(),
        spec(serde_json::json!({"ctx": 256, "sweep_count": 1, "parallel": [1]})),
        dir,
        CancellationToken::new(),
    )
    .await;
    out.result.as_ref().unwrap();
    let retry_events: Vec<_> = out.progress().filter(|p| p.state == CellState::Retrying).collect();
    // Updates during a wait (live-rate samples) keep showing the retry with the time left; the
    // first event of each retry carries the full delay.
    let mut retries: Vec<&SweepProgress> = Vec::new();
    for p in &retry_events {
        if retries.last().is_none_or(|last| last.detail != p.detail) {
            retries.push(p);
        }
    }
    assert!(
        retry_events
            .iter()
            .any(|p| p.detail.as_deref().unwrap().contains("attempt 4/5") && p.retry_delay_s.unwrap() < 29.5),
        "the 30 s wait is counted down by later updates"
    );
    let delays: Vec<f64> = retries.iter().map(|p| p.retry_delay_s.unwrap()).collect();
    // Warm-up 2 failed once (1 s), then its retry (call 3) failed too (5 s); later, the
    // recorded non-stream call failed five times: 1, 5, 15, 30 s and then gave up.
    assert_eq!(delays, vec![1.0, 5.0, 1.0, 5.0, 15.0, 30.0]);
    assert!(retries[1].detail.as_deref().unwrap().contains("attempt 2/5"), "{:?}", retries[1].detail);
    assert!(start.elapsed() >= Duration::from_secs(57));

    let h = out.header("requests.csv");
    let rows = out.read("requests.csv");
    let warm2 = &rows[1];
    assert_eq!((&warm2[col(&h, "attempts")], &warm2[col(&h, "error")]), ("3", ""));
    let ns = rows.iter().find(|r| &r[col(&h, "run_mode")] == "nonstream").unwrap();
    assert_eq!(&ns[col(&h, "attempts")], "5");
    assert!(ns[col(&h, "error")].contains("503"), "{:?}", &ns[col(&h, "error")]);
    let sh = out.header("summary.csv");
    let sum = &out.read("summary.csv")[0];
    assert_eq!((&sum[col(&sh, "success_count")], &sum[col(&sh, "error_count")]), ("0", "1"));
    // The stream call succeeded, so stream figures exist even though the request failed.
    assert!(sum[col(&sh, "stream_toks_per_s_total")].is_empty(), "no usage without the non-stream call");
    let last = out.progress().last().unwrap();
    assert_eq!((last.state, last.errors, last.requests_done), (CellState::Done, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn unknown_model_and_cancel_end_the_sweep() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let out = run(
        TestEngine::new(|_, _| false),
        spec(serde_json::json!({"models": ["nope"]})),
        dir,
        CancellationToken::new(),
    )
    .await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(err.to_string().contains("available models: m"), "{err}");
    assert!(out.events.is_empty());

    // An engine that does not answer at all is fatal before any CSV is created.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unreachable = crate::engine::build(&crate::engine::EngineSettings {
        kind: EngineKind::Openai,
        base_url: format!("http://{closed}"),
        api_key: None,
        fallback: crate::engine::Fallback::None,
        request_timeout_s: 5.0,
        mock: Default::default(),
        ..crate::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
    });
    let (tx, _rx) = mpsc::unbounded_channel();
    let job = SweepJob {
        engine: unreachable,
        spec: spec(serde_json::json!({})),
        out_dir: dir.join("unreachable"),
        calibration_cache: dir.join("unreachable/cache.json"),
        cancel: CancellationToken::new(),
    };
    let err = run_job(job, tx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EngineUnreachable, "{err}");
    assert!(!dir.join("unreachable/requests.csv").exists());

    // Cancel from inside the engine during the first recorded request: the warm-up rows stay.
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let engine = TestEngine::new(move |n, _| {
        if n == 5 {
            c2.cancel();
        }
        false
    });
    let out = run(engine, spec(serde_json::json!({})), dir, cancel).await;
    assert!(out.result.as_ref().unwrap_err().is_cancelled());
    let rows = out.read("requests.csv");
    assert!(rows.len() >= 3, "warm-up rows were flushed: {}", rows.len());
    assert_eq!(out.progress().last().unwrap().state, CellState::Cancelled);
}

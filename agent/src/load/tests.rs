//! Loads against the in-process slot engine (real HTTP, the agent's OpenAI client): pacing and
//! records, warm-up exclusion, the capacity search's knee, failures and cancellation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_shared::event::Event;
use bench_shared::job::JobSpec;
use bench_shared::load::{CapacitySpec, LoadSpec, StopReason};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::engine::openai::OpenAiEngine;
use crate::testkit::slot_engine::{SLOT_MODEL, SlotEngine, SlotScript};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ctx(url: &str, slo: Option<Slo>) -> LoadCtx {
    LoadCtx {
        engine: Arc::new(OpenAiEngine::new(url, None)),
        request_timeout: Duration::from_secs(30),
        cancel: CancellationToken::new(),
        slo,
    }
}

/// Collects every event.
fn recorder() -> (Emit, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (Arc::new(move |e| sink.lock().unwrap().push(e)), seen)
}

fn load_spec(mut body: Value) -> LoadSpec {
    body["test_type"] = json!("llm_load");
    body["model"] = json!(SLOT_MODEL);
    match JobSpec::from_json(&body, 0).unwrap() {
        JobSpec::LlmLoad(s) => s,
        other => panic!("{other:?}"),
    }
}

fn capacity_spec(mut body: Value) -> CapacitySpec {
    body["test_type"] = json!("llm_capacity");
    body["model"] = json!(SLOT_MODEL);
    match JobSpec::from_json(&body, 0).unwrap() {
        JobSpec::LlmCapacity(s) => s,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_sends_on_schedule_and_records_every_request() {
    let engine = SlotEngine::spawn(SlotScript::new(16, ms(5), ms(2), 5));
    let spec = load_spec(json!({"rate_rps": 25, "arrival": "constant", "requests": 30, "warmup_requests": 5,
        "max_tokens": 5, "input_tokens": 12, "slo": {"ttft_ms": 5000}}));
    let (emit, seen) = recorder();
    let done = run_load(&ctx(&engine.base_url, spec.slo), &spec, &emit).await.unwrap();
    let s = &done.summary;
    assert_eq!((s.requests_completed, s.requests_failed, s.warmup_requests), (30, 0, 5));
    assert_eq!(engine.served(), 35);
    // 30 requests due 40 ms apart: the window is 1.2 s; sent on time within a loaded machine's slack.
    assert!((s.achieved_rps - 25.0).abs() < 25.0 * 0.05, "achieved {}", s.achieved_rps);
    assert!(!s.under_delivered);
    assert!(s.send_lateness_ms.unwrap().p50 < 20.0, "{:?}", s.send_lateness_ms);
    assert_eq!(s.output_tokens_mean, Some(5.0));
    assert_eq!(s.input_tokens_mean, Some(13.0), "12 words and the tag");
    let tpot = s.tpot_ms.unwrap();
    assert!(tpot.p50 >= 1.5, "gaps are 2 ms: {tpot:?}");
    assert_eq!(s.goodput_rps.map(|g| g > 0.0), Some(true));
    assert_eq!(s.slo_attainment_pct, Some(100.0));
    let events = seen.lock().unwrap();
    let rows: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::LoadRequests(r) => Some(r.rows.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(rows.len(), 35, "every request, warm-ups included, reaches load_requests");
    assert_eq!(rows.iter().filter(|r| r.warmup).count(), 5);
    let mut due: Vec<f64> = rows.iter().filter_map(|r| r.scheduled_s).collect();
    due.sort_by(f64::total_cmp);
    assert!((due[1] - due[0] - 0.04).abs() < 1e-9, "constant arrivals 40 ms apart");
    assert!(events.iter().any(|e| matches!(e, Event::LoadProgress(p) if p.sent > 0)), "a progress event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_leave_the_figures_alone() {
    // One slot; its first three answers take 600 ms longer (a cold engine).
    let script = SlotScript { slow_first: 3, slow_extra: ms(600), ..SlotScript::new(1, ms(10), ms(1), 3) };
    let spec =
        |warmup: u32| load_spec(json!({"concurrency": 1, "requests": 6, "warmup_requests": warmup, "max_tokens": 3}));
    let (emit, _) = recorder();
    let engine = SlotEngine::spawn(script);
    let with = run_load(&ctx(&engine.base_url, None), &spec(3), &emit).await.unwrap();
    let engine = SlotEngine::spawn(script);
    let without = run_load(&ctx(&engine.base_url, None), &spec(0), &emit).await.unwrap();
    let ttft = |d: &LoadDone| d.summary.ttft_ms.unwrap();
    assert!(ttft(&with).max < 400.0, "the slow start is in the warm-up: {:?}", ttft(&with));
    assert!(ttft(&without).max >= 600.0, "without warm-up it shows: {:?}", ttft(&without));
    assert_eq!(with.summary.warmup_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_search_finds_the_slot_count() {
    // Four slots, 140 ms per answer: a fifth concurrent request waits a whole answer for its
    // first token, so p90 TTFT ≤ 100 ms holds up to 4 and breaks at 5 (one request in five waits).
    let engine = SlotEngine::spawn(SlotScript::new(4, ms(30), ms(10), 12));
    let spec = capacity_spec(json!({"search": "concurrency", "start": 2, "max": 16, "percentile": 90,
        "slo": {"ttft_ms": 100}, "duration_s": 1.0, "max_tokens": 12}));
    let (emit, seen) = recorder();
    let done = run_capacity(&ctx(&engine.base_url, Some(spec.slo)), &spec, &emit).await.unwrap();
    let cap = done.capacity.as_ref().unwrap();
    assert_eq!(
        (cap.capacity, cap.first_failing),
        (Some(4.0), Some(5.0)),
        "{:#?}",
        cap.curve.iter().map(|s| (s.level, s.pass, &s.slo.reasons)).collect::<Vec<_>>()
    );
    assert_eq!(cap.searches[0].stopped, StopReason::Converged);
    assert_eq!(cap.curve.iter().map(|s| s.level).collect::<Vec<_>>(), vec![2.0, 4.0, 8.0, 6.0, 5.0]);
    assert_eq!(done.summary_step, Some(1), "the figures are the step at capacity");
    assert_eq!(done.summary.concurrency, Some(4));
    // Throughput rises to the slot count and stays there.
    let tput: Vec<f64> = cap.curve.iter().map(|s| s.summary.request_throughput_rps).collect();
    assert!(tput[1] > 1.6 * tput[0] && tput[2] < 1.25 * tput[1], "{tput:?}");
    let steps = seen.lock().unwrap().iter().filter(|e| matches!(e, Event::LoadStep(_))).count();
    assert_eq!(steps, 5);
}

#[tokio::test]
async fn a_dead_engine_or_unknown_model_is_an_error_not_a_result() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (emit, _) = recorder();
    let spec = load_spec(json!({"rate_rps": 5, "requests": 3}));
    let err = run_load(&ctx(&url, None), &spec, &emit).await.unwrap_err();
    assert!(matches!(err, LoadError::Engine(EngineError::Unreachable { .. })), "{err:?}");
    let engine = SlotEngine::spawn(SlotScript::new(1, ms(1), ms(1), 2));
    let mut spec = spec;
    spec.model = "other".into();
    let err = run_load(&ctx(&engine.base_url, None), &spec, &emit).await.unwrap_err();
    assert!(matches!(err, LoadError::Engine(EngineError::ModelNotFound { .. })), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_load() {
    let engine = SlotEngine::spawn(SlotScript::new(2, ms(50), ms(50), 100));
    let spec = load_spec(json!({"rate_rps": 20, "duration_s": 60}));
    let c = ctx(&engine.base_url, None);
    let cancel = c.cancel.clone();
    let (emit, _) = recorder();
    let started = std::time::Instant::now();
    let run = tokio::spawn(async move { run_load(&c, &spec, &emit).await });
    tokio::time::sleep(ms(300)).await;
    cancel.cancel();
    let result = run.await.unwrap();
    assert_eq!(result.unwrap_err(), LoadError::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_pacer_hands_over_a_tenth_gap_early_within_its_bounds() {
    assert_eq!(step::lead(10.0), ms(2), "low rates: the longest lead (parked workers wake slowly)");
    assert_eq!(step::lead(100.0), ms(1));
    assert_eq!(step::lead(500.0), Duration::from_micros(500));
    assert_eq!(step::lead(100_000.0), Duration::from_micros(500));
    assert_eq!(step::lead(0.0), ms(2));
}

#[tokio::test]
async fn a_request_due_later_is_sent_no_earlier_than_due() {
    for wait_us in [0, 100, 400, 1500] {
        let at = std::time::Instant::now() + Duration::from_micros(wait_us);
        crate::engine::wait_until(Some(at)).await;
        assert!(std::time::Instant::now() >= at, "returned before its instant ({wait_us} µs)");
    }
    // No instant: at once.
    crate::engine::wait_until(None).await;
}

//! One job on an original agent as central drives it, without I/O: central posts one original
//! job per repeat (warm-ups first) and turns what the agent broadcasts into this project's
//! events, numbered in order (`job_started`, `llm_token`, `request_done`, `job_done` over the
//! repeats, or `job_error` / `job_cancelled`), so a run follows it like any other agent's job.
//!
//! Its figures are labelled for what they are: measured by its own client, `gen_tokens` counted
//! in words (`token_source: words`), rates in words per second; token arrival times are central's
//! wall clock when the text reached it (its `timestamp_s` is a monotonic reading, no wall clock).

use bench_shared::api::{JobStatus, JobView};
use bench_shared::engine::EngineKind;
use bench_shared::event::{
    Envelope, ErrorKind, Event, JobCancelled, JobDone, JobError, JobStarted, LlmToken, RawEnvelope, Received,
    RequestDone,
};
use bench_shared::job::{GenerateSpec, JobSpec, TestType};
use bench_shared::metrics::{RequestMetrics, TokenChannel, TokenSource, aggregate};

use super::wire::OriginalDone;

/// The note every result from an original agent carries.
pub const NOTE: &str = "measured by an original bench-race agent's own client (wall clock around its HTTP stream); gen_tokens counts whitespace-separated words, not tokens, so its rates are words per second";

/// The request in flight.
#[derive(Debug, Clone, PartialEq)]
struct Current {
    /// The original agent's job id for it.
    original_job_id: String,
    /// Repeat (or warm-up) index.
    index: u32,
    warmup: bool,
    /// `llm_token` events received.
    chunks: u64,
}

/// One job's state and its translated events.
#[derive(Debug, Clone)]
pub struct OriginalRun {
    pub job_id: String,
    pub spec: GenerateSpec,
    machine_id: String,
    seq: u64,
    log: Vec<Received>,
    pub status: JobStatus,
    current: Option<Current>,
    requests: Vec<RequestMetrics>,
    output_text: String,
    engine: EngineKind,
    fallback_reason: Option<String>,
    error: Option<JobError>,
    created_at_s: f64,
}

impl OriginalRun {
    pub fn new(job_id: String, spec: GenerateSpec, machine_id: String, engine: EngineKind, now_s: f64) -> Self {
        OriginalRun {
            job_id,
            spec,
            machine_id,
            seq: 0,
            log: Vec::new(),
            status: JobStatus::Queued,
            current: None,
            requests: Vec::new(),
            output_text: String::new(),
            engine,
            fallback_reason: None,
            error: None,
            created_at_s: now_s,
        }
    }

    /// Requests to post, warm-ups first: `(index, warmup)`.
    pub fn plan(&self) -> Vec<(u32, bool)> {
        (0..self.spec.warmup).map(|i| (i, true)).chain((0..self.spec.repeat).map(|i| (i, false))).collect()
    }

    fn emit(&mut self, event: Event, now_s: f64) -> Received {
        self.seq += 1;
        let env = Envelope {
            job_id: self.job_id.clone(),
            seq: self.seq,
            machine_id: self.machine_id.clone(),
            emitted_at_s: now_s,
            fallback_reason: self.fallback_reason.clone(),
            event,
        };
        // An envelope of plain data always serializes, and reads back as the raw shape.
        let raw: RawEnvelope = serde_json::to_value(&env)
            .and_then(serde_json::from_value)
            .expect("an envelope reads back as a raw envelope");
        let received = Received { env: raw, event: bench_shared::event::Decoded::Known(env.event) };
        self.log.push(received.clone());
        received
    }

    /// The job begins (central reached `start_at`): `job_started`.
    pub fn started(&mut self, start_at: Option<u64>, engine_base_url: String, now_s: f64) -> Received {
        self.status = JobStatus::Running;
        let event = Event::JobStarted(JobStarted {
            test_type: TestType::LlmGenerate,
            models: vec![self.spec.model.clone()],
            engine: self.engine,
            engine_base_url,
            start_at,
            started_at_s: now_s,
            notes: vec![NOTE.to_owned()],
        });
        self.emit(event, now_s)
    }

    /// The original agent accepted the request posted for `(index, warmup)`.
    pub fn request_sent(&mut self, original_job_id: String, index: u32, warmup: bool) {
        self.current = Some(Current { original_job_id, index, warmup, chunks: 0 });
    }

    /// The original job id of the request in flight.
    pub fn in_flight(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.original_job_id.as_str())
    }

    /// Its `llm_token` for the request in flight: text as it arrived at central.
    pub fn token(&mut self, text: String, now_s: f64) -> Option<Received> {
        let c = self.current.as_mut()?;
        c.chunks += 1;
        let (index, warmup) = (c.index, c.warmup);
        if !warmup && index == 0 {
            self.output_text.push_str(&text);
        }
        let tokens = text.split_whitespace().count() as u32;
        let event = Event::LlmToken(LlmToken {
            text,
            timestamp_s: now_s,
            repeat_index: index,
            channel: TokenChannel::Content,
            warmup,
            tokens,
        });
        Some(self.emit(event, now_s))
    }

    /// Its `job_done` for the request in flight: `request_done` with its figures, labelled.
    pub fn request_done(&mut self, done: OriginalDone, now_s: f64) -> Option<Received> {
        let c = self.current.take()?;
        let engine = done.engine_kind();
        if engine == EngineKind::Mock {
            self.fallback_reason = Some(format!(
                "original agent ran its mock stream ({})",
                done.fallback_reason.as_deref().unwrap_or("no reason given")
            ));
        }
        self.engine = engine;
        let metrics = metrics(&done, c.chunks);
        if !c.warmup {
            self.requests.push(metrics.clone());
        }
        let event = Event::RequestDone(Box::new(RequestDone {
            repeat_index: c.index,
            warmup: c.warmup,
            model: done.model.unwrap_or_else(|| self.spec.model.clone()),
            engine,
            metrics,
        }));
        Some(self.emit(event, now_s))
    }

    /// Every request answered: `job_done` over the recorded repeats.
    pub fn finish(&mut self, now_s: f64) -> Received {
        self.status = JobStatus::Done;
        let done = JobDone::from_requests(
            &self.spec.model,
            self.engine,
            self.fallback_reason.clone(),
            self.requests.clone(),
            self.output_text.clone(),
            None,
            vec![NOTE.to_owned()],
        );
        self.emit(Event::JobDone(Box::new(done.into())), now_s)
    }

    /// The job failed: `job_error` (nothing made up for the requests not answered).
    pub fn fail(&mut self, kind: ErrorKind, message: String, now_s: f64) -> Option<Received> {
        if self.status.is_finished() {
            return None;
        }
        self.status = JobStatus::Error;
        self.current = None;
        let error = JobError { kind, message, repeat_index: None };
        self.error = Some(error.clone());
        Some(self.emit(Event::JobError(error), now_s))
    }

    /// Central cancelled the job: `job_cancelled`.
    pub fn cancel(&mut self, now_s: f64) -> Option<Received> {
        if self.status.is_finished() {
            return None;
        }
        self.status = JobStatus::Cancelled;
        self.current = None;
        let reason =
            "cancelled by central (an original agent cannot stop a generation in progress: it runs to its end there)";
        Some(self.emit(Event::JobCancelled(JobCancelled { reason: reason.into() }), now_s))
    }

    /// The events after `after_seq`, in order.
    pub fn events_after(&self, after_seq: u64) -> Vec<Received> {
        self.log.iter().filter(|e| e.env.seq > after_seq).cloned().collect()
    }

    /// As `GET /jobs/{id}` would show it.
    pub fn view(&self) -> JobView {
        JobView {
            job_id: self.job_id.clone(),
            status: self.status,
            spec: JobSpec::LlmGenerate(self.spec.clone()),
            position: None,
            engine: Some(self.engine),
            fallback_reason: self.fallback_reason.clone(),
            created_at_s: self.created_at_s,
            requests: self.requests.clone(),
            aggregate: (!self.requests.is_empty()).then(|| aggregate(&self.requests)),
            error: self.error.clone(),
            last_seq: self.seq,
        }
    }
}

/// One request's figures from its `job_done`: its own client's times; its word count and rate.
fn metrics(done: &OriginalDone, chunks: u64) -> RequestMetrics {
    RequestMetrics {
        ttft_ms: done.ttft_ms,
        ttfc_ms: done.ttft_ms,
        total_ms: done.total_ms.unwrap_or(0.0),
        gen_tokens: done.gen_tokens.unwrap_or(0),
        token_source: TokenSource::Words,
        chunks,
        decode_tok_s: done.gen_tokens_per_s,
        gen_tokens_per_s: done.gen_tokens_per_s,
        engine_decode_tok_s: None,
        prompt_tokens: done.prompt_tokens,
        cached_prompt_tokens: None,
        reasoning_tokens: None,
        engine_prefill_tok_s: None,
        client_prefill_tok_s: None,
        load_ms: None,
        load_source: None,
        engine_total_ms: None,
        engine_prompt_eval_ms: None,
        engine_eval_ms: None,
        itl_ms: None,
        done_reason: None,
        energy_j: None,
        tokens_per_j: None,
        energy_source: None,
        energy_unavailable: Some("an original bench-race agent does not measure energy".into()),
        throttled: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::event::Decoded;

    fn spec(repeat: u32, warmup: u32) -> GenerateSpec {
        let mut s = GenerateSpec::new("llama3", "Why?");
        s.repeat = repeat;
        s.warmup = warmup;
        s
    }

    fn done(words: u64) -> OriginalDone {
        OriginalDone {
            ttft_ms: Some(120.0),
            gen_tokens: Some(words),
            gen_tokens_per_s: Some(20.0),
            total_ms: Some(500.0),
            model: Some("llama3".into()),
            engine: Some("ollama".into()),
            ..Default::default()
        }
    }

    fn kinds(events: &[Received]) -> Vec<&str> {
        events.iter().map(|e| e.env.kind.as_str()).collect()
    }

    #[test]
    fn repeats_become_one_job_with_ordered_events_and_labelled_figures() {
        let mut run = OriginalRun::new("orig-1".into(), spec(2, 1), "old".into(), EngineKind::Ollama, 10.0);
        assert_eq!(run.plan(), [(0, true), (0, false), (1, false)]);
        let mut out = vec![run.started(Some(1_000), "http://old (engine)".into(), 11.0)];
        for (i, (index, warmup)) in run.plan().into_iter().enumerate() {
            assert!(run.token("lost".into(), 11.5).is_none(), "no request in flight");
            run.request_sent(format!("o{i}"), index, warmup);
            assert_eq!(run.in_flight(), Some(format!("o{i}").as_str()));
            out.extend(run.token(format!("Hello there {i} "), 12.0));
            out.extend(run.request_done(done(3), 12.5));
        }
        out.push(run.finish(13.0));
        assert_eq!(
            kinds(&out),
            [
                "job_started",
                "llm_token",
                "request_done",
                "llm_token",
                "request_done",
                "llm_token",
                "request_done",
                "job_done"
            ]
        );
        let seqs: Vec<u64> = out.iter().map(|e| e.env.seq).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
        let Decoded::Known(Event::JobDone(d)) = &out[7].event else { panic!() };
        let d = d.llm().unwrap();
        assert_eq!((d.repeats, d.gen_tokens, d.ttft_ms), (2, 3, Some(120.0)), "warm-up excluded");
        assert_eq!(d.token_source, Some(TokenSource::Words));
        assert_eq!(d.output_text, "Hello there 1 ", "the first recorded repeat's text");
        assert!(d.notes[0].contains("words"));
        let Decoded::Known(Event::LlmToken(t)) = &out[1].event else { panic!() };
        assert!(t.warmup && t.tokens == 3);
        // What a follower missed comes back in order; the view says where the job is.
        assert_eq!(kinds(&run.events_after(6)), ["request_done", "job_done"]);
        let view = run.view();
        assert_eq!((view.status, view.last_seq, view.requests.len()), (JobStatus::Done, 8, 2));
        // The raw envelopes read back as the same events.
        for e in &out {
            assert_eq!(Received::decode(e.env.clone()), *e);
        }
    }

    #[test]
    fn mock_answers_are_flagged_and_failures_end_the_job_once() {
        let mut run = OriginalRun::new("orig-2".into(), spec(1, 0), "old".into(), EngineKind::Ollama, 10.0);
        run.started(None, "x".into(), 10.0);
        run.request_sent("o1".into(), 0, false);
        let mock =
            OriginalDone { engine: Some("mock".into()), fallback_reason: Some("ollama_unreachable".into()), ..done(5) };
        run.request_done(mock, 11.0);
        let end = run.finish(12.0);
        let Decoded::Known(Event::JobDone(d)) = &end.event else { panic!() };
        let d = d.llm().unwrap();
        assert_eq!(d.engine, EngineKind::Mock);
        assert!(d.fallback_reason.as_deref().unwrap().contains("ollama_unreachable"));
        assert!(run.fail(ErrorKind::Internal, "late".into(), 13.0).is_none(), "a finished job stays finished");
        let mut run = OriginalRun::new("orig-3".into(), spec(2, 0), "old".into(), EngineKind::Ollama, 10.0);
        run.started(None, "x".into(), 10.0);
        let err = run.fail(ErrorKind::EngineUnreachable, "POST /jobs refused".into(), 11.0).unwrap();
        assert_eq!(err.env.kind, "job_error");
        assert!(run.cancel(12.0).is_none());
        assert_eq!(run.view().status, JobStatus::Error);
    }
}

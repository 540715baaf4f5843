//! Unit tests of [`RunState`] on event sequences, with made-up instants.

use super::*;

const SILENCE: Duration = Duration::from_secs(30);
const LIMIT: Duration = Duration::from_secs(300);

use bench_shared::event::RawEnvelope;
use serde_json::{Value, json};

fn env(job: &str, seq: u64, kind: &str) -> Received {
    let raw: RawEnvelope = serde_json::from_value(json!({"job_id": job, "seq": seq, "machine_id": "agent-side-id",
        "type": kind, "payload": {"n": seq}}))
    .unwrap();
    Received::decode(raw)
}

fn event(machine: &str, job: &str, seq: u64, kind: &str) -> Input {
    Input::Event { machine_id: machine.into(), event: env(job, seq, kind) }
}

/// A recorded line as the files and browsers get it.
fn v(line: &StoredLine) -> Value {
    serde_json::from_str(&line.line().text).unwrap()
}

/// A run with machines `a` and `b` whose jobs `ja` and `jb` were accepted at `t0`.
fn started(t0: Instant) -> RunState {
    let mut s = RunState::new("run-1", SILENCE);
    s.track(&"a".into(), t0, LIMIT);
    s.track(&"b".into(), t0, LIMIT);
    for (m, j) in [("a", "ja"), ("b", "jb")] {
        let out = s.handle(Input::Dispatched { machine_id: m.into(), result: Ok(j.into()) }, t0);
        assert_eq!(out[0], Action::Register { machine_id: m.into(), job_id: j.into() });
        assert!(
            matches!(&out[1], Action::Record { line, .. } if v(line)["status"] == "running" && v(line)["job_id"] == j)
        );
        assert_eq!(out[2], Action::WriteMetadata);
        assert_eq!(out[3], Action::FetchEvents { machine_id: m.into(), job_id: j.into(), after_seq: 0 });
        // The initial backfill finds nothing yet.
        assert!(s.handle(Input::Backfill { machine_id: m.into(), result: Ok(vec![]) }, t0).is_empty());
    }
    s
}

/// The seqs of the agent events recorded for `machine`, in order.
fn recorded(actions: &[Action], machine: &str) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record { machine_id, line } if machine_id == machine && v(line)["type"] != "machine_status" => {
                v(line)["seq"].as_u64()
            }
            _ => None,
        })
        .collect()
}

fn status_lines(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record { machine_id, line } if v(line)["type"] == "machine_status" => {
                Some((machine_id.to_string(), v(line)["reason"].as_str().unwrap_or("").to_owned()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn out_of_order_and_duplicate_seqs_are_stored_once_in_order() {
    let t0 = Instant::now();
    let mut s = started(t0);
    let mut all = Vec::new();
    for seq in [1, 3, 1, 2, 2, 3] {
        all.extend(s.handle(event("a", "ja", seq, "llm_token"), t0));
    }
    assert_eq!(recorded(&all, "a"), vec![1, 2, 3]);
    // Seq 3 ahead of the gap asked for the missing events once.
    let fetches: Vec<_> = all.iter().filter(|a| matches!(a, Action::FetchEvents { .. })).collect();
    assert_eq!(fetches, vec![&Action::FetchEvents { machine_id: "a".into(), job_id: "ja".into(), after_seq: 1 }]);
    // Stored lines carry central's machine id and the run id, not the agent's own id.
    let Action::Record { line, .. } = &all[0] else { panic!("{all:?}") };
    assert_eq!((v(line)["machine_id"].as_str(), v(line)["run_id"].as_str()), (Some("a"), Some("run-1")));
    // Another job's events (another central, a curl user) are not this run's.
    assert!(s.handle(event("a", "other-job", 4, "llm_token"), t0).is_empty());
    assert_eq!(s.last_seq(&"a".into()), Some(3));
}

#[test]
fn a_gap_is_filled_by_backfill_and_a_lost_gap_is_skipped_in_order() {
    let t0 = Instant::now();
    let mut s = started(t0);
    let mut out = s.handle(event("a", "ja", 1, "llm_token"), t0);
    out.extend(s.handle(event("a", "ja", 4, "llm_token"), t0));
    assert_eq!(recorded(&out, "a"), vec![1]);
    assert_eq!(out.last(), Some(&Action::FetchEvents { machine_id: "a".into(), job_id: "ja".into(), after_seq: 1 }));
    // A second gap while the first fetch is in flight does not send a second fetch yet.
    let out = s.handle(event("a", "ja", 6, "llm_token"), t0);
    assert!(out.is_empty(), "{out:?}");
    // The fetch answers 2..=4: 2, 3, 4 are stored; 5 is still missing, so it fetches again.
    let got = vec![env("ja", 2, "llm_token"), env("ja", 3, "llm_token"), env("ja", 4, "llm_token")];
    let out = s.handle(Input::Backfill { machine_id: "a".into(), result: Ok(got) }, t0);
    assert_eq!(recorded(&out, "a"), vec![2, 3, 4]);
    assert_eq!(out.last(), Some(&Action::FetchEvents { machine_id: "a".into(), job_id: "ja".into(), after_seq: 4 }));
    // The agent no longer has seq 5: what exists is kept, in order.
    let out = s.handle(Input::Backfill { machine_id: "a".into(), result: Ok(vec![]) }, t0);
    assert_eq!(recorded(&out, "a"), vec![6]);
    // A failed fetch is not fatal: the next event ahead of a gap asks again.
    let out = s.handle(event("a", "ja", 8, "llm_token"), t0);
    assert!(matches!(out.last(), Some(Action::FetchEvents { after_seq: 6, .. })), "{out:?}");
    let out = s.handle(Input::Backfill { machine_id: "a".into(), result: Err("connection reset".into()) }, t0);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn the_run_finishes_when_every_machine_is_terminal() {
    let t0 = Instant::now();
    let mut s = started(t0);
    let out = s.handle(event("a", "ja", 1, "job_done"), t0);
    assert_eq!(recorded(&out, "a"), vec![1]);
    assert_eq!(out.last(), Some(&Action::Unregister { machine_id: "a".into(), job_id: "ja".into() }));
    assert!(!s.ended());
    // Events after a machine's terminal event are ignored.
    assert!(s.handle(event("a", "ja", 2, "llm_token"), t0).is_empty());
    let out = s.handle(event("b", "jb", 1, "job_error"), t0);
    assert_eq!(out.last(), Some(&Action::Finish));
    assert!(s.ended());
    assert!(s.handle(Input::Tick, t0 + LIMIT * 2).is_empty(), "nothing happens after the end");
}

#[test]
fn a_dead_machine_is_probed_after_silence_and_ends_in_error() {
    let t0 = Instant::now();
    let mut s = started(t0);
    s.handle(event("b", "jb", 1, "job_done"), t0);
    assert!(s.handle(Input::Tick, t0 + SILENCE / 2).is_empty());
    let out = s.handle(Input::Tick, t0 + SILENCE);
    assert_eq!(out, vec![Action::ProbeJob { machine_id: "a".into(), job_id: "ja".into() }]);
    // One probe at a time.
    assert!(s.handle(Input::Tick, t0 + SILENCE + Duration::from_secs(1)).is_empty());
    let out = s.handle(Input::Probe { machine_id: "a".into(), result: Err("connection refused".into()) }, t0 + SILENCE);
    let lines = status_lines(&out);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].1.contains("agent lost: no event for 30 s") && lines[0].1.contains("connection refused"),
        "{lines:?}"
    );
    assert_eq!(out.last(), Some(&Action::Finish));
}

#[test]
fn an_alive_but_silent_machine_is_kept_and_backfilled() {
    let t0 = Instant::now();
    let mut s = started(t0);
    s.handle(Input::Tick, t0 + SILENCE);
    s.handle(Input::Tick, t0 + SILENCE); // probe for b too
    let out = s.handle(Input::Probe { machine_id: "a".into(), result: Ok(5) }, t0 + SILENCE);
    assert_eq!(out, vec![Action::FetchEvents { machine_id: "a".into(), job_id: "ja".into(), after_seq: 0 }]);
    // Its silence clock restarted: no new probe until another full silence.
    s.handle(Input::Backfill { machine_id: "a".into(), result: Ok(vec![]) }, t0 + SILENCE);
    let out = s.handle(Input::Tick, t0 + SILENCE + SILENCE / 2);
    assert!(!out.iter().any(|a| matches!(a, Action::ProbeJob { machine_id, .. } if machine_id == "a")), "{out:?}");
}

#[test]
fn a_lost_connection_probes_at_once() {
    let t0 = Instant::now();
    let mut s = started(t0);
    let now = t0 + Duration::from_millis(10);
    let out = s.handle(Input::ConnectionLost { machine_id: "a".into() }, now);
    assert_eq!(out, vec![Action::ProbeJob { machine_id: "a".into(), job_id: "ja".into() }]);
    let out = s.handle(Input::Probe { machine_id: "a".into(), result: Err("connection refused".into()) }, now);
    assert!(status_lines(&out)[0].1.contains("its connection dropped"), "{out:?}");
    // A machine whose job is not known yet, or unknown machines, are not probed.
    let mut s = RunState::new("r", SILENCE);
    s.track(&"x".into(), t0, LIMIT);
    assert!(s.handle(Input::ConnectionLost { machine_id: "x".into() }, t0).is_empty());
    assert!(s.handle(Input::ConnectionLost { machine_id: "nope".into() }, t0).is_empty());
}

#[test]
fn a_missed_deadline_ends_the_machine_and_cancels_its_job() {
    let t0 = Instant::now();
    let mut s = started(t0);
    // Events keep it from being silent, but not past its deadline.
    s.handle(event("a", "ja", 1, "llm_token"), t0 + LIMIT - Duration::from_secs(1));
    s.handle(event("b", "jb", 1, "job_done"), t0);
    let out = s.handle(Input::Tick, t0 + LIMIT);
    assert!(status_lines(&out)[0].1.contains("timed out: no result within 300 s"), "{out:?}");
    assert!(out.contains(&Action::CancelJob { machine_id: "a".into(), job_id: "ja".into() }));
    assert_eq!(out.last(), Some(&Action::Finish));
}

#[test]
fn a_refused_job_is_an_error_with_the_agents_reason() {
    let t0 = Instant::now();
    let mut s = RunState::new("r", SILENCE);
    s.track(&"a".into(), t0, LIMIT);
    let out = s.handle(
        Input::Dispatched { machine_id: "a".into(), result: Err("agent answered HTTP 429: queue full".into()) },
        t0,
    );
    let lines = status_lines(&out);
    assert_eq!(lines, vec![("a".into(), "job not accepted: agent answered HTTP 429: queue full".into())]);
    assert_eq!(out.last(), Some(&Action::Finish));
}

#[test]
fn cancel_cancels_running_jobs_and_interrupts() {
    let t0 = Instant::now();
    let mut s = started(t0);
    s.handle(event("b", "jb", 1, "job_done"), t0);
    let out = s.handle(Input::Cancel, t0);
    assert_eq!(
        out,
        vec![
            Action::CancelJob { machine_id: "a".into(), job_id: "ja".into() },
            // The run's route goes with it (a route left behind keeps the run's mailbox alive).
            Action::Unregister { machine_id: "a".into(), job_id: "ja".into() },
            Action::Interrupt { reason: "central shut down while the run was running".into() },
        ]
    );
    assert!(s.ended());
    assert!(s.handle(event("a", "ja", 1, "job_done"), t0).is_empty());
}

#[test]
fn a_write_failure_fails_the_run() {
    let t0 = Instant::now();
    let mut s = started(t0);
    let reason = "no space left on device writing events.ndjson".to_owned();
    let out = s.handle(Input::WriteFailed { reason: reason.clone() }, t0);
    assert_eq!(out.last(), Some(&Action::Fail { reason }));
    assert_eq!(out.iter().filter(|a| matches!(a, Action::CancelJob { .. })).count(), 2);
    // Every registered job is unregistered: nothing of the ended run stays in the router.
    let unregistered: Vec<&str> = out
        .iter()
        .filter_map(|a| match a {
            Action::Unregister { job_id, .. } => Some(job_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(unregistered, vec!["ja", "jb"]);
}

#[test]
fn a_resumed_run_fetches_what_it_missed_and_interrupts_jobs_the_agents_lost() {
    let t0 = Instant::now();
    let jobs = vec![("a".into(), "ja".into(), 2), ("b".into(), "jb".into(), 0)];
    let (mut s, out) = RunState::resume("r", SILENCE, &jobs, t0, LIMIT);
    assert_eq!(
        out,
        vec![
            Action::Register { machine_id: "a".into(), job_id: "ja".into() },
            Action::FetchEvents { machine_id: "a".into(), job_id: "ja".into(), after_seq: 2 },
            Action::Register { machine_id: "b".into(), job_id: "jb".into() },
            Action::FetchEvents { machine_id: "b".into(), job_id: "jb".into(), after_seq: 0 },
        ]
    );
    // a finished while central was down: its remaining events are stored, in order.
    let got = vec![env("ja", 3, "llm_token"), env("ja", 4, "job_done")];
    let out = s.handle(Input::Backfill { machine_id: "a".into(), result: Ok(got) }, t0);
    assert_eq!(recorded(&out, "a"), vec![3, 4]);
    // b's agent restarted and no longer knows the job.
    let out = s.handle(Input::JobGone { machine_id: "b".into(), reason: "HTTP 404".into() }, t0);
    let lines = status_lines(&out);
    assert!(lines[0].1.contains("the agent no longer has the job"), "{lines:?}");
    let Action::Record { line, .. } = &out[0] else { panic!() };
    assert_eq!(v(line)["status"], "interrupted");
    assert_eq!(out.last(), Some(&Action::Finish));
}

#[test]
fn in_a_normal_run_a_lost_job_is_an_error() {
    let t0 = Instant::now();
    let mut s = started(t0);
    let out = s.handle(Input::JobGone { machine_id: "a".into(), reason: "HTTP 404".into() }, t0);
    let Action::Record { line, .. } = &out[0] else { panic!() };
    assert_eq!(v(line)["status"], "error");
    assert!(v(line)["reason"].as_str().unwrap().contains("agent lost the job"));
}

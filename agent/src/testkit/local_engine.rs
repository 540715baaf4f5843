//! The real local engine (llama.cpp serving SmolLM2-135M as `smollm2:135m`) for tests.
//!
//! [`local_engine_url`] uses `BENCH_TEST_ENGINE_URL` when set (`scripts/test` starts one engine for
//! the whole run); otherwise it starts `scripts/engine serve --port 0` once per test process. The
//! child's stdin is a pipe held in a static: when the test process exits, the pipe closes and
//! the engine exits with it, so no engine is ever leaked.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

/// The model name the local engine serves.
pub const LOCAL_MODEL: &str = "smollm2:135m";

/// How long the engine may take to load (it takes ~1 s; a busy CI machine is slower).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A spawned engine, kept alive for the life of the process.
struct Spawned {
    url: String,
    /// Never read: holding the child and its stdin keeps the engine serving until we exit.
    _child: Mutex<(Child, ChildStdin)>,
}

static ENGINE: OnceLock<Result<Spawned, String>> = OnceLock::new();
static SPEECH: OnceLock<Result<Spawned, String>> = OnceLock::new();

/// The model name the local speech engine's tests ask for (it serves its one model, Whisper
/// tiny.en, whatever the name: see scripts/speech_server.py).
pub const LOCAL_SPEECH_MODEL: &str = "whisper-tiny.en";

/// Base URL of the real local speech engine (faster-whisper-server serving Whisper tiny.en):
/// `BENCH_TEST_SPEECH_URL` when set, else `scripts/speech serve --port 0` started once per test
/// process (it exits with the process). Panics with instructions when none can be started.
pub fn local_speech_url() -> String {
    if let Ok(url) = std::env::var("BENCH_TEST_SPEECH_URL")
        && !url.trim().is_empty()
    {
        return url.trim().trim_end_matches('/').to_owned();
    }
    match SPEECH.get_or_init(|| spawn_script("scripts/speech", &["serve", "--port", "0", "--threads", "1"])) {
        Ok(s) => s.url.clone(),
        Err(e) => panic!(
            "the local speech engine could not be started: {e}\n\
             Install it once with `scripts/speech install` (or set BENCH_TEST_SPEECH_URL to a running \
             OpenAI-compatible transcription server)."
        ),
    }
}

/// Base URL (`http://127.0.0.1:PORT`) of a running local engine. Panics with instructions when
/// none can be started.
pub fn local_engine_url() -> String {
    if let Ok(url) = std::env::var("BENCH_TEST_ENGINE_URL")
        && !url.trim().is_empty()
    {
        return url.trim().trim_end_matches('/').to_owned();
    }
    match ENGINE.get_or_init(|| spawn_script("scripts/engine", &["serve", "--port", "0", "--threads", "1"])) {
        Ok(s) => s.url.clone(),
        Err(e) => panic!(
            "the local test engine could not be started: {e}\n\
             Install it once with `scripts/engine install` (or set BENCH_TEST_ENGINE_URL to a running \
             OpenAI-compatible engine serving {LOCAL_MODEL})."
        ),
    }
}

/// The workspace root (where `scripts/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A local engine of its own (e.g. with two slots, for load tests), separate from the shared one;
/// it exits when dropped (its stdin closes).
pub struct OwnEngine {
    pub url: String,
    _child: Mutex<(Child, ChildStdin)>,
}

impl OwnEngine {
    /// Starts `scripts/engine serve --port 0 --parallel <slots> --ctx <ctx> --threads <threads>`;
    /// `Err` with the reason when it cannot (not installed, no Python): callers skip with it.
    pub fn start(slots: u32, ctx: u32, threads: u32) -> Result<OwnEngine, String> {
        let (slots, ctx, threads) = (slots.to_string(), ctx.to_string(), threads.to_string());
        let args = ["serve", "--port", "0", "--parallel", &slots, "--ctx", &ctx, "--threads", &threads];
        spawn_script("scripts/engine", &args).map(|s| OwnEngine { url: s.url, _child: s._child })
    }
}

/// Runs `script args…` (relative to the workspace root) and waits for its `LISTENING <url>` line.
fn spawn_script(script: &str, args: &[&str]) -> Result<Spawned, String> {
    let script = workspace_root().join(script);
    if !script.exists() {
        return Err(format!("{} does not exist", script.display()));
    }
    let mut child = Command::new(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    // llama.cpp logs a lot; keep the tail for the error message and never let the pipe fill up.
    let stderr_tail = std::sync::Arc::new(Mutex::new(String::new()));
    let tail = stderr_tail.clone();
    std::thread::spawn(move || drain_keeping_tail(stderr, &tail));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(url) = line.trim().strip_prefix("LISTENING ") {
                let _ = tx.send(Some(url.trim().trim_end_matches('/').to_owned()));
                break;
            }
        }
        // End of stdout before the line: the engine exited (the receiver reports why).
        let _ = tx.send(None);
        // Keep draining so the engine never blocks on a full stdout pipe.
        for _ in lines {}
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(url)) => Ok(Spawned { url, _child: Mutex::new((child, stdin)) }),
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            let tail = stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
            Err(format!(
                "`{} {}` did not print `LISTENING <url>` ({status}); its stderr ended with:\n{tail}",
                script.display(),
                args.join(" ")
            ))
        }
    }
}

fn drain_keeping_tail(mut r: impl Read, tail: &Mutex<String>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Ok(mut t) = tail.lock() {
            t.push_str(&String::from_utf8_lossy(&buf[..n]));
            if t.len() > 4000 {
                let cut = t.len() - 2000;
                let cut = (cut..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(t.len());
                t.drain(..cut);
            }
        }
    }
}

//! `bench-agent sweep`: the LLMBench sweep from a terminal, with a live table.
//!
//! Flags fall back to LLMBench's environment variables (`BASE_URL`, `LITELLM_KEY`,
//! `TARGET_PROMPT_TOKENS`, `OUT_TOKENS`, `RUNS`, `WARMUP`, `TIMEOUT_S`, `CHARS_PER_TOKEN_EST`,
//! `SWEEP_COUNT`, `REQUESTS_CSV`, `SUMMARY_CSV`, `LOAD_TIMES_CSV`, `CALIBRATION_CACHE`). The
//! settings go through the same validation as a `POST /jobs` sweep, so both accept the same
//! values. On a terminal the table redraws live; otherwise one line is printed per change.
//! Ctrl-C (or `q`) cancels: the terminal is restored, the CSV rows written so far stay, and
//! the command exits non-zero.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bench_shared::engine::EngineKind;
use bench_shared::event::Event;
use bench_shared::job::Spec;
use bench_shared::sweep::{SweepDone, SweepSpec};
use clap::ValueEnum;
use ratatui::crossterm::event::{self as term_event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::csv_out::CsvPaths;
use super::table::{SweepTable, progress_line};
use super::{SweepError, SweepJob, SweepOptions, retry, run_sweep, wall_now_s};
use crate::engine::{self, EngineSettings, Fallback};

/// The engine protocols a terminal sweep can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// Ollama's native API.
    Ollama,
    /// Any OpenAI-compatible server (llama.cpp, vLLM, SGLang, LM Studio, LiteLLM).
    Openai,
}

impl From<EngineArg> for EngineKind {
    fn from(e: EngineArg) -> Self {
        match e {
            EngineArg::Ollama => EngineKind::Ollama,
            EngineArg::Openai => EngineKind::Openai,
        }
    }
}

/// `bench-agent sweep` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// Engine URL, e.g. http://127.0.0.1:8091 (OpenAI-compatible, with or without /v1) or
    /// http://127.0.0.1:11434 (Ollama).
    #[arg(long, env = "BASE_URL", value_name = "URL")]
    pub base_url: String,
    /// Engine protocol.
    #[arg(long, value_enum, default_value_t = EngineArg::Openai)]
    pub engine: EngineArg,
    /// Bearer token for the engine (LiteLLM-style gateways).
    #[arg(long, env = "LITELLM_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Models to sweep, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// Parallel request levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub parallel: Vec<u32>,
    /// Full context window (tokens); points are ctx/N … ctx and each prompt leaves room for
    /// --out-tokens. Takes precedence over --target-prompt-tokens.
    #[arg(long)]
    pub ctx: Option<u32>,
    /// Largest prompt size (tokens) instead of --ctx: points are prompt sizes.
    #[arg(long, env = "TARGET_PROMPT_TOKENS")]
    pub target_prompt_tokens: Option<u32>,
    /// Number of context points (ctx/N, 2·ctx/N, … ctx).
    #[arg(long, env = "SWEEP_COUNT", default_value_t = 8)]
    pub sweep_count: u32,
    /// Recorded runs per cell (each with `par` concurrent requests).
    #[arg(long, env = "RUNS", default_value_t = 3)]
    pub runs: u32,
    /// Warm-up requests per cell (at least 3).
    #[arg(long, env = "WARMUP", default_value_t = 3)]
    pub warmup: u32,
    /// Completion tokens per request.
    #[arg(long, env = "OUT_TOKENS", default_value_t = 256)]
    pub out_tokens: u32,
    /// Limit for one request, seconds.
    #[arg(long, env = "TIMEOUT_S", default_value_t = 300.0)]
    pub timeout_s: f64,
    /// Starting chars-per-token estimate for calibration.
    #[arg(long, env = "CHARS_PER_TOKEN_EST", default_value_t = 4.0)]
    pub chars_per_token_est: f64,
    /// Accepted relative error of the calibrated prompt (0.05 = ±5 %).
    #[arg(long, default_value_t = 0.05)]
    pub calibration_tolerance: f64,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Folder for the CSVs and the calibration cache (unless given one by one).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out_dir: PathBuf,
    #[arg(long, env = "REQUESTS_CSV", value_name = "PATH")]
    pub requests_csv: Option<PathBuf>,
    #[arg(long, env = "SUMMARY_CSV", value_name = "PATH")]
    pub summary_csv: Option<PathBuf>,
    #[arg(long, env = "LOAD_TIMES_CSV", value_name = "PATH")]
    pub load_times_csv: Option<PathBuf>,
    #[arg(long, env = "CALIBRATION_CACHE", value_name = "PATH")]
    pub calibration_cache: Option<PathBuf>,
    /// Print one line per change even on a terminal (no live table).
    #[arg(long)]
    pub plain: bool,
}

impl SweepArgs {
    /// The validated sweep spec (same rules and messages as `POST /jobs`).
    pub fn spec(&self) -> anyhow::Result<SweepSpec> {
        let mut spec = SweepSpec::new(self.models.clone(), 0);
        spec.parallel = self.parallel.clone();
        spec.sweep_count = self.sweep_count;
        spec.runs = self.runs;
        spec.warmup = self.warmup;
        spec.out_tokens = self.out_tokens;
        spec.timeout_s = self.timeout_s;
        spec.chars_per_token_est = self.chars_per_token_est;
        spec.calibration_tolerance = self.calibration_tolerance;
        spec.temperature = self.temperature;
        match (self.ctx, self.target_prompt_tokens) {
            (Some(ctx), _) => spec.ctx = ctx,
            (None, Some(t)) => spec.target_prompt_tokens = Some(t),
            (None, None) => anyhow::bail!("give --ctx N (full context) or --target-prompt-tokens N"),
        }
        match spec.validate(0) {
            Ok(()) => Ok(spec),
            Err(e) => anyhow::bail!("--{}: {}", e.field.replace('_', "-"), e.message),
        }
    }

    pub fn paths(&self) -> CsvPaths {
        let d = CsvPaths::in_dir(&self.out_dir);
        CsvPaths {
            requests: self.requests_csv.clone().unwrap_or(d.requests),
            summary: self.summary_csv.clone().unwrap_or(d.summary),
            load_times: self.load_times_csv.clone().unwrap_or(d.load_times),
        }
    }

    fn cache_path(&self) -> PathBuf {
        self.calibration_cache.clone().unwrap_or_else(|| self.out_dir.join("calibration_cache.json"))
    }
}

/// Runs a sweep in the terminal. Errors (including Ctrl-C) make the command exit non-zero.
pub async fn run_terminal(args: SweepArgs) -> anyhow::Result<()> {
    let spec = args.spec()?;
    let engine = engine::build(&EngineSettings {
        kind: args.engine.into(),
        base_url: args.base_url.clone(),
        api_key: args.api_key.clone(),
        fallback: Fallback::None,
        request_timeout_s: args.timeout_s,
        mock: Default::default(),
        ..crate::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
    });
    let paths = args.paths();
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let job = SweepJob {
        engine,
        spec,
        out_dir: args.out_dir.clone(),
        calibration_cache: args.cache_path(),
        cancel: cancel.clone(),
    };
    let options = SweepOptions { paths: paths.clone(), backoff: retry::Backoff::default() };
    let sweep = tokio::spawn(run_sweep(job, options, tx));
    if !args.plain && std::io::stdout().is_terminal() {
        live_table(rx, &cancel).await?;
    } else {
        plain_lines(rx, &cancel).await;
    }
    match sweep.await.context("the sweep task failed")? {
        Ok(done) => {
            print_done(&done);
            Ok(())
        }
        Err(SweepError::Cancelled) => anyhow::bail!(
            "sweep interrupted; the rows measured so far are in {}, {} and {}",
            paths.requests.display(),
            paths.summary.display(),
            paths.load_times.display()
        ),
        Err(e) => Err(e.into()),
    }
}

/// Completes on Ctrl-C (SIGINT); never completes when the signal cannot be watched.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn plain_lines(mut rx: mpsc::UnboundedReceiver<Event>, cancel: &CancellationToken) {
    let mut last_lines: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::SweepProgress(p)) => {
                    let line = progress_line(&p);
                    if last_lines.len() <= p.cell_index {
                        last_lines.resize(p.cell_index + 1, String::new());
                    }
                    // Live-rate samples change nothing in the line: print changes only.
                    if last_lines[p.cell_index] != line {
                        println!("{line}");
                        last_lines[p.cell_index] = line;
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = ctrl_c(), if !cancel.is_cancelled() => {
                eprintln!("interrupted: stopping the sweep");
                cancel.cancel();
            }
        }
    }
}

/// Restores the terminal when dropped, also on early return or panic unwinding.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

async fn live_table(mut rx: mpsc::UnboundedReceiver<Event>, cancel: &CancellationToken) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let _guard = TerminalGuard;
    // Raw mode turns Ctrl-C into a key press: a thread reads keys and reports a stop request.
    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel::<()>();
    let done = Arc::new(AtomicBool::new(false));
    let keys_done = done.clone();
    std::thread::spawn(move || {
        while !keys_done.load(Ordering::Relaxed) {
            if let Ok(true) = term_event::poll(Duration::from_millis(200))
                && let Ok(term_event::Event::Key(k)) = term_event::read()
                && k.kind == KeyEventKind::Press
                && (k.code == KeyCode::Char('q')
                    || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
                && stop_tx.send(()).is_err()
            {
                return;
            }
        }
    });
    let mut table = SweepTable::new();
    let mut redraw = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => table.apply(&e, Instant::now(), wall_now_s()),
                None => break Ok(()),
            },
            _ = redraw.tick() => {}
            Some(()) = stop_rx.recv() => cancel.cancel(),
            _ = ctrl_c(), if !cancel.is_cancelled() => cancel.cancel(),
        }
        if let Err(e) = terminal.draw(|f| table.render(f, Instant::now())) {
            cancel.cancel();
            break Err(anyhow::Error::from(e).context("cannot draw the table"));
        }
    };
    done.store(true, Ordering::Relaxed);
    result
}

fn print_done(done: &SweepDone) {
    println!("sweep done");
    for row in &done.summary_rows {
        let get = |k: &str| row.get(k).map(|v| v.to_string()).unwrap_or_default();
        println!(
            "  {} ctx={} par={}: ok {}/{} stream {} tok/s, total {} tok/s, ttft mean {} s",
            get("model").trim_matches('"'),
            get("ctx"),
            get("par"),
            get("success_count"),
            get("request_count"),
            fmt_num(row.get("stream_toks_per_s_total")),
            fmt_num(row.get("completion_toks_per_s_total")),
            fmt_num(row.get("ttft_s_mean")),
        );
    }
    for (name, path) in
        [("requests", &done.requests_csv), ("summary", &done.summary_csv), ("load times", &done.load_times_csv)]
    {
        if let Some(p) = path {
            println!("  {name}: {p}");
        }
    }
}

fn fmt_num(v: Option<&serde_json::Value>) -> String {
    v.and_then(|v| v.as_f64()).map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SweepArgs,
    }

    #[test]
    fn flags_build_a_validated_spec() {
        let w = Wrapper::try_parse_from([
            "x",
            "--base-url",
            "http://127.0.0.1:1",
            "--models",
            "a,b",
            "--parallel",
            "1,2,4",
            "--ctx",
            "8192",
            "--warmup",
            "1",
            "--out-dir",
            "/tmp/o",
            "--summary-csv",
            "/tmp/s.csv",
        ])
        .unwrap();
        let spec = w.args.spec().unwrap();
        assert_eq!(spec.models, ["a", "b"]);
        assert_eq!(spec.parallel, [1, 2, 4]);
        assert_eq!((spec.ctx, spec.sweep_count, spec.runs, spec.warmup, spec.out_tokens), (8192, 8, 3, 3, 256));
        let paths = w.args.paths();
        assert_eq!(paths.summary, PathBuf::from("/tmp/s.csv"));
        assert_eq!(paths.requests, PathBuf::from("/tmp/o/requests.csv"));
        assert_eq!(w.args.cache_path(), PathBuf::from("/tmp/o/calibration_cache.json"));
        assert_eq!(EngineKind::from(w.args.engine), EngineKind::Openai);

        let bad = Wrapper::try_parse_from(["x", "--base-url", "u", "--models", "a", "--ctx", "8", "--parallel", "1"])
            .unwrap()
            .args
            .spec()
            .unwrap_err();
        assert!(bad.to_string().starts_with("--ctx:"), "{bad}");
        let none = Wrapper::try_parse_from(["x", "--base-url", "u", "--models", "a"]).unwrap().args.spec();
        // TARGET_PROMPT_TOKENS is not set in the test environment.
        if std::env::var_os("TARGET_PROMPT_TOKENS").is_none() {
            assert!(none.unwrap_err().to_string().contains("--ctx"));
        }
    }
}

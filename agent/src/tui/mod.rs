//! `bench-agent tui`: the LLMBench terminal app. Pick models (listed from the engine) and the
//! sweep settings, start, watch the live table with its status line (retry countdowns, ETA),
//! stop, and get the CSV paths at the end. It runs the same sweep as `bench-agent sweep` and
//! the agent's `llm_sweep` jobs ([`crate::sweep::run_sweep`]) and draws with plain characters, so
//! it works over SSH and in an 80×24 terminal.
//!
//! - [`form`]: the set-up form (keys → settings → validated spec).
//! - [`app`]: screens and drawing, no I/O (tested with ratatui's `TestBackend`).
//! - this module: the terminal, the key reader and the sweep task.

pub mod app;
pub mod form;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bench_shared::event::Event;
use bench_shared::sweep::SweepDone;
use ratatui::crossterm::event::{self as term_event, KeyEvent, KeyEventKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, Engine, EngineSettings, Fallback};
use crate::sweep::cli::EngineArg;
use crate::sweep::csv_out::CsvPaths;
use crate::sweep::{SweepError, SweepJob, SweepOptions, retry, run_sweep, wall_now_s};
use app::{App, Command};
use form::Defaults;

/// `bench-agent tui` options: the engine, where the CSVs go, and the form's initial values.
#[derive(Debug, Clone, clap::Args)]
pub struct TuiArgs {
    /// Engine URL, e.g. http://127.0.0.1:8091 (OpenAI-compatible) or http://127.0.0.1:11434 (Ollama).
    #[arg(long, env = "BASE_URL", value_name = "URL")]
    pub base_url: String,
    /// Engine protocol.
    #[arg(long, value_enum, default_value_t = EngineArg::Openai)]
    pub engine: EngineArg,
    /// Bearer token for the engine (LiteLLM-style gateways).
    #[arg(long, env = "LITELLM_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Folder for requests.csv, summary.csv, load_times.csv and calibration_cache.json
    /// (rows of later sweeps in the same session are appended).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Initial context size (tokens).
    #[arg(long, default_value_t = 4096)]
    pub ctx: u32,
    /// Initial number of sweep points.
    #[arg(long, default_value_t = 4)]
    pub sweep_count: u32,
    /// Initial parallel list, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub parallel: Vec<u32>,
    /// Initial recorded runs per cell.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Initial warm-up requests per cell (at least 3).
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// Initial completion tokens per request.
    #[arg(long, default_value_t = 256)]
    pub out_tokens: u32,
    /// Limit for one request, seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout_s: f64,
}

/// A sweep in progress.
struct Running {
    task: JoinHandle<Result<SweepDone, SweepError>>,
    events: mpsc::UnboundedReceiver<Event>,
    cancel: CancellationToken,
}

/// Restores the terminal when dropped, also on early return or panic unwinding.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Raw mode delivers Ctrl-C as a key, so one thread reads every key and forwards it.
fn key_reader(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<KeyEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(true) = term_event::poll(Duration::from_millis(200))
                && let Ok(term_event::Event::Key(k)) = term_event::read()
                && k.kind == KeyEventKind::Press
                && tx.send(k).is_err()
            {
                return;
            }
        }
    });
    rx
}

async fn load_models(engine: &dyn Engine, app: &mut App) {
    match engine.list_models().await {
        Ok(models) => app.form.set_models(models.into_iter().map(|m| m.name).collect()),
        Err(e) => {
            app.form.models.clear();
            app.form.models_error = Some(format!("cannot list models: {e}"));
        }
    }
}

/// Runs the app until the user quits. A sweep still running is cancelled (its rows stay).
pub async fn run(args: TuiArgs) -> anyhow::Result<()> {
    let engine = engine::build(&EngineSettings {
        kind: args.engine.into(),
        base_url: args.base_url.clone(),
        api_key: args.api_key.clone(),
        fallback: Fallback::None,
        request_timeout_s: args.timeout_s,
        mock: Default::default(),
        ..crate::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
    });
    let defaults = Defaults {
        ctx: args.ctx,
        sweep_count: args.sweep_count,
        parallel: args.parallel.clone(),
        runs: args.runs,
        warmup: args.warmup,
        out_tokens: args.out_tokens,
    };
    let mut app = App::new(format!("{} {}", engine.kind(), args.base_url), &defaults);
    load_models(engine.as_ref(), &mut app).await;
    let paths = CsvPaths::in_dir(&args.out_dir);

    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let guard = TerminalGuard;
    let stop_keys = Arc::new(AtomicBool::new(false));
    let mut keys = key_reader(stop_keys.clone());
    let mut redraw = tokio::time::interval(Duration::from_millis(250));
    let mut running: Option<Running> = None;
    let result: anyhow::Result<()> = loop {
        if let Err(e) = terminal.draw(|f| app.render(f, Instant::now())) {
            break Err(anyhow::Error::from(e).context("cannot draw"));
        }
        let next_event = async {
            match running.as_mut() {
                Some(r) => r.events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            key = keys.recv() => {
                let Some(key) = key else { break Ok(()) };
                match app.on_key(key) {
                    Some(Command::Quit) => break Ok(()),
                    Some(Command::Stop) => {
                        if let Some(r) = &running {
                            r.cancel.cancel();
                        }
                    }
                    Some(Command::ReloadModels) => load_models(engine.as_ref(), &mut app).await,
                    Some(Command::Start(spec)) => {
                        let cancel = CancellationToken::new();
                        let (tx, rx) = mpsc::unbounded_channel();
                        let job = SweepJob {
                            engine: engine.clone(),
                            spec: *spec,
                            out_dir: args.out_dir.clone(),
                            calibration_cache: args.out_dir.join("calibration_cache.json"),
                            cancel: cancel.clone(),
                        };
                        let options = SweepOptions { paths: paths.clone(), backoff: retry::Backoff::default() };
                        let task = tokio::spawn(run_sweep(job, options, tx));
                        running = Some(Running { task, events: rx, cancel });
                    }
                    None => {}
                }
            }
            event = next_event => match event {
                Some(e) => app.apply(&e, Instant::now(), wall_now_s()),
                None => {
                    // Every sender is gone: the sweep task has ended.
                    if let Some(r) = running.take() {
                        let outcome = r.task.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
                        let shown = [&paths.requests, &paths.summary, &paths.load_times].map(|p| p.display().to_string());
                        app.finished(outcome.as_ref().map_err(Clone::clone), shown);
                    }
                }
            },
            _ = redraw.tick() => {}
        }
    };
    stop_keys.store(true, Ordering::Relaxed);
    if let Some(r) = running.take() {
        r.cancel.cancel();
        let _ = r.task.await;
    }
    drop(terminal);
    drop(guard);
    // The outcome stays readable after the screen is restored.
    for line in app.outcome() {
        println!("{line}");
    }
    result
}

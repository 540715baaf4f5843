//! `bench-agent load` and `bench-agent capacity`: an `llm_load` / `llm_capacity` job against one
//! engine URL, from a terminal. The options become a job body validated by the same rules as
//! `POST /jobs` (an error names the option and the accepted range); a live line goes to stderr
//! once a second, the final table (80 columns) or, with `--json`, the job's `load_done` payload
//! to stdout. `--requests-csv PATH` writes every request's record (the `requests.csv` columns).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bench_shared::event::Event;
use bench_shared::job::JobSpec;
use bench_shared::load::{LoadDone, RequestRecord};
use bench_shared::sweep::CsvRow;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Emit, LoadCtx, LoadError, run_capacity, run_load, table};
use crate::engine::{self, EngineSettings};
use crate::sweep::cli::EngineArg;

/// The engine and output options both commands share.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Engine URL, e.g. http://127.0.0.1:8091 (OpenAI-compatible) or http://127.0.0.1:11434 (Ollama).
    #[arg(long, env = "BASE_URL", value_name = "URL")]
    pub base_url: String,
    /// Engine protocol.
    #[arg(long, value_enum, default_value_t = EngineArg::Openai)]
    pub engine: EngineArg,
    /// Bearer token for the engine.
    #[arg(long, env = "LITELLM_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Limit for one request, seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout_s: f64,
    /// Print the result as the job's `load_done` JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write every request's record here (CSV, the `requests.csv` columns).
    #[arg(long, value_name = "PATH")]
    pub requests_csv: Option<PathBuf>,
    /// One progress line per second even on a terminal (no redraw).
    #[arg(long)]
    pub plain: bool,
}

/// The workload options both commands share (see docs/load.md for each field).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadArgs {
    /// Model name, as the engine serves it.
    #[arg(long)]
    pub model: String,
    /// constant, poisson or gamma (open loop).
    #[arg(long)]
    pub arrival: Option<String>,
    /// Gamma shape (arrival gamma); 1 = Poisson, below 1 burstier.
    #[arg(long)]
    pub burstiness: Option<f64>,
    /// Measured seconds (of each step, for capacity).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Measured requests instead of --duration-s.
    #[arg(long)]
    pub requests: Option<u32>,
    /// Warm-up seconds before the window (excluded from every figure).
    #[arg(long)]
    pub warmup_s: Option<f64>,
    /// Warm-up requests instead of --warmup-s.
    #[arg(long)]
    pub warmup_requests: Option<u32>,
    /// Prompt length in tokens (about one per word).
    #[arg(long)]
    pub input_tokens: Option<u32>,
    /// Prompt lengths drawn from a normal distribution of this mean (with --input-tokens-sd).
    #[arg(long, requires = "input_tokens_sd", conflicts_with = "input_tokens")]
    pub input_tokens_mean: Option<f64>,
    #[arg(long, requires = "input_tokens_mean")]
    pub input_tokens_sd: Option<f64>,
    /// Output tokens asked per request.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// synthetic or shared_prefix.
    #[arg(long)]
    pub dataset: Option<String>,
    #[arg(long)]
    pub prefix_groups: Option<u32>,
    #[arg(long)]
    pub prefix_tokens: Option<u32>,
    /// The schedule and the prompts are a function of it.
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Mixed into every prompt's tag; default: a fresh one per run, so no engine cache holds
    /// an earlier run's prompts.
    #[arg(long)]
    pub prompt_nonce: Option<String>,
    /// SLO bounds (ms): a request is good when it meets every one given.
    #[arg(long)]
    pub slo_ttft_ms: Option<f64>,
    #[arg(long)]
    pub slo_tpot_ms: Option<f64>,
    #[arg(long)]
    pub slo_e2e_ms: Option<f64>,
}

/// `bench-agent load` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Open loop: requests per second.
    #[arg(long)]
    pub rate_rps: Option<f64>,
    /// Closed loop of this many workers, or the cap on requests in flight with --rate-rps.
    #[arg(long)]
    pub concurrency: Option<u32>,
}

/// `bench-agent capacity` options.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// What to search: rate (open loop) or concurrency (closed loop).
    #[arg(long, default_value = "rate")]
    pub search: String,
    /// The percentile the SLO applies to.
    #[arg(long)]
    pub percentile: Option<f64>,
    /// First level tried.
    #[arg(long)]
    pub start: Option<f64>,
    /// Highest level tried.
    #[arg(long)]
    pub max: Option<f64>,
    /// Stop when passing and failing levels are this close (percent).
    #[arg(long)]
    pub resolution_pct: Option<f64>,
    #[arg(long)]
    pub max_steps: Option<u32>,
    /// A step with more failed requests than this (percent) fails.
    #[arg(long)]
    pub max_error_pct: Option<f64>,
    /// Independent searches (the capacity is their median).
    #[arg(long)]
    pub repeat: Option<u32>,
    /// Rate search: a cap on requests in flight.
    #[arg(long)]
    pub concurrency: Option<u32>,
}

fn put(body: &mut Value, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        body[key] = v.into();
    }
}

impl WorkloadArgs {
    fn body(&self, test_type: &str) -> Value {
        let mut b = json!({"test_type": test_type, "model": self.model});
        put(&mut b, "arrival", self.arrival.clone());
        put(&mut b, "burstiness", self.burstiness);
        put(&mut b, "duration_s", self.duration_s);
        put(&mut b, "requests", self.requests);
        put(&mut b, "warmup_s", self.warmup_s);
        put(&mut b, "warmup_requests", self.warmup_requests);
        put(&mut b, "input_tokens", self.input_tokens);
        if let (Some(mean), Some(sd)) = (self.input_tokens_mean, self.input_tokens_sd) {
            b["input_tokens"] = json!({"mean": mean, "sd": sd});
        }
        put(&mut b, "max_tokens", self.max_tokens);
        put(&mut b, "dataset", self.dataset.clone());
        put(&mut b, "prefix_groups", self.prefix_groups);
        put(&mut b, "prefix_tokens", self.prefix_tokens);
        put(&mut b, "seed", self.seed);
        put(&mut b, "temperature", self.temperature);
        let nonce =
            self.prompt_nonce.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
        b["prompt_nonce"] = nonce.into();
        let mut slo = json!({});
        put(&mut slo, "ttft_ms", self.slo_ttft_ms);
        put(&mut slo, "tpot_ms", self.slo_tpot_ms);
        put(&mut slo, "e2e_ms", self.slo_e2e_ms);
        if slo.as_object().is_some_and(|o| !o.is_empty()) {
            b["slo"] = slo;
        }
        b
    }
}

/// The option a spec field comes from: `slo.ttft_ms` → `--slo-ttft-ms`.
fn option_name(field: &str) -> String {
    format!("--{}", field.replace(['.', '_'], "-"))
}

fn validate(body: &Value) -> anyhow::Result<JobSpec> {
    JobSpec::from_json(body, 0).map_err(|e| anyhow::anyhow!("{}: {}", option_name(&e.field), e.message))
}

impl LoadArgs {
    pub fn spec(&self) -> anyhow::Result<JobSpec> {
        let mut b = self.workload.body("llm_load");
        put(&mut b, "rate_rps", self.rate_rps);
        put(&mut b, "concurrency", self.concurrency);
        validate(&b)
    }
}

impl CapacityArgs {
    pub fn spec(&self) -> anyhow::Result<JobSpec> {
        let mut b = self.workload.body("llm_capacity");
        b["search"] = self.search.clone().into();
        put(&mut b, "percentile", self.percentile);
        put(&mut b, "start", self.start);
        put(&mut b, "max", self.max);
        put(&mut b, "resolution_pct", self.resolution_pct);
        put(&mut b, "max_steps", self.max_steps);
        put(&mut b, "max_error_pct", self.max_error_pct);
        put(&mut b, "repeat", self.repeat);
        put(&mut b, "concurrency", self.concurrency);
        validate(&b)
    }
}

/// Runs `spec` against the engine of `common`; prints the live line and the result.
pub async fn run_terminal(common: &Common, spec: JobSpec) -> anyhow::Result<()> {
    let engine = engine::build(&EngineSettings {
        kind: common.engine.into(),
        base_url: common.base_url.clone(),
        api_key: common.api_key.clone(),
        request_timeout_s: common.timeout_s,
        ..EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
    });
    let slo = match &spec {
        JobSpec::LlmLoad(l) => l.slo,
        JobSpec::LlmCapacity(c) => Some(c.slo),
        _ => None,
    };
    let cancel = CancellationToken::new();
    let ctx = LoadCtx {
        engine,
        request_timeout: std::time::Duration::from_secs_f64(common.timeout_s),
        cancel: cancel.clone(),
        slo,
    };
    let rows: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
    let live = !common.plain && std::io::stderr().is_terminal();
    let sink = rows.clone();
    let emit: Emit = Arc::new(move |e| match e {
        Event::LoadProgress(p) => {
            let line = table::progress_line(&p);
            if live {
                eprint!("\r\x1b[2K{line}");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
        }
        Event::LoadRequests(batch) => bench_shared::sync::lock(&sink).extend(batch.rows),
        _ => {}
    });
    let run = async {
        match &spec {
            JobSpec::LlmLoad(l) => run_load(&ctx, l, &emit).await,
            JobSpec::LlmCapacity(c) => run_capacity(&ctx, c, &emit).await,
            other => unreachable!("{:?} is no load spec", other.test_type()),
        }
    };
    let result = tokio::select! {
        r = run => r,
        _ = ctrl_c() => {
            cancel.cancel();
            Err(LoadError::Cancelled)
        }
    };
    if live {
        eprintln!();
    }
    if let Some(path) = &common.requests_csv {
        let rows = std::mem::take(&mut *bench_shared::sync::lock(&rows));
        write_csv(path, &rows)?;
        eprintln!("{} request records in {}", rows.len(), path.display());
    }
    let done: LoadDone = match result {
        Ok(done) => done,
        Err(LoadError::Cancelled) => anyhow::bail!("interrupted"),
        Err(e) => return Err(e).context("the load failed"),
    };
    if common.json {
        println!("{}", serde_json::to_string(&done)?);
    } else {
        println!("{}", table::done_table(&done));
    }
    Ok(())
}

/// Completes on Ctrl-C; never when the signal cannot be watched.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn write_csv(path: &std::path::Path, rows: &[RequestRecord]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    if rows.is_empty() {
        w.write_record(RequestRecord::HEADER)?;
    }
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: C,
    }
    #[derive(Debug, clap::Subcommand)]
    enum C {
        Load(LoadArgs),
        Capacity(CapacityArgs),
    }

    #[test]
    fn options_become_a_validated_spec_and_errors_name_the_option() {
        let T { c: C::Load(a) } = T::parse_from([
            "t",
            "load",
            "--base-url",
            "http://x",
            "--model",
            "m",
            "--rate-rps",
            "5",
            "--arrival",
            "gamma",
            "--burstiness",
            "0.5",
            "--input-tokens-mean",
            "100",
            "--input-tokens-sd",
            "10",
            "--slo-ttft-ms",
            "500",
        ]) else {
            panic!()
        };
        let JobSpec::LlmLoad(s) = a.spec().unwrap() else { panic!() };
        assert_eq!((s.rate_rps, s.burstiness, s.slo.unwrap().ttft_ms), (Some(5.0), 0.5, Some(500.0)));
        assert!(s.prompt_nonce.is_some(), "a fresh nonce per run");
        let T { c: C::Load(a) } = T::parse_from(["t", "load", "--base-url", "u", "--model", "m", "--rate-rps", "0"])
        else {
            panic!()
        };
        let e = a.spec().unwrap_err().to_string();
        assert!(e.starts_with("--rate-rps: must be a number from 0.01"), "{e}");
        let T { c: C::Capacity(a) } = T::parse_from([
            "t",
            "capacity",
            "--base-url",
            "u",
            "--model",
            "m",
            "--search",
            "concurrency",
            "--slo-ttft-ms=-1",
        ]) else {
            panic!()
        };
        let e = a.spec().unwrap_err().to_string();
        assert!(e.starts_with("--slo-ttft-ms:"), "{e}");
    }
}

//! `GET /api/runs/{id}/report.html`: one run as a single self-contained HTML file — settings,
//! fingerprints, per-machine figures, the verdict with its warnings, charts and the outputs.
//!
//! Everything is inline (CSS in a `<style>`, charts as SVG drawn here), there is no script and no
//! reference to anything outside the file, so it opens offline, can be mailed or attached to an
//! issue, and prints (A4/Letter, light colours, sections kept whole). Text from agents and engines
//! reaches the page only through askama's escaping.

use askama::Template;
use bench_shared::compare::capacity::CapacityComparison;
use bench_shared::compare::{Comparison, Metric, WinnerStatus, unit};
use bench_shared::fmt::{count_text, trim_number};
use bench_shared::job::JobSpec;
use bench_shared::run::{RunMetadata, RunSummary};
use serde_json::Value;

use crate::runs::summary::Outcome;

/// The palette of the pages (one colour per machine, in run order).
const PALETTE: [&str; 8] = ["#2f6fde", "#e0701f", "#1f9d6a", "#b23fb6", "#c99a0a", "#1b9fb8", "#d8344f", "#6b5bd6"];

#[derive(Template)]
#[template(path = "report.html")]
pub struct Report {
    pub run_id: String,
    pub title: String,
    pub generated_at: String,
    pub status: String,
    pub started_at: String,
    pub ended_at: String,
    pub imported: Option<String>,
    pub prompt: Option<String>,
    pub settings: Vec<(String, String)>,
    pub clock: Option<String>,
    pub machines: Vec<MachineView>,
    pub tables: Vec<MetricTable>,
    pub verdict: Option<VerdictView>,
    pub charts: Vec<Chart>,
    pub outputs: Vec<(String, String, String)>,
    pub version: &'static str,
}

pub struct MachineView {
    pub label: String,
    pub machine_id: String,
    pub color: &'static str,
    pub status: String,
    pub reason: String,
    pub engine: String,
    pub model: String,
    pub hardware: String,
    pub clock: String,
}

pub struct MetricTable {
    pub title: String,
    pub note: String,
    /// The five column heads (machine first).
    pub head: [&'static str; 5],
    pub rows: Vec<[String; 5]>,
}

const FIGURE_HEAD: [&str; 5] = ["Machine", "Mean", "Geometric mean", "95% CI (geometric mean)", "Repeats"];

pub struct VerdictView {
    pub status: String,
    pub headline: String,
    pub reason: String,
    pub repeats: Option<String>,
    pub sentences: Vec<(String, String, bool)>,
    pub warnings: Vec<(String, String, String)>,
    pub notes: Vec<String>,
}

/// A horizontal bar chart: one bar per machine with its interval as a whisker.
pub struct Chart {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub plot_x: u32,
    pub plot_right: u32,
    pub value_x: u32,
    pub axis_y: u32,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub any_clipped: bool,
}

pub struct Bar {
    /// Shortened to fit the label column; `full` is the whole label (SVG `<title>`).
    pub label: String,
    pub full: String,
    pub color: &'static str,
    pub y: u32,
    pub mid: u32,
    pub width: String,
    pub value: String,
    /// The interval's ends; `clipped` when the upper end lies beyond the scale.
    pub whisker: Option<(String, String)>,
    pub clipped: bool,
}

pub struct Tick {
    pub x: String,
    pub label: String,
}

/// Builds the report of a stored run.
pub fn build(
    meta: &RunMetadata,
    summary: &RunSummary,
    outcomes: &std::collections::HashMap<String, Outcome>,
    now: &str,
) -> Report {
    let labels: Vec<(String, String)> = meta.machines.iter().map(|m| (m.machine_id.clone(), m.label.clone())).collect();
    let label = |id: &str| labels.iter().find(|(m, _)| m == id).map_or(id.to_owned(), |(_, l)| l.clone());
    let color = |id: &str| PALETTE[labels.iter().position(|(m, _)| m == id).unwrap_or(0) % PALETTE.len()];
    let machines = meta
        .machines
        .iter()
        .map(|m| {
            let s = summary.machines.iter().find(|s| s.machine_id == m.machine_id);
            let engine = m.engine.as_ref().map_or("unknown".into(), |e| {
                format!("{} {}", e.kind.as_str(), e.version.as_deref().unwrap_or("(version unknown)"))
            });
            let clock = meta.clock.as_ref().and_then(|c| c.machines.get(&m.machine_id)).map(|c| {
                let mut bits = Vec::new();
                match c.offset_ms {
                    Some(o) => bits.push(format!("offset {o:+.2} ms (±{:.2})", c.rtt_ms.unwrap_or(0.0) / 2.0)),
                    None => bits.push(format!("offset unknown ({})", c.reason.as_deref().unwrap_or("not measured"))),
                }
                if let Some(e) = c.start_error_ms {
                    bits.push(format!("first request {:.2} ms {}", e.abs(), if e >= 0.0 { "late" } else { "early" }));
                }
                bits.join(", ")
            });
            MachineView {
                label: m.label.clone(),
                machine_id: m.machine_id.clone(),
                color: color(&m.machine_id),
                status: m.status.as_str().to_owned(),
                reason: m.reason.clone().unwrap_or_default(),
                engine,
                model: s.and_then(|s| s.model.clone()).unwrap_or_else(|| meta.model_label()),
                hardware: m
                    .hardware
                    .as_ref()
                    .map(|h| h.one_line())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "not reported".into()),
                clock: clock.unwrap_or_default(),
            }
        })
        .collect();
    let c = summary.comparison.as_ref().and_then(|c| c.text());
    let capacity = summary.comparison.as_ref().and_then(|c| c.capacity());
    let mut tables = c.map(|c| metric_tables(c, &label)).unwrap_or_default();
    tables.extend(capacity.map(|c| capacity_table(c, &label)));
    let charts = c
        .map(|c| {
            let mut metrics = vec![c.rank_by];
            metrics.extend([Metric::DecodeTokS, Metric::TtftMs].into_iter().filter(|m| *m != c.rank_by));
            metrics.into_iter().filter_map(|m| chart(c, m, &label, &color)).collect()
        })
        .unwrap_or_default();
    let outputs = meta
        .machines
        .iter()
        .filter_map(|m| {
            let text = outcomes.get(&m.machine_id).map(|o| o.output_text.clone()).filter(|t| !t.is_empty())?;
            Some((m.label.clone(), color(&m.machine_id).to_owned(), text))
        })
        .collect();
    Report {
        run_id: meta.run_id.clone(),
        title: format!(
            "{} on {} machine{}",
            meta.model_label(),
            meta.machines.len(),
            if meta.machines.len() == 1 { "" } else { "s" }
        ),
        generated_at: now.to_owned(),
        status: meta.status.as_str().to_owned(),
        started_at: meta.started_at.clone(),
        ended_at: meta.ended_at.clone().unwrap_or_else(|| "—".into()),
        imported: meta.imported.as_ref().map(|i| {
            format!(
                "imported from {} (exported {}, imported {})",
                i.origin.as_deref().unwrap_or("an unnamed central"),
                i.exported_at,
                i.imported_at
            )
        }),
        prompt: meta.prompt.clone(),
        settings: settings(&meta.spec),
        clock: meta.clock.as_ref().map(|c| match c.achieved_skew_ms {
            Some(s) => format!(
                "achieved start skew {s:.2} ms across {} machines (first requests, on central's clock)",
                c.skew_machines
            ),
            None => "achieved start skew unknown (fewer than two machines with a measured offset started)".into(),
        }),
        machines,
        tables,
        verdict: c.map(|c| verdict(c, &label)).or_else(|| capacity.map(|c| capacity_verdict(c, &label))),
        charts,
        outputs,
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// The job's settings as shown (read from the stored spec, so every test type shows its own).
fn settings(job: &JobSpec) -> Vec<(String, String)> {
    let spec = serde_json::to_value(job).unwrap_or(Value::Null);
    let keys = [
        "test_type",
        "model",
        "models",
        "max_tokens",
        "temperature",
        "num_ctx",
        "repeat",
        "warmup",
        "stream",
        "seed",
        "cold",
        "rank_by",
        "min_effect_pct",
        "ctx",
        "parallel",
        "runs",
        "out_tokens",
        "checkpoint",
        "steps",
        "width",
        "height",
        "cfg",
        "sampler",
        "scheduler",
        "num_images",
        "audio",
        "audio_file",
        "audio_sha256",
        "audio_s",
        "language",
        "n",
        "threads",
        "algorithm",
    ];
    let mut out: Vec<(String, String)> = keys
        .iter()
        .filter_map(|k| {
            let v = spec.get(*k).filter(|v| !v.is_null())?;
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            Some(((*k).to_owned(), text))
        })
        .collect();
    if let JobSpec::LlmGenerate(g) = job {
        let busted = g.prompt_nonce.is_some();
        out.push(("cache_bust".into(), if busted { "on (a fresh tag per repeat)".into() } else { "off".into() }));
    }
    out
}

fn metric_label(m: Metric) -> &'static str {
    match m {
        Metric::DecodeTokS => "Decode rate",
        Metric::TtftMs => "Time to first token",
        Metric::TotalMs => "Total time",
        Metric::GenTokensPerS => "Generation rate (bench-race)",
        Metric::PrefillTokS => "Prefill rate",
        Metric::TokensPerJ => "Energy efficiency",
    }
}

fn fmt(v: f64, unit: &str) -> String {
    let d = if unit == "ms" {
        0
    } else if unit == "tok/J" {
        3
    } else {
        1
    };
    format!("{v:.d$}")
}

fn metric_tables(c: &Comparison, label: &dyn Fn(&str) -> String) -> Vec<MetricTable> {
    c.metrics
        .iter()
        .filter(|m| m.machines.iter().any(|s| s.n > 0))
        .map(|m| {
            let u = unit(m.metric);
            let rows = m
                .machines
                .iter()
                .map(|s| {
                    let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{} {u}", fmt(v, u)));
                    let ci = s.ci95.map_or("–".into(), |[lo, hi]| format!("{}–{} {u}", fmt(lo, u), fmt(hi, u)));
                    [label(&s.machine_id), f(s.mean), f(s.geomean), ci, s.n.to_string()]
                })
                .collect();
            let source = m.source.map_or("no figure".into(), |s| format!("{s:?}-measured").to_lowercase());
            MetricTable {
                title: format!(
                    "{} ({}, {} is better)",
                    metric_label(m.metric),
                    m.metric.as_str(),
                    if m.higher_is_better { "higher" } else { "lower" }
                ),
                note: source,
                head: FIGURE_HEAD,
                rows,
            }
        })
        .collect()
}

fn verdict(c: &Comparison, label: &dyn Fn(&str) -> String) -> VerdictView {
    let w = &c.winner;
    let headline = match (w.status, &w.machine_id) {
        (WinnerStatus::Decided, Some(id)) => format!("Winner on {}: {}", c.rank_by.as_str(), label(id)),
        (WinnerStatus::Tie, _) => format!("Tie on {}", c.rank_by.as_str()),
        (WinnerStatus::Unfair, _) => format!("No winner: {} is not comparable", c.rank_by.as_str()),
        _ => format!("No verdict on {}", c.rank_by.as_str()),
    };
    let mut notes = Vec::new();
    let o = &c.outputs;
    notes.push(if !o.compared {
        format!("Outputs not compared: {}.", o.reason.as_deref().unwrap_or("—"))
    } else if o.identical_groups.len() <= 1 {
        "Outputs: identical on every machine.".into()
    } else {
        let groups: Vec<String> =
            o.identical_groups.iter().map(|g| g.iter().map(|id| label(id)).collect::<Vec<_>>().join(" = ")).collect();
        format!("Outputs differ: {}.", groups.join(" | "))
    });
    if !c.cold.is_empty() {
        let cold: Vec<String> = c
            .cold
            .iter()
            .map(|x| {
                format!(
                    "{} repeat {}{}",
                    label(&x.machine_id),
                    x.repeat_index + 1,
                    x.load_ms.map_or(String::new(), |l| format!(" (load {l:.0} ms)"))
                )
            })
            .collect();
        notes.push(format!("Cold starts, left out of the statistics: {}.", cold.join("; ")));
    }
    VerdictView {
        status: format!("{:?}", w.status).to_lowercase(),
        headline,
        reason: w.reason.clone(),
        repeats: advice(w.repeats_needed, "repeats", c.min_effect_pct),
        sentences: c.verdicts.iter().map(|v| (v.metric.as_str().to_owned(), v.text.clone(), v.significant)).collect(),
        warnings: c
            .fairness
            .warnings
            .iter()
            .map(|x| {
                let affects = if x.affects.is_empty() {
                    "informational".into()
                } else {
                    format!("not comparable: {}", x.affects.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
                };
                warning_row(label, x.kind.as_str(), x.machine_id.as_deref(), &x.detail, affects)
            })
            .collect(),
        notes,
    }
}

/// "About N repeats per machine would settle …" when the verdict says how many would.
fn advice(needed: Option<usize>, what: &str, min_effect_pct: f64) -> Option<String> {
    needed.map(|k| {
        format!(
            "About {} {what} per machine would settle a {}% difference at the spread seen.",
            count_text(k),
            trim_number(min_effect_pct)
        )
    })
}

/// One fairness warning as shown: `kind (who)`, the detail, what it affects.
fn warning_row(
    label: &dyn Fn(&str) -> String,
    kind: &str,
    machine_id: Option<&str>,
    detail: &str,
    affects: String,
) -> (String, String, String) {
    let who = machine_id.map(label).unwrap_or_else(|| "race".into());
    (format!("{kind} ({who})"), detail.to_owned(), affects)
}

/// A capacity race's verdict: who serves more within the SLO, the sentences and the warnings.
fn capacity_verdict(c: &CapacityComparison, label: &dyn Fn(&str) -> String) -> VerdictView {
    let w = &c.winner;
    let slo = c.slo.describe(c.percentile);
    let headline = match (w.status, &w.machine_id) {
        (WinnerStatus::Decided, Some(id)) => format!("{} serves the most within {slo}", label(id)),
        (WinnerStatus::Tie, _) => format!("Tie on capacity within {slo}"),
        (WinnerStatus::Unfair, _) => "No winner: the capacities are not comparable".to_owned(),
        _ => format!("No verdict on capacity within {slo}"),
    };
    VerdictView {
        status: format!("{:?}", w.status).to_lowercase(),
        headline,
        reason: w.reason.clone(),
        repeats: advice(w.repeats_needed, "searches", c.min_effect_pct),
        sentences: c.verdicts.iter().map(|v| ("capacity".to_owned(), v.text.clone(), v.significant)).collect(),
        warnings: c
            .fairness
            .warnings
            .iter()
            .map(|x| {
                let affects = if x.blocks { "not comparable: capacity" } else { "informational" };
                warning_row(label, x.kind.as_str(), x.machine_id.as_deref(), &x.detail, affects.to_owned())
            })
            .collect(),
        notes: vec![format!(
            "Search by {} ({}); each figure is the highest level that met {slo}.",
            c.search.as_str(),
            c.unit
        )],
    }
}

/// One row per machine: its capacity (median of its searches), the geometric mean with its
/// interval, and every search's result.
fn capacity_table(c: &CapacityComparison, label: &dyn Fn(&str) -> String) -> MetricTable {
    let u = &c.unit;
    let f = |v: Option<f64>| v.map_or("none met the SLO".into(), |v| format!("{} {u}", trim_number(v)));
    let rows = c
        .machines
        .iter()
        .map(|m| {
            let ci = m.ci95.map_or("–".into(), |[lo, hi]| format!("{}–{} {u}", trim_number(lo), trim_number(hi)));
            let searches: Vec<String> = m.searches.iter().map(|s| s.map_or("none".into(), trim_number)).collect();
            [label(&m.machine_id), f(m.capacity), f(m.geo_mean), ci, searches.join(", ")]
        })
        .collect();
    MetricTable {
        title: format!("Capacity within {}", c.slo.describe(c.percentile)),
        note: format!("{} search, higher is better", c.search.as_str()),
        head: ["Machine", "Capacity (median)", "Geometric mean", "95% CI (geometric mean)", "Searches"],
        rows,
    }
}

/// Round ticks from 0 to `max` (a step of 1, 2, 2.5 or 5 × 10^k), as the pages draw them.
pub fn nice_ticks(max: f64, count: usize) -> Vec<f64> {
    if max.is_nan() || max <= 0.0 {
        return vec![0.0];
    }
    let raw = max / count.max(1) as f64;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * pow).find(|s| *s >= raw * 0.8).unwrap_or(10.0 * pow);
    (0..).map(|i| i as f64 * step).take_while(|v| *v <= max + step * 1e-9).collect()
}

fn chart(
    c: &Comparison,
    metric: Metric,
    label: &dyn Fn(&str) -> String,
    color: &dyn Fn(&str) -> &'static str,
) -> Option<Chart> {
    let stats = c.metrics.iter().find(|m| m.metric == metric)?;
    let rows: Vec<_> = stats.machines.iter().filter_map(|s| s.mean.map(|v| (s, v))).collect();
    if rows.is_empty() {
        return None;
    }
    let u = unit(metric);
    let top = rows.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    // The scale reaches the highest interval bound unless that is far beyond the bars (a wide
    // interval of three noisy repeats): then whiskers are cut at the edge.
    let ci_top = rows.iter().filter_map(|(s, _)| s.ci95.map(|c| c[1])).fold(0.0, f64::max);
    let ticks = nice_ticks(if ci_top > top && ci_top < 2.0 * top { ci_top } else { top * 1.1 }, 5);
    let scale_max = *ticks.last().unwrap_or(&1.0);
    let scale_max = if scale_max < top { top * 1.1 } else { scale_max };
    let labels: Vec<String> = rows.iter().map(|(s, _)| label(&s.machine_id)).collect();
    let short = |l: &str| {
        if l.chars().count() > 40 { format!("{}…", l.chars().take(39).collect::<String>()) } else { l.to_owned() }
    };
    // About 7 px per character of a 12 px font; the label column between 120 and 300 px.
    let longest = labels.iter().map(|l| short(l).chars().count()).max().unwrap_or(0) as u32;
    let plot_x = (longest * 7 + 16).clamp(120, 300);
    let (width, bar_h, gap, top_pad) = (760u32, 22u32, 10u32, 6u32);
    let plot_right = width - 110;
    let x = |v: f64| plot_x as f64 + (v.max(0.0) / scale_max).min(1.0) * (plot_right - plot_x) as f64;
    let bars: Vec<Bar> = rows
        .iter()
        .zip(&labels)
        .enumerate()
        .map(|(i, ((s, v), l))| {
            let y = top_pad + i as u32 * (bar_h + gap);
            Bar {
                label: short(l),
                full: l.clone(),
                color: color(&s.machine_id),
                y,
                mid: y + bar_h / 2,
                width: format!("{:.1}", x(*v) - plot_x as f64),
                value: format!("{} {u}", fmt(*v, u)),
                whisker: s.ci95.map(|[lo, hi]| (format!("{:.1}", x(lo)), format!("{:.1}", x(hi)))),
                clipped: s.ci95.is_some_and(|[_, hi]| hi > scale_max),
            }
        })
        .collect();
    let axis_y = top_pad + rows.len() as u32 * (bar_h + gap);
    Some(Chart {
        title: format!(
            "{} — mean per machine; whisker: 95% CI of the geometric mean ({} is better)",
            metric_label(metric),
            if metric.higher_is_better() { "higher" } else { "lower" }
        ),
        width,
        height: axis_y + 24,
        plot_x,
        plot_right,
        value_x: plot_right + 10,
        axis_y,
        any_clipped: bars.iter().any(|b| b.clipped),
        bars,
        ticks: ticks
            .iter()
            .map(|t| Tick { x: format!("{:.1}", x(*t)), label: format!("{} {u}", fmt(*t, u).trim_end_matches(".0")) })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_distinct() {
        assert_eq!(nice_ticks(76.0, 5), vec![0.0, 20.0, 40.0, 60.0]);
        assert_eq!(nice_ticks(8.05, 3), vec![0.0, 2.5, 5.0, 7.5]);
        assert_eq!(nice_ticks(0.0, 5), vec![0.0]);
        let t = nice_ticks(1234.0, 5);
        assert!(t.windows(2).all(|w| w[1] > w[0]) && t.len() >= 3, "{t:?}");
    }
}

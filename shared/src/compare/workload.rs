//! The verdict on the image, speech and compute races: the same statistics as the text race
//! (per-repeat values, Welch's interval of the difference on the worse mean, Bonferroni over the
//! k − 1 comparisons, at least [`MIN_REPEATS`] repeats each, a minimum effect) on each workload's
//! metric set, with the fairness rules of images.
//!
//! - image: `s_per_image`, `steps_per_s`, `queue_latency_ms`; different checkpoint, resolution,
//!   steps, sampler, scheduler, cfg, seed or batch → not comparable (every verdict blocked); same
//!   seed and settings → the image hashes are compared like text outputs (same or different).
//! - speech: `rtfx`, `wall_ms`, with each machine's `wer` beside (different models block).
//! - compute: `ops_per_s` (a different `n` or thread count blocks; different results are an error
//!   of a machine, named).

use serde::{Deserialize, Serialize};

use super::stats::{Sample, welch};
use super::{CONFIDENCE, MIN_REPEATS};
use crate::event::JobResult;
use crate::job::TestType;

/// A figure the workload races are decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadMetric {
    SPerImage,
    StepsPerS,
    QueueLatencyMs,
    Rtfx,
    WallMs,
    OpsPerS,
}

impl WorkloadMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadMetric::SPerImage => "s_per_image",
            WorkloadMetric::StepsPerS => "steps_per_s",
            WorkloadMetric::QueueLatencyMs => "queue_latency_ms",
            WorkloadMetric::Rtfx => "rtfx",
            WorkloadMetric::WallMs => "wall_ms",
            WorkloadMetric::OpsPerS => "ops_per_s",
        }
    }

    pub fn higher_is_better(self) -> bool {
        matches!(self, WorkloadMetric::StepsPerS | WorkloadMetric::Rtfx | WorkloadMetric::OpsPerS)
    }

    /// "makes an image {}% faster than", and the noun for "no difference in …".
    fn phrase(self) -> (&'static str, &'static str) {
        match self {
            WorkloadMetric::SPerImage => ("makes an image {}% faster than", "seconds per image"),
            WorkloadMetric::StepsPerS => ("samples {}% more steps per second than", "sampler speed"),
            WorkloadMetric::QueueLatencyMs => ("starts {}% sooner than", "queue latency"),
            WorkloadMetric::Rtfx => ("transcribes {}% faster than", "real-time factor"),
            WorkloadMetric::WallMs => ("finishes {}% sooner than", "transcription time"),
            WorkloadMetric::OpsPerS => ("computes {}% faster than", "compute rate"),
        }
    }

    /// The race's metric set, the first deciding the winner.
    pub fn set(t: TestType) -> &'static [WorkloadMetric] {
        match t {
            TestType::ImageGenerate => {
                &[WorkloadMetric::SPerImage, WorkloadMetric::StepsPerS, WorkloadMetric::QueueLatencyMs]
            }
            TestType::Transcribe => &[WorkloadMetric::Rtfx, WorkloadMetric::WallMs],
            TestType::Compute => &[WorkloadMetric::OpsPerS],
            TestType::LlmGenerate | TestType::LlmSweep | TestType::LlmLoad | TestType::LlmCapacity => &[],
        }
    }

    /// Per-repeat values of this metric in a machine's result.
    pub fn values(self, r: &JobResult) -> Vec<f64> {
        let v: Vec<Option<f64>> = match (self, r) {
            (WorkloadMetric::SPerImage, JobResult::Image(d)) => d.runs.iter().map(|x| x.s_per_image).collect(),
            (WorkloadMetric::StepsPerS, JobResult::Image(d)) => d.runs.iter().map(|x| x.steps_per_s).collect(),
            (WorkloadMetric::QueueLatencyMs, JobResult::Image(d)) => {
                d.runs.iter().map(|x| x.queue_latency_ms).collect()
            }
            (WorkloadMetric::Rtfx, JobResult::Transcribe(d)) => d.runs.iter().map(|x| x.rtfx).collect(),
            (WorkloadMetric::WallMs, JobResult::Transcribe(d)) => d.runs.iter().map(|x| Some(x.wall_ms)).collect(),
            (WorkloadMetric::OpsPerS, JobResult::Compute(d)) => d.runs.iter().map(|x| x.ops_per_s).collect(),
            _ => Vec::new(),
        };
        v.into_iter().flatten().filter(|x| x.is_finite()).collect()
    }
}

/// A machine that completed a workload job.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadInput {
    pub machine_id: String,
    pub label: String,
    pub result: JobResult,
}

/// One machine's figure on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadStat {
    pub machine_id: String,
    pub n: usize,
    pub mean: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// The leader against another machine on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadVerdict {
    pub metric: WorkloadMetric,
    pub better: String,
    pub worse: String,
    pub diff_pct: f64,
    pub ci_pct: Option<[f64; 2]>,
    pub n: [usize; 2],
    pub significant: bool,
    pub text: String,
}

/// `summary.json` → `workload_comparison`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadComparison {
    pub test_type: TestType,
    pub metrics: Vec<WorkloadMetric>,
    pub stats: Vec<(WorkloadMetric, Vec<WorkloadStat>)>,
    pub verdicts: Vec<WorkloadVerdict>,
    /// Why the machines cannot be compared (settings that differ), naming what differs.
    pub not_comparable: Option<String>,
    /// Images: whether the machines made the same images (same seeds and settings only).
    pub outputs: Option<String>,
    /// Speech: each machine's mean WER, beside the timing verdicts.
    #[serde(default)]
    pub wer: Vec<(String, Option<f64>)>,
    /// The winner on the first metric, when decided; else why not.
    pub winner: Option<String>,
    pub winner_text: String,
}

fn pct(x: f64) -> String {
    format!("{x:.1}").replace('-', "−")
}

/// Why these results cannot be compared, if they cannot.
fn settings_difference(inputs: &[WorkloadInput]) -> Option<String> {
    let first = inputs.first()?;
    for other in &inputs[1..] {
        let diff: Vec<String> = match (&first.result, &other.result) {
            (JobResult::Image(a), JobResult::Image(b)) => {
                let mut d: Vec<String> = a.settings.differences(&b.settings).into_iter().map(str::to_owned).collect();
                if a.engine != b.engine {
                    d.push("engine".into());
                }
                d
            }
            (JobResult::Transcribe(a), JobResult::Transcribe(b)) => {
                let mut d = Vec::new();
                if a.model != b.model {
                    d.push("model".to_owned());
                }
                if a.audio_s != b.audio_s {
                    d.push("audio".to_owned());
                }
                d
            }
            (JobResult::Compute(a), JobResult::Compute(b)) => {
                let mut d = Vec::new();
                if (a.n, a.threads) != (b.n, b.threads) {
                    d.push("n or threads".to_owned());
                }
                if a.result != b.result {
                    d.push(format!(
                        "result ({} counted {}, {} counted {}: one machine computes wrongly)",
                        first.label, a.result, other.label, b.result
                    ));
                }
                d
            }
            _ => vec!["test type".to_owned()],
        };
        if !diff.is_empty() {
            return Some(format!("{} and {} differ in {}: not comparable", first.label, other.label, diff.join(", ")));
        }
    }
    None
}

/// Same seeds and settings: did every machine make the same images?
fn image_outputs(inputs: &[WorkloadInput]) -> Option<String> {
    let hashes: Vec<(&str, Vec<&String>)> = inputs
        .iter()
        .filter_map(|i| match &i.result {
            JobResult::Image(d) => Some((i.label.as_str(), d.runs.iter().flat_map(|r| r.sha256.iter()).collect())),
            _ => None,
        })
        .collect();
    let (first_label, first) = hashes.first()?;
    let differ: Vec<&str> = hashes[1..].iter().filter(|(_, h)| h != first).map(|(l, _)| *l).collect();
    Some(if differ.is_empty() {
        "same seeds and settings: every machine made byte-identical images".to_owned()
    } else {
        format!(
            "same seeds and settings, yet {} made different images than {first_label} (other library versions or GPU kernels)",
            differ.join(", ")
        )
    })
}

/// Compares machines that completed the same workload. `min_effect_pct`: the smallest
/// difference that counts.
pub fn compare_workload(test_type: TestType, inputs: &[WorkloadInput], min_effect_pct: f64) -> WorkloadComparison {
    let metrics = WorkloadMetric::set(test_type).to_vec();
    let not_comparable = settings_difference(inputs);
    let level = if inputs.len() > 2 { 1.0 - (1.0 - CONFIDENCE) / (inputs.len() - 1) as f64 } else { CONFIDENCE };
    let mut stats = Vec::new();
    let mut verdicts = Vec::new();
    for &m in &metrics {
        let samples: Vec<(&WorkloadInput, Option<Sample>)> =
            inputs.iter().map(|i| (i, Sample::of(&m.values(&i.result)))).collect();
        stats.push((
            m,
            samples
                .iter()
                .map(|(i, s)| WorkloadStat {
                    machine_id: i.machine_id.clone(),
                    n: s.map_or(0, |s| s.n),
                    mean: s.map(|s| s.mean),
                    ci95: s.and_then(|s| s.mean_ci(CONFIDENCE)),
                })
                .collect(),
        ));
        let mut ranked: Vec<(&WorkloadInput, Sample)> =
            samples.into_iter().filter_map(|(i, s)| s.map(|s| (i, s))).collect();
        ranked.sort_by(|a, b| {
            let o = a.1.mean.total_cmp(&b.1.mean);
            if m.higher_is_better() { o.reverse() } else { o }
        });
        let Some((leader, ls)) = ranked.first().copied() else { continue };
        for (other, os) in ranked.iter().skip(1).copied() {
            let worse = os.mean;
            let diff_pct = if worse != 0.0 { 100.0 * (ls.mean - worse).abs() / worse.abs() } else { 0.0 };
            let ci_pct = welch(&ls, &os, level).map(|w| {
                let (lo, hi) = if m.higher_is_better() { (w.lo, w.hi) } else { (-w.hi, -w.lo) };
                [100.0 * lo / worse.abs(), 100.0 * hi / worse.abs()]
            });
            let enough = ls.n >= MIN_REPEATS && os.n >= MIN_REPEATS;
            let excludes_zero = ci_pct.is_some_and(|[lo, _]| lo > 0.0);
            let significant = not_comparable.is_none() && enough && excludes_zero && diff_pct >= min_effect_pct;
            let (verb, noun) = m.phrase();
            let ci = ci_pct
                .map(|[lo, hi]| format!(", {}% CI {}–{}%", (level * 1000.0).round() / 10.0, pct(lo), pct(hi)))
                .unwrap_or_default();
            let n =
                if ls.n == os.n { format!("{} repeats each", ls.n) } else { format!("{} and {} repeats", ls.n, os.n) };
            let text = if let Some(why) = &not_comparable {
                format!("no verdict on {noun}: {why}")
            } else if significant {
                format!("{} {} {}{ci}, {n}", leader.label, verb.replace("{}", &pct(diff_pct)), other.label)
            } else if !enough {
                format!(
                    "undecided on {noun} between {} and {}: fewer than {MIN_REPEATS} repeats ({n})",
                    leader.label, other.label
                )
            } else if diff_pct < min_effect_pct {
                format!(
                    "{} and {} tie on {noun} ({}% apart{ci}: within the ±{}% minimum effect)",
                    leader.label,
                    other.label,
                    pct(diff_pct),
                    min_effect_pct
                )
            } else {
                format!(
                    "undecided on {noun} between {} and {} ({}% apart{ci}: the interval includes 0)",
                    leader.label,
                    other.label,
                    pct(diff_pct)
                )
            };
            verdicts.push(WorkloadVerdict {
                metric: m,
                better: leader.machine_id.clone(),
                worse: other.machine_id.clone(),
                diff_pct,
                ci_pct,
                n: [ls.n, os.n],
                significant,
                text,
            });
        }
    }
    let first = metrics.first().copied();
    let on_first: Vec<&WorkloadVerdict> = verdicts.iter().filter(|v| Some(v.metric) == first).collect();
    let winner = (!on_first.is_empty() && on_first.iter().all(|v| v.significant)).then(|| on_first[0].better.clone());
    let winner_text = match (&winner, &not_comparable, first) {
        (Some(w), _, Some(m)) => {
            let label = inputs.iter().find(|i| &i.machine_id == w).map_or(w.as_str(), |i| i.label.as_str());
            format!("{label} wins on {}", m.as_str())
        }
        (None, Some(why), _) => format!("no winner: {why}"),
        (None, None, Some(m)) if inputs.len() < 2 => {
            format!("no winner: fewer than two machines finished ({})", m.as_str())
        }
        (None, None, Some(m)) => format!(
            "no winner on {}: {}",
            m.as_str(),
            on_first.iter().map(|v| v.text.as_str()).collect::<Vec<_>>().join("; ")
        ),
        _ => "no winner".to_owned(),
    };
    let outputs = (test_type == TestType::ImageGenerate && not_comparable.is_none() && inputs.len() > 1)
        .then(|| image_outputs(inputs))
        .flatten();
    let wer = inputs
        .iter()
        .filter_map(|i| match &i.result {
            JobResult::Transcribe(d) => Some((i.machine_id.clone(), d.wer)),
            _ => None,
        })
        .collect();
    WorkloadComparison { test_type, metrics, stats, verdicts, not_comparable, outputs, wer, winner, winner_text }
}

/// A stored workload run's machines that completed (`GET /api/compare`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadRun {
    pub run_id: String,
    pub test_type: TestType,
    pub machines: Vec<WorkloadInput>,
}

/// One machine in two workload runs: the race verdict with run A and run B as its two sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadMachineChange {
    pub machine_id: String,
    pub label: String,
    /// Its sides are `a` and `b` (labelled "run A", "run B"): `winner` names the faster run.
    pub comparison: WorkloadComparison,
}

/// `GET /api/compare` for two image, speech or compute runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRunsComparison {
    /// Always `"workload"`.
    pub kind: String,
    pub a: String,
    pub b: String,
    pub test_type: TestType,
    pub min_effect_pct: f64,
    pub machines: Vec<WorkloadMachineChange>,
    pub only_in_a: Vec<crate::run::MachineLabel>,
    pub only_in_b: Vec<crate::run::MachineLabel>,
}

/// Each machine that completed both runs, run B against run A, by the race's own statistics and
/// fairness rules (a different `n`, model or image setting between the runs blocks the verdict).
pub fn compare_workload_runs(a: &WorkloadRun, b: &WorkloadRun, min_effect_pct: f64) -> WorkloadRunsComparison {
    let side = |id: &str, label: &str, r: &JobResult| WorkloadInput {
        machine_id: id.to_owned(),
        label: label.to_owned(),
        result: r.clone(),
    };
    let machines = a
        .machines
        .iter()
        .filter_map(|ma| {
            let mb = b.machines.iter().find(|m| m.machine_id == ma.machine_id)?;
            let inputs = [side("a", "run A", &ma.result), side("b", "run B", &mb.result)];
            Some(WorkloadMachineChange {
                machine_id: ma.machine_id.clone(),
                label: ma.label.clone(),
                comparison: compare_workload(a.test_type, &inputs, min_effect_pct),
            })
        })
        .collect();
    let only = |x: &WorkloadRun, y: &WorkloadRun| {
        x.machines
            .iter()
            .filter(|m| !y.machines.iter().any(|o| o.machine_id == m.machine_id))
            .map(|m| crate::run::MachineLabel { machine_id: m.machine_id.clone(), label: m.label.clone() })
            .collect()
    };
    WorkloadRunsComparison {
        kind: "workload".into(),
        a: a.run_id.clone(),
        b: b.run_id.clone(),
        test_type: a.test_type,
        min_effect_pct,
        machines,
        only_in_a: only(a, b),
        only_in_b: only(b, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::compute::{ComputeDone, ComputeJobDone, ComputeSpec};
    use crate::workload::image::{ImageEngineKind, ImageJobDone, ImageRun, ImageSpec};

    fn compute(id: &str, walls: &[f64], result: u64) -> WorkloadInput {
        let spec: ComputeSpec = serde_json::from_value(serde_json::json!({"n": 1_000_000})).unwrap();
        let done: Vec<ComputeDone> =
            walls.iter().enumerate().map(|(i, w)| ComputeDone::new(i as u32, 1_000_000, 1, result, *w)).collect();
        WorkloadInput {
            machine_id: id.into(),
            label: format!("{id} box"),
            result: JobResult::Compute(ComputeJobDone::from_repeats(&spec, &done)),
        }
    }

    #[test]
    fn compute_verdict_needs_repeats_and_a_real_difference() {
        let c = compare_workload(
            TestType::Compute,
            &[compute("a", &[100.0, 101.0, 99.0], 78_498), compute("b", &[200.0, 202.0, 198.0], 78_498)],
            2.0,
        );
        assert_eq!(c.winner.as_deref(), Some("a"));
        let v = &c.verdicts[0];
        assert!(v.significant && (v.diff_pct - 100.0).abs() < 1.0, "{v:?}");
        assert!(v.text.starts_with("a box computes 100.") && v.text.ends_with("3 repeats each"), "{}", v.text);
        let few =
            compare_workload(TestType::Compute, &[compute("a", &[100.0], 78_498), compute("b", &[200.0], 78_498)], 2.0);
        assert!(few.winner.is_none() && few.verdicts[0].text.contains("fewer than 3 repeats"), "{}", few.winner_text);
        let tie = compare_workload(
            TestType::Compute,
            &[compute("a", &[100.0, 101.0, 99.0], 78_498), compute("b", &[100.5, 101.0, 99.5], 78_498)],
            2.0,
        );
        assert!(tie.verdicts[0].text.contains("tie"), "{}", tie.verdicts[0].text);
        let wrong = compare_workload(
            TestType::Compute,
            &[compute("a", &[100.0, 100.0, 100.0], 78_498), compute("b", &[50.0, 50.0, 50.0], 78_497)],
            2.0,
        );
        assert!(wrong.winner.is_none() && wrong.not_comparable.unwrap().contains("computes wrongly"));
    }

    #[test]
    fn two_runs_compare_each_machine_run_b_against_run_a() {
        let run = |id: &str, machines: Vec<WorkloadInput>| WorkloadRun {
            run_id: id.into(),
            test_type: TestType::Compute,
            machines,
        };
        let a = run("A", vec![compute("x", &[200.0, 202.0, 198.0], 78_498), compute("y", &[100.0; 3], 78_498)]);
        let b = run("B", vec![compute("x", &[100.0, 101.0, 99.0], 78_498), compute("z", &[100.0; 3], 78_498)]);
        let c = compare_workload_runs(&a, &b, 2.0);
        assert_eq!((c.kind.as_str(), c.a.as_str(), c.b.as_str()), ("workload", "A", "B"));
        assert_eq!(c.machines.len(), 1);
        let x = &c.machines[0];
        assert_eq!((x.machine_id.as_str(), x.label.as_str()), ("x", "x box"));
        assert_eq!(x.comparison.winner.as_deref(), Some("b"));
        assert!(x.comparison.verdicts[0].text.starts_with("run B computes 100."), "{}", x.comparison.verdicts[0].text);
        assert_eq!((c.only_in_a[0].machine_id.as_str(), c.only_in_b[0].machine_id.as_str()), ("y", "z"));
        // Another count in run B (one machine computes wrongly): no verdict.
        let other_n = run("B", vec![compute("x", &[1.0, 1.0, 1.0], 5)]);
        let c = compare_workload_runs(&a, &other_n, 2.0);
        assert!(c.machines[0].comparison.winner.is_none());
        assert!(c.machines[0].comparison.not_comparable.is_some(), "{:?}", c.machines[0].comparison);
    }

    fn image(id: &str, spec: serde_json::Value, per_image: &[f64], hash: &str) -> WorkloadInput {
        let spec: ImageSpec = serde_json::from_value(spec).unwrap();
        let runs: Vec<ImageRun> = per_image
            .iter()
            .enumerate()
            .map(|(i, s)| ImageRun {
                queue_latency_ms: Some(5.0),
                gen_time_ms: s * 1000.0,
                total_ms: s * 1000.0 + 5.0,
                steps_per_s: Some(20.0 / s),
                s_per_image: Some(*s),
                seed: spec.seed_for(i as u32),
                sha256: vec![format!("{hash}{i}")],
            })
            .collect();
        let done = ImageJobDone {
            test_type: TestType::ImageGenerate,
            engine: ImageEngineKind::Comfyui,
            settings: spec.settings(),
            repeats: runs.len() as u32,
            queue_latency_ms: Some(5.0),
            gen_time_ms: 0.0,
            total_ms: 0.0,
            steps_per_s: None,
            s_per_image: None,
            s_per_image_summary: None,
            images: Vec::new(),
            runs,
            notes: Vec::new(),
        };
        WorkloadInput { machine_id: id.into(), label: id.into(), result: JobResult::Image(done) }
    }

    #[test]
    fn images_with_other_settings_are_not_comparable_and_same_settings_compare_hashes() {
        let base = serde_json::json!({"prompt": "p", "checkpoint": "c", "seed": 1});
        let mut other = base.clone();
        other["steps"] = serde_json::json!(30);
        other["width"] = serde_json::json!(768);
        let c = compare_workload(
            TestType::ImageGenerate,
            &[image("a", base.clone(), &[1.0, 1.1, 0.9], "h"), image("b", other, &[2.0, 2.1, 1.9], "h")],
            2.0,
        );
        let why = c.not_comparable.clone().unwrap();
        assert!(why.contains("resolution, steps"), "{why}");
        assert!(c.winner.is_none() && c.verdicts.iter().all(|v| !v.significant && v.text.starts_with("no verdict")));
        let same = compare_workload(
            TestType::ImageGenerate,
            &[image("a", base.clone(), &[1.0, 1.1, 0.9], "h"), image("b", base.clone(), &[2.0, 2.1, 1.9], "h")],
            2.0,
        );
        assert_eq!(same.winner.as_deref(), Some("a"));
        assert!(same.outputs.as_deref().unwrap().contains("byte-identical"));
        assert_eq!(
            same.metrics,
            [WorkloadMetric::SPerImage, WorkloadMetric::StepsPerS, WorkloadMetric::QueueLatencyMs]
        );
        let differ = compare_workload(
            TestType::ImageGenerate,
            &[image("a", base.clone(), &[1.0, 1.1, 0.9], "h"), image("b", base, &[2.0, 2.1, 1.9], "x")],
            2.0,
        );
        assert!(differ.outputs.unwrap().contains("b made different images than a"));
    }
}

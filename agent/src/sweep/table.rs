//! The terminal view of a sweep: a live ratatui table with LLMBench's columns, a status line,
//! and a plain one-line-per-change format for pipes and CI logs.
//!
//! The view is built only from sweep events, so the terminal shows exactly what a browser or a
//! `websocat` reader of the same job would see.

use std::time::{Duration, Instant};

use bench_shared::event::Event;
use bench_shared::sweep::{CellState, SweepProgress};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};

/// The table's columns, most useful first, with short headers that carry their unit. A narrow
/// terminal shows the leading columns that fit (80 columns: model to errors), a wide one all.
pub const COLUMNS: [&str; 14] = [
    "Model",
    "Ctx",
    "Par",
    "State",
    "Reqs",
    "Strm tok/s",
    "Tot tok/s",
    "TTFT ms",
    "Err",
    "Pfill tok/s",
    "Live tok/s",
    "Warm",
    "Elapsed",
    "Updated",
];

const WIDTHS: [u16; 14] = [14, 5, 3, 11, 5, 10, 9, 7, 3, 11, 10, 5, 7, 8];

/// How many leading columns fit in `width` cells (borders and one space between columns).
fn columns_that_fit(width: u16) -> usize {
    let mut used = 2u16; // the block's borders
    let mut n = 0;
    for (i, w) in WIDTHS.iter().enumerate() {
        let need = w + u16::from(i > 0);
        if used + need > width {
            break;
        }
        used += need;
        n += 1;
    }
    n.max(1)
}

/// `text` cut to `width` characters, with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[derive(Debug, Clone)]
struct CellView {
    progress: SweepProgress,
    /// Wall clock of the last event for this cell (epoch seconds).
    last_update_s: Option<f64>,
    /// When the pending retry fires (for the countdown).
    retry_at: Option<Instant>,
}

/// The live state of the terminal view.
#[derive(Debug, Clone, Default)]
pub struct SweepTable {
    cells: Vec<CellView>,
    finished: Option<String>,
    /// The bordered block's title.
    title: String,
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}")).unwrap_or_else(|| "-".into())
}

/// `HH:MM:SS` (UTC) of an epoch time.
fn clock(epoch_s: f64) -> String {
    let s = epoch_s.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 { format!("{}h{:02}m", s / 3600, s / 60 % 60) } else { format!("{}m{:02}s", s / 60, s % 60) }
}

impl SweepTable {
    pub fn new() -> Self {
        SweepTable::with_title("bench-agent sweep (Ctrl-C stops, CSV rows so far are kept)")
    }

    pub fn with_title(title: &str) -> Self {
        SweepTable { title: title.to_owned(), ..Default::default() }
    }

    /// Applies one event; `now` and `wall_s` are when it was received.
    pub fn apply(&mut self, event: &Event, now: Instant, wall_s: f64) {
        match event {
            Event::SweepStarted(s) => {
                self.cells.clear();
                for model in &s.models {
                    for ctx in &s.ctx_points {
                        for par in &s.parallel {
                            let progress = SweepProgress {
                                model: model.clone(),
                                ctx: *ctx,
                                par: *par,
                                cell_index: self.cells.len(),
                                cells_total: s.cells_total,
                                ..Default::default()
                            };
                            self.cells.push(CellView { progress, last_update_s: None, retry_at: None });
                        }
                    }
                }
            }
            Event::SweepProgress(p) => {
                let i = p.cell_index;
                if self.cells.len() <= i {
                    let filler = CellView { progress: SweepProgress::default(), last_update_s: None, retry_at: None };
                    self.cells.resize(i + 1, filler);
                }
                let retry_at = p
                    .retry_delay_s
                    .filter(|_| p.state == CellState::Retrying)
                    .map(|d| now + Duration::from_secs_f64(d));
                self.cells[i] = CellView { progress: (**p).clone(), last_update_s: Some(wall_s), retry_at };
            }
            Event::SweepDone(d) => {
                self.finished = Some(format!(
                    "done: {}",
                    d.summary_csv.as_deref().map(|p| format!("summary in {p}")).unwrap_or_default()
                ));
            }
            _ => {}
        }
    }

    /// The progress of every cell, in sweep order.
    pub fn cells(&self) -> impl Iterator<Item = &SweepProgress> {
        self.cells.iter().map(|c| &c.progress)
    }

    fn row_texts(c: &CellView) -> [String; 14] {
        let p = &c.progress;
        [
            fit(&p.model, WIDTHS[0] as usize),
            p.ctx.to_string(),
            p.par.to_string(),
            p.state.as_str().to_owned(),
            format!("{}/{}", p.requests_done, p.requests_total),
            fmt_opt(p.stream_tok_s, 1),
            fmt_opt(p.total_tok_s, 1),
            p.ttft_s.map(|t| format!("{:.0}", t * 1000.0)).unwrap_or_else(|| "-".into()),
            p.errors.to_string(),
            fmt_opt(p.prefill_tok_s, 0),
            fmt_opt(p.live_tok_s, 1),
            format!("{}/{}", p.warmup_done, p.warmup_total),
            if p.state == CellState::Pending { "-".into() } else { duration(p.elapsed_s) },
            c.last_update_s.map(clock).unwrap_or_else(|| "-".into()),
        ]
    }

    /// The status line: cells done, sweep ETA, and retry countdowns.
    pub fn status_line(&self, now: Instant) -> String {
        if let Some(f) = &self.finished {
            return f.clone();
        }
        let total = self.cells.len();
        let done: Vec<&SweepProgress> = self.cells().filter(|p| p.state == CellState::Done).collect();
        let active = self.cells().find(|p| !matches!(p.state, CellState::Pending | CellState::Done));
        let mut parts = vec![format!("cells {}/{}", done.len(), total)];
        // Sweep ETA: the newest progress of the cell in flight carries it (its remaining time
        // plus the cells after it × the measured mean cell time); between cells, the cells left
        // × the mean of the finished ones.
        let pending = self.cells().filter(|p| p.state == CellState::Pending).count();
        let mean = (!done.is_empty()).then(|| done.iter().map(|p| p.elapsed_s).sum::<f64>() / done.len() as f64);
        let eta = match active {
            Some(a) => a.sweep_eta_s,
            None => mean.map(|m| m * pending as f64),
        };
        match eta {
            Some(eta) if done.len() < total => parts.push(format!("ETA ~{}", duration(eta))),
            _ if done.len() < total => parts.push("ETA: after the first measurements".into()),
            _ => {}
        }
        if let Some(a) = active.filter(|a| a.warmup_load_est_clamped) {
            parts.push(format!("ctx {} par {}: load est 0 s (negative, clamped)", a.ctx, a.par));
        }
        for c in &self.cells {
            if let Some(at) = c.retry_at {
                let left = at.saturating_duration_since(now).as_secs_f64().ceil();
                parts.push(format!(
                    "retry {} ctx {} par {} in {left:.0}s ({})",
                    c.progress.model,
                    c.progress.ctx,
                    c.progress.par,
                    c.progress.detail.as_deref().unwrap_or("")
                ));
            }
        }
        parts.join(" · ")
    }

    /// Draws the table and the status line over the whole frame.
    pub fn render(&self, frame: &mut Frame<'_>, now: Instant) {
        self.render_in(frame, frame.area(), now);
    }

    /// Draws the table and the status line in `area`.
    pub fn render_in(&self, frame: &mut Frame<'_>, area: Rect, now: Instant) {
        let [table_area, status_area] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
        let n = columns_that_fit(table_area.width);
        let header = Row::new(COLUMNS[..n].to_vec()).style(Style::default().add_modifier(Modifier::BOLD));
        let rows = self.cells.iter().map(|c| {
            let style = match c.progress.state {
                CellState::Running | CellState::WarmingUp | CellState::Calibrating => {
                    Style::default().add_modifier(Modifier::BOLD)
                }
                CellState::Retrying => Style::default().add_modifier(Modifier::REVERSED),
                _ => Style::default(),
            };
            let mut texts = Self::row_texts(c).to_vec();
            texts.truncate(n);
            Row::new(texts).style(style)
        });
        let table = Table::new(rows, WIDTHS[..n].iter().map(|w| Constraint::Length(*w)))
            .header(header)
            .block(Block::bordered().title(format!(" {} ", self.title)));
        // Keep the cell in flight in view when the grid is taller than the screen.
        let visible = table_area.height.saturating_sub(3) as usize;
        let focus = self.cells.iter().rposition(|c| c.progress.state != CellState::Pending).unwrap_or(0);
        let mut state = TableState::default().with_offset(focus.saturating_sub(visible.saturating_sub(2)));
        frame.render_stateful_widget(table, table_area, &mut state);
        frame.render_widget(Paragraph::new(self.status_line(now)), status_area);
    }
}

/// One line describing a progress event, for output that is not a terminal.
pub fn progress_line(p: &SweepProgress) -> String {
    let mut line = format!(
        "[{}/{}] {} ctx={} par={} {} warmup {}/{} reqs {}/{} errors {}",
        p.cell_index + 1,
        p.cells_total,
        p.model,
        p.ctx,
        p.par,
        p.state.as_str(),
        p.warmup_done,
        p.warmup_total,
        p.requests_done,
        p.requests_total,
        p.errors
    );
    for (name, v) in [("stream tok/s", p.stream_tok_s), ("total tok/s", p.total_tok_s), ("ttft s", p.ttft_s)] {
        if let Some(v) = v {
            line.push_str(&format!(" {name} {v:.3}"));
        }
    }
    if let Some(eta) = p.eta_s {
        line.push_str(&format!(" eta {}", duration(eta)));
    }
    if let Some(eta) = p.sweep_eta_s.filter(|_| p.state != CellState::Done || p.cell_index + 1 < p.cells_total) {
        line.push_str(&format!(" sweep eta {}", duration(eta)));
    }
    if p.warmup_load_est_clamped {
        line.push_str(" load est 0 s (negative, clamped)");
    }
    if let Some(d) = &p.detail {
        line.push_str(&format!(" ({d})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::sweep::SweepStarted;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let width = buf.area.width as usize;
        let symbols: Vec<&str> = buf.content.iter().map(|c| c.symbol()).collect();
        symbols.chunks(width).map(|line| line.concat()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn table_shows_the_columns_and_follows_progress() {
        let mut table = SweepTable::new();
        let now = Instant::now();
        table.apply(
            &Event::SweepStarted(SweepStarted {
                models: vec!["smollm2:135m".into()],
                ctx_points: vec![256, 512],
                parallel: vec![1, 2],
                cells_total: 4,
            }),
            now,
            0.0,
        );
        let mut term = Terminal::new(TestBackend::new(170, 10)).unwrap();
        term.draw(|f| table.render(f, now)).unwrap();
        let before = screen(&term);
        for col in COLUMNS {
            assert!(before.contains(col), "column {col:?} missing:\n{before}");
        }
        assert_eq!(before.matches("pending").count(), 4, "{before}");
        assert!(before.contains("cells 0/4"));

        let p = SweepProgress {
            model: "smollm2:135m".into(),
            ctx: 512,
            par: 2,
            cell_index: 3,
            cells_total: 4,
            state: CellState::Retrying,
            warmup_done: 3,
            warmup_total: 3,
            requests_done: 1,
            requests_total: 2,
            errors: 0,
            stream_tok_s: Some(123.45),
            total_tok_s: Some(150.0),
            ttft_s: Some(0.042),
            elapsed_s: 75.0,
            retry_delay_s: Some(5.0),
            detail: Some("attempt 2/5 failed".into()),
            ..Default::default()
        };
        table.apply(&Event::SweepProgress(Box::new(p)), now, 3600.0 * 7.0 + 61.0);
        term.draw(|f| table.render(f, now + Duration::from_secs(2))).unwrap();
        let after = screen(&term);
        assert_eq!(after.matches("pending").count(), 3, "{after}");
        for text in ["retrying", "1/2", "3/3", "1m15s", "123.5", "150.0", " 42 ", "07:01:01"] {
            assert!(after.contains(text), "{text:?} missing:\n{after}");
        }
        assert!(after.contains("in 3s (attempt 2/5 failed)"), "retry countdown missing:\n{after}");
    }

    fn started(models: &[&str], ctx: &[u32], par: &[u32]) -> Event {
        Event::SweepStarted(SweepStarted {
            models: models.iter().map(|m| m.to_string()).collect(),
            ctx_points: ctx.to_vec(),
            parallel: par.to_vec(),
            cells_total: models.len() * ctx.len() * par.len(),
        })
    }

    #[test]
    fn at_80x24_the_leading_columns_fit_whole_with_units_and_the_active_cell_is_in_view() {
        let now = Instant::now();
        let mut table = SweepTable::new();
        // 2 models × 4 ctx × 3 par = 24 cells: taller than the 20 rows an 80×24 screen has.
        table.apply(
            &started(&["smollm2:135m-instruct-q8", "qwen3:0.6b"], &[256, 512, 1024, 2048], &[1, 2, 4]),
            now,
            0.0,
        );
        for i in 0..22 {
            let p = SweepProgress {
                model: if i < 12 { "smollm2:135m-instruct-q8".into() } else { "qwen3:0.6b".into() },
                cell_index: i,
                cells_total: 24,
                state: CellState::Done,
                requests_done: 4,
                requests_total: 4,
                stream_tok_s: Some(41.25),
                total_tok_s: Some(38.5),
                ttft_s: Some(1.366),
                elapsed_s: 30.0,
                ..Default::default()
            };
            table.apply(&Event::SweepProgress(Box::new(p)), now, 10.0);
        }
        let active = SweepProgress {
            model: "qwen3:0.6b".into(),
            ctx: 2048,
            par: 2,
            cell_index: 22,
            cells_total: 24,
            state: CellState::WarmingUp,
            requests_total: 4,
            elapsed_s: 5.0,
            sweep_eta_s: Some(55.0),
            ..Default::default()
        };
        table.apply(&Event::SweepProgress(Box::new(active)), now, 11.0);
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| table.render(f, now)).unwrap();
        let screen = screen(&term);
        let header = screen.lines().nth(1).unwrap();
        for col in ["Model", "Ctx", "Par", "State", "Reqs", "Strm tok/s", "Tot tok/s", "TTFT ms", "Err"] {
            assert!(header.contains(col), "column {col:?} cut at 80 columns:\n{screen}");
        }
        assert!(screen.contains("1366"), "TTFT in ms under a 'TTFT ms' header:\n{screen}");
        assert!(screen.contains("smollm2:135m-…"), "long model names are cut with an ellipsis:\n{screen}");
        assert!(screen.contains("warming_up"), "the cell in flight is scrolled into view:\n{screen}");
        assert!(screen.contains("cells 22/24") && screen.contains("ETA ~0m55s"), "{screen}");
    }

    #[test]
    fn eta_is_never_zero_while_a_cell_is_left() {
        let now = Instant::now();
        let mut table = SweepTable::new();
        table.apply(&started(&["m"], &[256], &[1, 2]), now, 0.0);
        let done = SweepProgress {
            model: "m".into(),
            ctx: 256,
            par: 1,
            cell_index: 0,
            cells_total: 2,
            state: CellState::Done,
            elapsed_s: 40.0,
            ..Default::default()
        };
        table.apply(&Event::SweepProgress(Box::new(done)), now, 1.0);
        // Between cells: the one left counts one mean cell time.
        assert!(table.status_line(now).contains("ETA ~0m40s"), "{}", table.status_line(now));
        // The last cell warming up has no per-request ETA yet: the agent's sweep ETA is used.
        let warming = SweepProgress {
            model: "m".into(),
            ctx: 256,
            par: 2,
            cell_index: 1,
            cells_total: 2,
            state: CellState::WarmingUp,
            elapsed_s: 10.0,
            sweep_eta_s: Some(30.0),
            ..Default::default()
        };
        table.apply(&Event::SweepProgress(Box::new(warming)), now, 2.0);
        assert!(table.status_line(now).contains("ETA ~0m30s"), "{}", table.status_line(now));
    }

    #[test]
    fn plain_lines_name_the_cell_and_state() {
        let p = SweepProgress {
            model: "m".into(),
            ctx: 256,
            par: 1,
            cells_total: 2,
            state: CellState::Running,
            requests_done: 1,
            requests_total: 3,
            stream_tok_s: Some(99.5),
            ..Default::default()
        };
        let line = progress_line(&p);
        assert_eq!(line, "[1/2] m ctx=256 par=1 running warmup 0/0 reqs 1/3 errors 0 stream tok/s 99.500");
    }
}

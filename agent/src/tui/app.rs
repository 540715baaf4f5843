//! The terminal app's state and drawing, without I/O: keys and sweep events go in, commands
//! come out, and [`App::render`] draws any screen size (laid out for 80×24).

use std::time::Instant;

use bench_shared::event::Event;
use bench_shared::sweep::{SweepDone, SweepSpec};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::form::{Defaults, Field, Focus, Form, FormAction};
use crate::sweep::table::SweepTable;

/// What the app asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Start(Box<SweepSpec>),
    Stop,
    Quit,
    ReloadModels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Setup,
    Running,
    Finished,
}

/// The whole app.
#[derive(Debug)]
pub struct App {
    pub screen: Screen,
    pub form: Form,
    table: SweepTable,
    /// Engine kind and URL, shown in the title.
    engine: String,
    /// Outcome lines of the last sweep (CSV paths, or why it stopped).
    outcome: Vec<String>,
    stopping: bool,
}

impl App {
    pub fn new(engine: String, defaults: &Defaults) -> Self {
        App {
            screen: Screen::Setup,
            form: Form::new(defaults),
            table: SweepTable::with_title("sweep"),
            engine,
            outcome: Vec::new(),
            stopping: false,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        match self.screen {
            Screen::Setup => match self.form.on_key(key) {
                FormAction::None => None,
                FormAction::Quit => Some(Command::Quit),
                FormAction::ReloadModels => Some(Command::ReloadModels),
                FormAction::Start(spec) => {
                    self.table = SweepTable::with_title("sweep");
                    self.outcome.clear();
                    self.stopping = false;
                    self.screen = Screen::Running;
                    Some(Command::Start(spec))
                }
            },
            Screen::Running => match key.code {
                KeyCode::Char('x') | KeyCode::Esc | KeyCode::Char('q') => self.stop(),
                _ if ctrl_c => self.stop(),
                _ => None,
            },
            Screen::Finished => match key.code {
                KeyCode::Char('q') | KeyCode::Esc => Some(Command::Quit),
                _ if ctrl_c => Some(Command::Quit),
                KeyCode::Char('n') | KeyCode::Enter => {
                    self.screen = Screen::Setup;
                    None
                }
                _ => None,
            },
        }
    }

    fn stop(&mut self) -> Option<Command> {
        self.stopping = true;
        Some(Command::Stop)
    }

    /// A sweep event (the same the terminal sweep and the web page get).
    pub fn apply(&mut self, event: &Event, now: Instant, wall_s: f64) {
        self.table.apply(event, now, wall_s);
    }

    /// The sweep ended: `Ok` with its CSV paths, or why it stopped.
    pub fn finished(&mut self, result: Result<&SweepDone, String>, paths: [String; 3]) {
        self.screen = Screen::Finished;
        self.outcome = match result {
            Ok(done) => {
                let mut lines = vec![format!("sweep done: {} cells measured", done.summary_rows.len())];
                for (name, p) in [
                    ("requests", &done.requests_csv),
                    ("summary", &done.summary_csv),
                    ("load times", &done.load_times_csv),
                ] {
                    lines.push(format!("  {name}: {}", p.clone().unwrap_or_else(|| "-".into())));
                }
                lines
            }
            Err(why) => {
                let mut lines = vec![format!("sweep stopped: {why}"), "  rows measured so far are kept in:".into()];
                lines.extend(paths.iter().map(|p| format!("  {p}")));
                lines
            }
        };
    }

    /// The outcome lines of the last sweep (printed again after the app exits).
    pub fn outcome(&self) -> &[String] {
        &self.outcome
    }

    pub fn render(&self, frame: &mut Frame<'_>, now: Instant) {
        let [main, help] = Layout::vertical([Constraint::Min(5), Constraint::Length(1)]).areas(frame.area());
        let help_text = match self.screen {
            Screen::Setup => "Tab/↑↓ move · Space pick · a all · Enter start · r reload · q quit",
            Screen::Running if self.stopping => "stopping: the rows measured so far are kept…",
            Screen::Running => "x/Esc stop (rows measured so far are kept)",
            Screen::Finished => "n new sweep · q quit",
        };
        frame.render_widget(Paragraph::new(help_text).style(Style::default().add_modifier(Modifier::DIM)), help);
        match self.screen {
            Screen::Setup => self.render_setup(frame, main),
            Screen::Running => self.table.render_in(frame, main, now),
            Screen::Finished => {
                let n = self.outcome.len() as u16;
                let [table, out] = Layout::vertical([Constraint::Min(4), Constraint::Length(n)]).areas(main);
                self.table.render_in(frame, table, now);
                frame.render_widget(Paragraph::new(self.outcome.join("\n")).wrap(Wrap { trim: false }), out);
            }
        }
    }

    fn render_setup(&self, frame: &mut Frame<'_>, area: Rect) {
        let block = Block::bordered().title(format!(" LLMBench sweep · {} ", self.engine));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let f = &self.form;
        let list_rows = (f.models.len().max(1) as u16).min(inner.height.saturating_sub(11).max(1));
        let [models_title, models, settings, summary, error] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(list_rows),
            Constraint::Length(7),
            Constraint::Length(1),
            Constraint::Min(1),
        ])
        .areas(inner);
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let focused = |on: bool| if on { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() };
        frame.render_widget(Paragraph::new(Line::styled("Models served by the engine", bold)), models_title);
        let mut lines: Vec<Line> = Vec::new();
        if f.models.is_empty() {
            let why = f.models_error.clone().unwrap_or_else(|| "none listed (r reloads)".into());
            lines.push(Line::raw(format!("  {why}")));
        }
        let first = f.cursor.saturating_sub(list_rows.saturating_sub(1) as usize);
        for (i, (name, on)) in f.models.iter().enumerate().skip(first).take(list_rows as usize) {
            let here = f.focus == Focus::Models && i == f.cursor;
            let mark = if *on { "[x]" } else { "[ ]" };
            let pointer = if i == f.cursor { ">" } else { " " };
            lines.push(Line::styled(format!("{pointer} {mark} {name}"), focused(here)));
        }
        frame.render_widget(Paragraph::new(lines), models);

        let mut rows = vec![Line::raw("")];
        for field in Field::ALL {
            let here = f.focus == Focus::Field(field);
            rows.push(Line::from(vec![
                Span::raw(format!("  {:<24}", field.label())),
                Span::styled(format!("[{:<12}]", f.value(field)), focused(here)),
            ]));
        }
        frame.render_widget(Paragraph::new(rows), settings);
        let cells = match f.cells() {
            Some(n) => format!("  {n} cells (models × sweep points × parallel levels), run one after another"),
            None => "  cells: -".into(),
        };
        frame.render_widget(Paragraph::new(cells), summary);
        if let Some(e) = &f.error {
            frame.render_widget(Paragraph::new(format!("  {e}")).style(bold).wrap(Wrap { trim: false }), error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::sweep::{CellState, SweepProgress, SweepStarted};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let width = buf.area.width as usize;
        let symbols: Vec<&str> = buf.content.iter().map(|c| c.symbol()).collect();
        symbols.chunks(width).map(|line| line.concat()).collect::<Vec<_>>().join("\n")
    }

    fn draw(app: &App, now: Instant) -> String {
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| app.render(f, now)).unwrap();
        screen(&term)
    }

    fn press(app: &mut App, code: KeyCode) -> Option<Command> {
        app.on_key(KeyEvent::from(code))
    }

    fn defaults() -> Defaults {
        Defaults { ctx: 512, sweep_count: 1, parallel: vec![1, 2], runs: 1, warmup: 3, out_tokens: 16 }
    }

    #[test]
    fn setup_screen_at_80x24_lists_models_with_checkboxes_and_every_setting() {
        let now = Instant::now();
        let mut app = App::new("openai http://127.0.0.1:8091".into(), &defaults());
        app.form.set_models(vec!["smollm2:135m".into(), "qwen3:0.6b".into()]);
        press(&mut app, KeyCode::Char(' '));
        let s = draw(&app, now);
        for text in [
            "LLMBench sweep · openai http://127.0.0.1:8091",
            "> [x] smollm2:135m",
            "  [ ] qwen3:0.6b",
            "Context size (tokens)",
            "[512",
            "Sweep points",
            "Parallel list",
            "[1,2",
            "Runs per cell",
            "Warm-up requests",
            "Output tokens",
            "2 cells",
            "Enter start",
            "q quit",
        ] {
            assert!(s.contains(text), "{text:?} missing:\n{s}");
        }
        // A bad setting is shown on the form, naming it.
        press(&mut app, KeyCode::Tab);
        for _ in 0..4 {
            press(&mut app, KeyCode::Backspace);
        }
        press(&mut app, KeyCode::Char('8'));
        assert_eq!(press(&mut app, KeyCode::Enter), None);
        let s = draw(&app, now);
        assert!(s.contains("Context size (tokens):"), "{s}");
        assert_eq!(app.screen, Screen::Setup);
    }

    #[test]
    fn start_runs_the_live_table_stop_and_finish_show_the_csv_paths() {
        let now = Instant::now();
        let mut app = App::new("openai http://x".into(), &defaults());
        app.form.set_models(vec!["smollm2:135m".into()]);
        let Some(Command::Start(spec)) = press(&mut app, KeyCode::Enter) else { panic!("Enter starts") };
        assert_eq!(spec.parallel, [1, 2]);
        assert_eq!(app.screen, Screen::Running);
        app.apply(
            &Event::SweepStarted(SweepStarted {
                models: vec!["smollm2:135m".into()],
                ctx_points: vec![512],
                parallel: vec![1, 2],
                cells_total: 2,
            }),
            now,
            0.0,
        );
        let retrying = SweepProgress {
            model: "smollm2:135m".into(),
            ctx: 512,
            par: 1,
            cells_total: 2,
            state: CellState::Retrying,
            retry_delay_s: Some(15.0),
            detail: Some("attempt 2/5 failed: connection refused".into()),
            requests_total: 2,
            sweep_eta_s: Some(95.0),
            ..Default::default()
        };
        app.apply(&Event::SweepProgress(Box::new(retrying)), now, 1.0);
        let s = draw(&app, now);
        for text in ["Strm tok/s", "TTFT ms", "retrying", "pending", "cells 0/2", "ETA ~1m35s", "in 15s", "x/Esc stop"]
        {
            assert!(s.contains(text), "{text:?} missing:\n{s}");
        }
        assert_eq!(press(&mut app, KeyCode::Char('x')), Some(Command::Stop));
        assert!(draw(&app, now).contains("stopping"));
        app.finished(
            Err("sweep cancelled".into()),
            ["out/requests.csv".into(), "out/summary.csv".into(), "out/load_times.csv".into()],
        );
        let s = draw(&app, now);
        for text in [
            "sweep stopped: sweep cancelled",
            "out/requests.csv",
            "out/summary.csv",
            "out/load_times.csv",
            "n new sweep",
        ] {
            assert!(s.contains(text), "{text:?} missing:\n{s}");
        }
        assert_eq!(press(&mut app, KeyCode::Char('n')), None);
        assert_eq!(app.screen, Screen::Setup);
        assert_eq!(press(&mut app, KeyCode::Char('q')), Some(Command::Quit));
    }
}

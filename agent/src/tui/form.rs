//! The set-up form of the terminal app: models with checkboxes and the sweep settings, edited
//! with keys, turned into a [`SweepSpec`] by the same validation as `POST /jobs`.

use bench_shared::job::Spec;
use bench_shared::sweep::SweepSpec;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The numeric settings, in screen order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Ctx,
    SweepCount,
    Parallel,
    Runs,
    Warmup,
    OutTokens,
}

impl Field {
    pub const ALL: [Field; 6] =
        [Field::Ctx, Field::SweepCount, Field::Parallel, Field::Runs, Field::Warmup, Field::OutTokens];

    pub fn label(self) -> &'static str {
        match self {
            Field::Ctx => "Context size (tokens)",
            Field::SweepCount => "Sweep points",
            Field::Parallel => "Parallel list",
            Field::Runs => "Runs per cell",
            Field::Warmup => "Warm-up requests",
            Field::OutTokens => "Output tokens",
        }
    }

    /// The job field it fills (named in validation errors).
    fn key(self) -> &'static str {
        match self {
            Field::Ctx => "ctx",
            Field::SweepCount => "sweep_count",
            Field::Parallel => "parallel",
            Field::Runs => "runs",
            Field::Warmup => "warmup",
            Field::OutTokens => "out_tokens",
        }
    }

    /// Characters a user may type into it.
    fn accepts(self, c: char) -> bool {
        c.is_ascii_digit() || (self == Field::Parallel && (c == ',' || c == ' '))
    }
}

/// Where the keyboard focus is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Models,
    Field(Field),
}

/// What a key asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum FormAction {
    None,
    Start(Box<SweepSpec>),
    Quit,
    ReloadModels,
}

/// The initial values of the settings.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub ctx: u32,
    pub sweep_count: u32,
    pub parallel: Vec<u32>,
    pub runs: u32,
    pub warmup: u32,
    pub out_tokens: u32,
}

#[derive(Debug, Clone)]
pub struct Form {
    /// Models served by the engine, with their checkbox.
    pub models: Vec<(String, bool)>,
    /// Why the model list is empty (engine unreachable, …).
    pub models_error: Option<String>,
    pub cursor: usize,
    pub focus: Focus,
    values: [String; 6],
    /// The last validation error, naming the setting.
    pub error: Option<String>,
}

impl Form {
    pub fn new(d: &Defaults) -> Self {
        let parallel: Vec<String> = d.parallel.iter().map(u32::to_string).collect();
        Form {
            models: Vec::new(),
            models_error: None,
            cursor: 0,
            focus: Focus::Models,
            values: [
                d.ctx.to_string(),
                d.sweep_count.to_string(),
                parallel.join(","),
                d.runs.to_string(),
                d.warmup.to_string(),
                d.out_tokens.to_string(),
            ],
            error: None,
        }
    }

    /// Replaces the model list, keeping the checks of models still served (the only model is
    /// checked for you).
    pub fn set_models(&mut self, names: Vec<String>) {
        let checked: Vec<String> = self.checked_models();
        let only = names.len() == 1;
        self.models = names.into_iter().map(|n| (n.clone(), only || checked.contains(&n))).collect();
        self.cursor = self.cursor.min(self.models.len().saturating_sub(1));
        self.models_error = None;
    }

    pub fn checked_models(&self) -> Vec<String> {
        self.models.iter().filter(|(_, on)| *on).map(|(n, _)| n.clone()).collect()
    }

    pub fn value(&self, f: Field) -> &str {
        &self.values[Self::index(f)]
    }

    fn index(f: Field) -> usize {
        Field::ALL.iter().position(|x| *x == f).unwrap_or(0)
    }

    fn value_mut(&mut self, f: Field) -> &mut String {
        &mut self.values[Self::index(f)]
    }

    /// Every stop of the focus ring, in order.
    fn ring() -> Vec<Focus> {
        std::iter::once(Focus::Models).chain(Field::ALL.iter().map(|f| Focus::Field(*f))).collect()
    }

    fn move_focus(&mut self, forward: bool) {
        let ring = Self::ring();
        let i = ring.iter().position(|f| *f == self.focus).unwrap_or(0);
        let n = ring.len();
        self.focus = ring[if forward { (i + 1) % n } else { (i + n - 1) % n }];
    }

    /// Applies a key press.
    pub fn on_key(&mut self, key: KeyEvent) -> FormAction {
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return FormAction::Quit,
            KeyCode::Esc | KeyCode::Char('q') => return FormAction::Quit,
            KeyCode::Enter | KeyCode::Char('s') => return self.start(),
            KeyCode::Char('r') => return FormAction::ReloadModels,
            KeyCode::Tab => self.move_focus(true),
            KeyCode::BackTab => self.move_focus(false),
            KeyCode::Down => match self.focus {
                Focus::Models if self.cursor + 1 < self.models.len() => self.cursor += 1,
                _ => self.move_focus(true),
            },
            KeyCode::Up => match self.focus {
                Focus::Models if self.cursor > 0 => self.cursor -= 1,
                Focus::Models => {}
                _ => self.move_focus(false),
            },
            KeyCode::Char(' ') if self.focus == Focus::Models => {
                if let Some(m) = self.models.get_mut(self.cursor) {
                    m.1 = !m.1;
                }
            }
            KeyCode::Char('a') if self.focus == Focus::Models => {
                let all = self.models.iter().all(|(_, on)| *on);
                self.models.iter_mut().for_each(|m| m.1 = !all);
            }
            KeyCode::Backspace => {
                if let Focus::Field(f) = self.focus {
                    self.value_mut(f).pop();
                }
            }
            KeyCode::Char(c) => {
                if let Focus::Field(f) = self.focus
                    && f.accepts(c)
                    && self.value(f).len() < 32
                {
                    self.value_mut(f).push(c);
                }
            }
            _ => {}
        }
        FormAction::None
    }

    /// Number of cells the current settings give (for the summary line), if they parse.
    pub fn cells(&self) -> Option<usize> {
        let points: usize = self.value(Field::SweepCount).parse().ok()?;
        let pars = self.parallel().ok()?.len();
        Some(self.checked_models().len() * points * pars)
    }

    fn parallel(&self) -> Result<Vec<u32>, String> {
        self.value(Field::Parallel)
            .split([',', ' '])
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<u32>()
                    .map_err(|_| format!("{} must be a comma-separated list of integers", Field::Parallel.label()))
            })
            .collect()
    }

    fn number(&self, f: Field) -> Result<u32, String> {
        self.value(f).parse::<u32>().map_err(|_| format!("{}: enter a whole number", f.label()))
    }

    /// The validated spec, or the error (also kept in `error` for the screen).
    pub fn spec(&self) -> Result<SweepSpec, String> {
        let models = self.checked_models();
        if models.is_empty() {
            return Err("pick at least one model (Space toggles the one under the cursor)".into());
        }
        let mut spec = SweepSpec::new(models, self.number(Field::Ctx)?);
        spec.parallel = self.parallel()?;
        spec.sweep_count = self.number(Field::SweepCount)?;
        spec.runs = self.number(Field::Runs)?;
        spec.warmup = self.number(Field::Warmup)?;
        spec.out_tokens = self.number(Field::OutTokens)?;
        match spec.validate(0) {
            Ok(()) => Ok(spec),
            Err(e) => {
                let label = Field::ALL.iter().find(|f| f.key() == e.field).map(|f| f.label()).unwrap_or(&e.field);
                Err(format!("{label}: {}", e.message))
            }
        }
    }

    fn start(&mut self) -> FormAction {
        match self.spec() {
            Ok(spec) => {
                self.error = None;
                FormAction::Start(Box::new(spec))
            }
            Err(e) => {
                self.error = Some(e);
                FormAction::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::from(code)
    }

    fn defaults() -> Defaults {
        Defaults { ctx: 4096, sweep_count: 8, parallel: vec![1], runs: 3, warmup: 3, out_tokens: 256 }
    }

    fn type_into(form: &mut Form, text: &str) {
        for _ in 0..10 {
            form.on_key(key(KeyCode::Backspace));
        }
        for c in text.chars() {
            form.on_key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn keys_pick_models_and_edit_settings_into_a_validated_spec() {
        let mut form = Form::new(&defaults());
        form.set_models(vec!["a".into(), "b".into(), "c".into()]);
        assert!(form.checked_models().is_empty(), "several models: none checked until picked");
        assert_eq!(form.on_key(key(KeyCode::Enter)), FormAction::None);
        assert!(form.error.as_deref().unwrap().contains("pick at least one model"));
        form.on_key(key(KeyCode::Down));
        form.on_key(key(KeyCode::Char(' ')));
        form.on_key(key(KeyCode::Down));
        form.on_key(key(KeyCode::Char(' ')));
        assert_eq!(form.checked_models(), ["b", "c"]);
        form.on_key(key(KeyCode::Tab));
        assert_eq!(form.focus, Focus::Field(Field::Ctx));
        type_into(&mut form, "1024");
        form.on_key(key(KeyCode::Tab));
        type_into(&mut form, "2");
        form.on_key(key(KeyCode::Tab));
        type_into(&mut form, "1,2x");
        assert_eq!(form.value(Field::Parallel), "1,2", "letters are not typed into numbers");
        form.on_key(key(KeyCode::Tab));
        type_into(&mut form, "1");
        assert_eq!(form.cells(), Some(2 * 2 * 2));
        match form.on_key(key(KeyCode::Char('s'))) {
            FormAction::Start(spec) => {
                assert_eq!(spec.models, ["b", "c"]);
                assert_eq!((spec.ctx, spec.sweep_count, spec.runs, spec.warmup, spec.out_tokens), (1024, 2, 1, 3, 256));
                assert_eq!(spec.parallel, [1, 2]);
            }
            other => panic!("want Start, got {other:?}"),
        }
    }

    #[test]
    fn invalid_settings_name_the_setting_and_its_range() {
        let mut form = Form::new(&defaults());
        form.set_models(vec!["only".into()]);
        assert_eq!(form.checked_models(), ["only"], "a single served model is checked for you");
        form.on_key(key(KeyCode::Tab));
        type_into(&mut form, "8");
        assert_eq!(form.on_key(key(KeyCode::Enter)), FormAction::None);
        let err = form.error.clone().unwrap();
        assert!(err.starts_with("Context size (tokens):"), "{err}");
        type_into(&mut form, "");
        assert_eq!(form.on_key(key(KeyCode::Enter)), FormAction::None);
        assert!(form.error.clone().unwrap().contains("Context size (tokens): enter a whole number"));
        assert_eq!(form.on_key(key(KeyCode::Char('q'))), FormAction::Quit);
    }
}

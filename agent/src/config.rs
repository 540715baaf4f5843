//! `agent.yaml`: typed settings, environment overrides, validation.
//!
//! Order of precedence (last wins): the file, then environment variables (`AGENT_HOST`,
//! `AGENT_PORT`, `OLLAMA_HOST`, `OLLAMA_PORT`, `BENCH_STREAM_FLUSH_CHARS`,
//! `BENCH_STREAM_FLUSH_SECONDS`), then the `--host/--port` flags ([`AgentConfig::override_bind`]).
//! Unknown keys are an error naming the key and its line: a typo must never silently become a
//! default.

use std::path::{Path, PathBuf};

use bench_shared::engine::EngineKind;
use serde::Deserialize;

use bench_shared::hardware::HardwareOverrides;

use crate::engine::EngineSettings;
use crate::hardware::sampler::SamplerConfig;
use bench_server::tls::TlsFiles;

/// The agent's validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub machine_id: String,
    /// Human-readable name (defaults to `machine_id`).
    pub label: String,
    pub bind_host: String,
    pub bind_port: u16,
    /// The engine this agent drives (from `engine:` or the seed key `ollama_base_url`).
    pub engine: EngineSettings,
    /// Models to advertise; empty means "whatever the engine lists".
    pub llm_models: Vec<String>,
    /// Whisper models to advertise, of those the speech engine serves; empty = all of them.
    pub whisper_models: Vec<String>,
    /// Image checkpoints to advertise, of those the image engine has; empty = all of them.
    pub sdxl_profiles: Vec<String>,
    /// The image server (`image_generate` jobs); none = no image jobs.
    pub image_engine: Option<crate::workload::config::ImageEngineSettings>,
    /// The speech server (`transcribe` jobs); none = no transcription jobs.
    pub speech_engine: Option<crate::workload::config::SpeechEngineSettings>,
    /// Bearer token for the agent's own API (`/health` stays open). Bound beyond loopback
    /// without one, the agent generates one on first start (see [`AgentConfig::token_file`]).
    pub auth_token: Option<String>,
    /// Serve beyond loopback without any token (`--insecure-no-auth`), with a loud warning.
    pub insecure_no_auth: bool,
    /// Most jobs waiting behind the running one; beyond that `POST /jobs` answers 429.
    pub queue_limit: usize,
    /// Where sweep CSVs and the calibration cache go.
    pub results_dir: PathBuf,
    /// `llm_token` events are flushed once they hold this many characters…
    pub stream_flush_chars: usize,
    /// …or this long after their first piece of text arrived, or at a newline.
    pub stream_flush_seconds: f64,
    /// Browser origins (besides the agent's own) allowed to open `/ws`.
    pub allowed_origins: Vec<String>,
    /// When not empty, the only `Host` names accepted (DNS-rebinding defence; loopback always passes).
    pub allowed_hosts: Vec<String>,
    /// Most HTTP connections open at once; beyond, a connection is answered 503 and closed.
    pub max_connections: usize,
    /// A connection whose request headers do not arrive within this is closed.
    pub header_read_timeout_s: f64,
    /// Most `/ws` subscribers at once; beyond, the upgrade is answered 503.
    pub ws_max_subscribers: usize,
    /// Live telemetry: `runtime_sampler: {enabled, interval_s, buffer_len}`.
    pub runtime_sampler: SamplerConfig,
    /// What cannot be probed, written by hand (marked as overridden in the fingerprint).
    pub hardware_overrides: HardwareOverrides,
    /// Serve `https://` with this certificate and key; plain HTTP when absent.
    pub tls: Option<TlsFiles>,
}

/// Default port of the agent's API.
pub const DEFAULT_PORT: u16 = 9001;

impl AgentConfig {
    /// Settings with every default, for `machine_id` and `engine` (tests and embedding).
    pub fn new(machine_id: impl Into<String>, engine: EngineSettings) -> Self {
        let machine_id = machine_id.into();
        AgentConfig {
            label: machine_id.clone(),
            machine_id,
            bind_host: "0.0.0.0".into(),
            bind_port: DEFAULT_PORT,
            engine,
            llm_models: Vec::new(),
            whisper_models: Vec::new(),
            sdxl_profiles: Vec::new(),
            image_engine: None,
            speech_engine: None,
            auth_token: None,
            insecure_no_auth: false,
            queue_limit: 16,
            results_dir: PathBuf::from("results"),
            stream_flush_chars: 64,
            stream_flush_seconds: 0.10,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: bench_server::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout_s: bench_server::DEFAULT_HEADER_READ_TIMEOUT_S,
            ws_max_subscribers: bench_server::ws::DEFAULT_WS_MAX_SUBSCRIBERS,
            runtime_sampler: SamplerConfig::default(),
            hardware_overrides: HardwareOverrides::default(),
            tls: None,
        }
    }

    /// Reads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let mut cfg = Self::from_yaml(&text, &path.display().to_string(), &|k| std::env::var(k).ok())?;
        if let (Some(tls), Some(dir)) = (&mut cfg.tls, path.parent()) {
            tls.resolve_relative_to(dir);
        }
        Ok(cfg)
    }

    /// Parses YAML text (named `origin` in errors), applies overrides from `env`, validates.
    pub fn from_yaml(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_norway::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_owned(), message: describe_yaml_error(&e) })?;
        let mut cfg = raw.resolve(origin)?;
        cfg.apply_env(env)?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Where the token generated on first start beyond loopback is kept: next to the config
    /// file, named after it (`config/agent.yaml` → `config/agent.token`).
    pub fn token_file(config_path: &Path) -> PathBuf {
        config_path.with_extension("token")
    }

    /// Applies the `--host/--port` flags (the last word on where to listen).
    pub fn override_bind(&mut self, host: Option<String>, port: Option<u16>) {
        if let Some(h) = host {
            self.bind_host = h;
        }
        if let Some(p) = port {
            self.bind_port = p;
        }
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |k: &str| env(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(h) = get("AGENT_HOST") {
            self.bind_host = h;
        }
        if let Some(p) = get("AGENT_PORT") {
            self.bind_port = parse_env("AGENT_PORT", &p, "a port number from 0 to 65535")?;
        }
        if let Some(n) = get("BENCH_STREAM_FLUSH_CHARS") {
            self.stream_flush_chars = parse_env("BENCH_STREAM_FLUSH_CHARS", &n, "a positive integer")?;
        }
        if let Some(s) = get("BENCH_STREAM_FLUSH_SECONDS") {
            self.stream_flush_seconds = parse_env("BENCH_STREAM_FLUSH_SECONDS", &s, "a positive number of seconds")?;
        }
        if self.engine.kind == EngineKind::Ollama {
            let host = get("OLLAMA_HOST");
            let port = get("OLLAMA_PORT");
            if host.is_some() || port.is_some() {
                self.engine.base_url = rewrite_ollama_url(&self.engine.base_url, host.as_deref(), port.as_deref())?;
            }
        }
        Ok(())
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, message: String| ConfigError::Invalid { path: origin.to_owned(), key: key.to_owned(), message };
        if self.machine_id.trim().is_empty() {
            return Err(invalid("machine_id", "must not be empty".into()));
        }
        if self.insecure_no_auth && self.auth_token.is_some() {
            return Err(invalid(
                "insecure_no_auth",
                "is true while auth_token is set: remove one (a token, or no authentication at all)".into(),
            ));
        }
        if self.queue_limit == 0 {
            return Err(invalid("queue_limit", "must be at least 1".into()));
        }
        if self.stream_flush_chars == 0 {
            return Err(invalid("stream_flush_chars", "must be at least 1 (env BENCH_STREAM_FLUSH_CHARS)".into()));
        }
        if !(self.stream_flush_seconds.is_finite() && self.stream_flush_seconds > 0.0) {
            return Err(invalid(
                "stream_flush_seconds",
                format!("must be a positive number of seconds, got {}", self.stream_flush_seconds),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".into()));
        }
        if self.ws_max_subscribers == 0 {
            return Err(invalid("ws_max_subscribers", "must be at least 1".into()));
        }
        if !(self.header_read_timeout_s.is_finite() && self.header_read_timeout_s > 0.0) {
            return Err(invalid("header_read_timeout_s", "must be a positive number of seconds".into()));
        }
        if let Err((key, message)) = self.runtime_sampler.check() {
            return Err(invalid(key, message));
        }
        if let Some(Err((key, message))) = self.image_engine.as_ref().map(|e| e.check()) {
            return Err(invalid(key, message));
        }
        if let Some(Err((key, message))) = self.speech_engine.as_ref().map(|e| e.check()) {
            return Err(invalid(key, message));
        }
        let e = &self.engine;
        if !e.kind.is_llm() {
            return Err(invalid(
                "engine.kind",
                format!(
                    "must be ollama, openai or mock (an LLM engine), got {}; image and speech servers go under image_engine / speech_engine",
                    e.kind
                ),
            ));
        }
        for (key, value) in [
            ("engine.request_timeout_s", e.request_timeout_s),
            ("engine.connect_timeout_s", e.connect_timeout_s),
            ("engine.first_token_timeout_s", e.first_token_timeout_s),
            ("engine.idle_timeout_s", e.idle_timeout_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(key, format!("must be a positive number of seconds, got {value}")));
            }
        }
        if e.kind != EngineKind::Mock {
            match reqwest::Url::parse(&e.base_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(invalid(
                        "engine.base_url",
                        format!("must be an http(s) URL such as http://127.0.0.1:11434, got {:?}", e.base_url),
                    ));
                }
            }
        }
        if e.kind == EngineKind::Mock || e.fallback == crate::engine::Fallback::Mock {
            let m = &e.mock;
            let valid = m.tokens_per_s.is_finite() && m.tokens_per_s > 0.0 && m.ttft_ms.is_finite() && m.ttft_ms >= 0.0;
            if !valid {
                return Err(invalid("engine.mock", "needs ttft_ms >= 0 and tokens_per_s > 0".into()));
            }
            if m.models.is_empty() {
                return Err(invalid("engine.mock.models", "must list at least one model name".into()));
            }
        }
        Ok(())
    }
}

/// What went wrong reading agent.yaml. Every message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid { path: String, key: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// The file as written: every key optional except `machine_id`, unknown keys rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    machine_id: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    bind_host: Option<String>,
    #[serde(default)]
    bind_port: Option<u16>,
    #[serde(default)]
    ollama_base_url: Option<String>,
    #[serde(default)]
    engine: Option<EngineSettings>,
    #[serde(default)]
    llm_models: Vec<String>,
    #[serde(default)]
    whisper_models: Vec<String>,
    #[serde(default)]
    sdxl_profiles: Vec<String>,
    #[serde(default)]
    image_engine: Option<crate::workload::config::ImageEngineSettings>,
    #[serde(default)]
    speech_engine: Option<crate::workload::config::SpeechEngineSettings>,
    #[serde(default)]
    auth_token: Option<String>,
    #[serde(default)]
    insecure_no_auth: bool,
    #[serde(default)]
    queue_limit: Option<usize>,
    #[serde(default)]
    results_dir: Option<PathBuf>,
    #[serde(default)]
    stream_flush_chars: Option<usize>,
    #[serde(default)]
    stream_flush_seconds: Option<f64>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    header_read_timeout_s: Option<f64>,
    #[serde(default)]
    ws_max_subscribers: Option<usize>,
    #[serde(default)]
    runtime_sampler: Option<SamplerConfig>,
    #[serde(default)]
    hardware_overrides: Option<HardwareOverrides>,
    tls: Option<TlsFiles>,
}

impl RawConfig {
    fn resolve(self, origin: &str) -> Result<AgentConfig, ConfigError> {
        let engine = match (self.engine, self.ollama_base_url) {
            (Some(e), None) => e,
            (None, Some(url)) => EngineSettings {
                kind: EngineKind::Ollama,
                base_url: url,
                api_key: None,
                fallback: Default::default(),
                mock: Default::default(),
                ..EngineSettings::defaults(EngineKind::Ollama)
            },
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    path: origin.to_owned(),
                    key: "engine".into(),
                    message: "give either `engine:` or the seed key `ollama_base_url`, not both".into(),
                });
            }
            (None, None) => {
                return Err(ConfigError::Invalid {
                    path: origin.to_owned(),
                    key: "engine".into(),
                    message: "is missing: add an `engine:` block ({kind: ollama|openai|mock, base_url}) \
                              or the seed key `ollama_base_url`"
                        .into(),
                });
            }
        };
        let mut cfg = AgentConfig::new(self.machine_id, engine);
        if let Some(l) = self.label.filter(|l| !l.trim().is_empty()) {
            cfg.label = l;
        }
        let d = AgentConfig::new("", cfg.engine.clone());
        cfg.bind_host = self.bind_host.unwrap_or(d.bind_host);
        cfg.bind_port = self.bind_port.unwrap_or(d.bind_port);
        cfg.llm_models = self.llm_models;
        cfg.whisper_models = self.whisper_models;
        cfg.sdxl_profiles = self.sdxl_profiles;
        cfg.image_engine = self.image_engine;
        cfg.speech_engine = self.speech_engine;
        cfg.auth_token = self.auth_token.filter(|t| !t.is_empty());
        cfg.insecure_no_auth = self.insecure_no_auth;
        cfg.queue_limit = self.queue_limit.unwrap_or(d.queue_limit);
        cfg.results_dir = self.results_dir.unwrap_or(d.results_dir);
        cfg.stream_flush_chars = self.stream_flush_chars.unwrap_or(d.stream_flush_chars);
        cfg.stream_flush_seconds = self.stream_flush_seconds.unwrap_or(d.stream_flush_seconds);
        cfg.allowed_origins = self.allowed_origins;
        cfg.allowed_hosts = self.allowed_hosts;
        cfg.max_connections = self.max_connections.unwrap_or(d.max_connections);
        cfg.header_read_timeout_s = self.header_read_timeout_s.unwrap_or(d.header_read_timeout_s);
        cfg.ws_max_subscribers = self.ws_max_subscribers.unwrap_or(d.ws_max_subscribers);
        cfg.runtime_sampler = self.runtime_sampler.unwrap_or_default();
        cfg.hardware_overrides = self.hardware_overrides.unwrap_or_default();
        cfg.tls = self.tls;
        Ok(cfg)
    }
}

/// serde_norway's message already names the key and says "at line L column C"; keep it whole.
fn describe_yaml_error(e: &serde_norway::Error) -> String {
    let msg = e.to_string();
    match e.location() {
        Some(loc) if !msg.contains("line") => format!("{msg} (line {}, column {})", loc.line(), loc.column()),
        _ => msg,
    }
}

fn parse_env<T: std::str::FromStr>(var: &str, value: &str, expected: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::Env { var: var.to_owned(), message: format!("must be {expected}, got {value:?}") })
}

/// Rewrites the host and/or port of the Ollama URL. `OLLAMA_HOST` may be `host`, `host:port` or
/// a full `http://host:port` (Ollama's own convention for that variable).
fn rewrite_ollama_url(base: &str, host: Option<&str>, port: Option<&str>) -> Result<String, ConfigError> {
    let env_err = |var: &str, message: String| ConfigError::Env { var: var.to_owned(), message };
    let mut url = reqwest::Url::parse(base)
        .map_err(|e| env_err("OLLAMA_HOST", format!("cannot apply to ollama_base_url {base:?}: {e}")))?;
    if let Some(h) = host {
        let with_scheme = if h.contains("://") { h.to_owned() } else { format!("{}://{h}", url.scheme()) };
        let given = reqwest::Url::parse(&with_scheme)
            .ok()
            .filter(|u| u.host_str().is_some())
            .ok_or_else(|| env_err("OLLAMA_HOST", format!("must be a host, host:port or URL, got {h:?}")))?;
        if h.contains("://") {
            // A full URL replaces scheme, host and port (no port: the scheme's default, as Ollama does).
            let path = url.path().to_owned();
            url = given;
            url.set_path(&path);
        } else {
            url.set_host(given.host_str()).map_err(|e| env_err("OLLAMA_HOST", e.to_string()))?;
            if given.port().is_some() {
                let _ = url.set_port(given.port());
            }
        }
    }
    if let Some(p) = port {
        let p: u16 = parse_env("OLLAMA_PORT", p, "a port number from 0 to 65535")?;
        url.set_port(Some(p)).map_err(|_| env_err("OLLAMA_PORT", "the URL cannot carry a port".into()))?;
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_agent_yaml_key_is_in_docs_configuration_md() {
        use bench_shared::reference::{config_keys, read_doc, undocumented};
        let keys = config_keys(&|text| AgentConfig::from_yaml(text, "probe", &|_| None).err().map(|e| e.to_string()));
        for nested in ["engine.mock.ttft_ms", "hardware_overrides.gpus[].name", "tls.cert_file", "image_engine.kind"] {
            assert!(keys.iter().any(|k| k == nested), "the probe reaches nested sections: {nested} not in {keys:?}");
        }
        let doc = read_doc(env!("CARGO_MANIFEST_DIR"), "configuration.md");
        let missing = undocumented(&doc, keys.iter().map(String::as_str));
        assert!(missing.is_empty(), "docs/configuration.md lacks these agent.yaml keys: {missing:?}");
    }

    use super::*;
    use crate::engine::Fallback;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::from_yaml(text, "agent.yaml", &no_env)
    }

    #[test]
    fn seed_config_means_ollama_with_defaults() {
        let cfg = parse("machine_id: m1\nollama_base_url: http://127.0.0.1:11434\n").unwrap();
        assert_eq!(cfg.label, "m1");
        assert_eq!((cfg.bind_host.as_str(), cfg.bind_port), ("0.0.0.0", 9001));
        assert_eq!(cfg.engine.kind, EngineKind::Ollama);
        assert_eq!(cfg.engine.base_url, "http://127.0.0.1:11434");
        assert_eq!(cfg.engine.fallback, Fallback::None);
        assert_eq!((cfg.queue_limit, cfg.stream_flush_chars, cfg.stream_flush_seconds), (16, 64, 0.10));
        assert_eq!(cfg.auth_token, None);
    }

    #[test]
    fn engine_block_with_every_key() {
        let cfg = parse(
            "machine_id: m\nlabel: Big box\nbind_host: 127.0.0.1\nbind_port: 9100\n\
             engine:\n  kind: openai\n  base_url: http://127.0.0.1:8091\n  api_key: sk-1\n  fallback: mock\n  \
             request_timeout_s: 30\n  mock: {ttft_ms: 5, tokens_per_s: 100, models: [a]}\n\
             llm_models: [x]\nauth_token: secret\nqueue_limit: 2\nresults_dir: /tmp/r\n\
             stream_flush_chars: 8\nstream_flush_seconds: 0.5\n",
        )
        .unwrap();
        assert_eq!(cfg.label, "Big box");
        assert_eq!(cfg.engine.kind, EngineKind::Openai);
        assert_eq!(cfg.engine.api_key.as_deref(), Some("sk-1"));
        assert_eq!(cfg.engine.fallback, Fallback::Mock);
        assert_eq!(cfg.engine.mock.models, vec!["a"]);
        assert_eq!(cfg.llm_models, vec!["x"]);
        assert_eq!(cfg.auth_token.as_deref(), Some("secret"));
        assert_eq!((cfg.queue_limit, cfg.stream_flush_chars, cfg.stream_flush_seconds), (2, 8, 0.5));
        assert_eq!(cfg.results_dir, PathBuf::from("/tmp/r"));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("machine_id: m\nollama_base_url: http://h:1\nqueue_limt: 3\n").unwrap_err().to_string();
        assert!(err.contains("agent.yaml") && err.contains("queue_limt") && err.contains("line 3"), "{err}");
        let err = parse("machine_id: m\nengine: {kind: mock, colour: red}\n").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn engine_and_seed_key_are_exclusive_and_one_is_required() {
        let err = parse("machine_id: m\nollama_base_url: http://h:1\nengine: {kind: mock}\n").unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "engine"), "{err}");
        let err = parse("machine_id: m\n").unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { key, .. } if key == "engine"), "{err}");
        assert!(err.to_string().contains("ollama_base_url"), "{err}");
        let err = parse("label: x\nengine: {kind: mock}\n").unwrap_err().to_string();
        assert!(err.contains("machine_id"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let key_of = |t: &str| match parse(t).unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        };
        assert_eq!(key_of("machine_id: m\nengine: {kind: openai, base_url: 'not a url'}\n"), "engine.base_url");
        assert_eq!(key_of("machine_id: m\nengine: {kind: mock}\nqueue_limit: 0\n"), "queue_limit");
        assert_eq!(key_of("machine_id: m\nengine: {kind: mock}\nstream_flush_seconds: 0\n"), "stream_flush_seconds");
        assert_eq!(key_of("machine_id: ''\nengine: {kind: mock}\n"), "machine_id");
        assert_eq!(
            key_of("machine_id: m\nengine: {kind: mock}\nruntime_sampler: {interval_s: 0.1}\n"),
            "runtime_sampler.interval_s"
        );
        let err = parse("machine_id: m\nengine: {kind: mock}\nruntime_sampler: {interval: 1}\n").unwrap_err();
        assert!(err.to_string().contains("interval"), "{err}");
        let err = parse("machine_id: m\nengine: {kind: mock}\nbind_port: 70000\n").unwrap_err().to_string();
        assert!(err.contains("bind_port") || err.contains("line 3"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let env = |k: &str| match k {
            "AGENT_HOST" => Some("127.0.0.1".to_owned()),
            "AGENT_PORT" => Some("9555".to_owned()),
            "OLLAMA_HOST" => Some("gpu-box".to_owned()),
            "OLLAMA_PORT" => Some("11500".to_owned()),
            "BENCH_STREAM_FLUSH_CHARS" => Some("16".to_owned()),
            "BENCH_STREAM_FLUSH_SECONDS" => Some("0.25".to_owned()),
            _ => None,
        };
        let mut cfg =
            AgentConfig::from_yaml("machine_id: m\nollama_base_url: http://127.0.0.1:11434\n", "f", &env).unwrap();
        assert_eq!((cfg.bind_host.as_str(), cfg.bind_port), ("127.0.0.1", 9555));
        assert_eq!(cfg.engine.base_url, "http://gpu-box:11500");
        assert_eq!((cfg.stream_flush_chars, cfg.stream_flush_seconds), (16, 0.25));
        cfg.override_bind(Some("0.0.0.0".into()), Some(0));
        assert_eq!((cfg.bind_host.as_str(), cfg.bind_port), ("0.0.0.0", 0));
    }

    #[test]
    fn ollama_env_accepts_ollama_style_values_and_ignores_other_engines() {
        assert_eq!(
            rewrite_ollama_url("http://127.0.0.1:11434", Some("10.0.0.5:9999"), None).unwrap(),
            "http://10.0.0.5:9999"
        );
        assert_eq!(
            rewrite_ollama_url("http://127.0.0.1:11434", Some("https://o.example"), None).unwrap(),
            "https://o.example"
        );
        assert_eq!(rewrite_ollama_url("http://127.0.0.1:11434", None, Some("1")).unwrap(), "http://127.0.0.1:1");
        let env = |k: &str| (k == "OLLAMA_HOST").then(|| "elsewhere".to_owned());
        let cfg = AgentConfig::from_yaml("machine_id: m\nengine: {kind: openai, base_url: 'http://a:1'}\n", "f", &env)
            .unwrap();
        assert_eq!(cfg.engine.base_url, "http://a:1");
        let bad = |k: &str| (k == "AGENT_PORT").then(|| "ninety".to_owned());
        let err = AgentConfig::from_yaml("machine_id: m\nengine: {kind: mock}\n", "f", &bad).unwrap_err().to_string();
        assert!(err.contains("AGENT_PORT") && err.contains("ninety"), "{err}");
    }

    #[test]
    fn shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.example.yaml");
        let cfg = AgentConfig::from_yaml(&std::fs::read_to_string(&path).unwrap(), "agent.example.yaml", &no_env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!cfg.machine_id.is_empty());
        assert_eq!(cfg.runtime_sampler, SamplerConfig { enabled: true, interval_s: 1.0, buffer_len: 120 });
        assert_eq!((cfg.image_engine, cfg.speech_engine), (None, None));
    }

    #[test]
    fn image_and_speech_engines() {
        use bench_shared::workload::image::ImageEngineKind;
        let cfg = parse(
            "machine_id: m\nollama_base_url: http://127.0.0.1:11434\n\
             image_engine: {kind: comfyui, base_url: 'http://127.0.0.1:8188', timeout_s: 30}\n\
             speech_engine: {kind: openai, base_url: 'http://127.0.0.1:8092', models: [whisper-tiny.en]}\n",
        )
        .unwrap();
        let img = cfg.image_engine.unwrap();
        assert_eq!((img.kind, img.timeout_s, img.preview_every_steps), (ImageEngineKind::Comfyui, 30.0, 2));
        assert_eq!(cfg.speech_engine.unwrap().models, ["whisper-tiny.en"]);
        let bad = |extra: &str| {
            parse(&format!("machine_id: m\nollama_base_url: http://127.0.0.1:11434\n{extra}")).unwrap_err().to_string()
        };
        assert!(bad("image_engine: {kind: comfyui, base_url: 'ftp://x'}").contains("image_engine.base_url"));
        assert!(bad("image_engine: {kind: dalle, base_url: 'http://x'}").contains("dalle"));
        assert!(
            bad("speech_engine: {kind: openai, base_url: 'http://x', request_timeout_s: 0}")
                .contains("speech_engine.request_timeout_s")
        );
        assert!(bad("speech_engine: {kind: openai, base_url: 'http://x', modles: []}").contains("modles"));
        let e = parse("machine_id: m\nengine: {kind: comfyui, base_url: 'http://x'}\n").unwrap_err().to_string();
        assert!(e.contains("engine.kind") && e.contains("image_engine"), "{e}");
    }
}

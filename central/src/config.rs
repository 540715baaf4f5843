//! `machines.yaml` and central's run settings.
//!
//! The file is parsed into typed structs with `deny_unknown_fields` (a typo is an error, never a
//! silently ignored setting), then checked as a whole: empty list, duplicate machine ids and bad
//! URLs are errors that name the key and the line, so a user can fix the file without guessing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bench_shared::tls::TlsError;
use serde::Deserialize;

/// The whole `machines.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachinesFile {
    pub machines: Vec<MachineConfig>,
    /// Central's own server settings (authentication, origins, limits); all optional.
    #[serde(default)]
    pub central: CentralConfig,
}

/// The `central:` block of `machines.yaml`: who may use central and how much it accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// When set, every `/api/*` route and `/api/ws` need `Authorization: Bearer <token>` or the
    /// session cookie of `/login`. The env `BENCH_CENTRAL_TOKEN` overrides it. Without it, a
    /// central listening beyond loopback generates a token on first start
    /// (`<results_dir>/central.token`) and requires that.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Serve beyond loopback without any token (`--insecure-no-auth`), with a loud warning.
    #[serde(default)]
    pub insecure_no_auth: bool,
    /// Browser origins (besides central's own) allowed to open `/api/ws`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// When not empty, the only `Host` names accepted (DNS-rebinding defence; loopback always passes).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Most HTTP connections open at once; beyond, 503 and close.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection whose request headers do not arrive within this is closed.
    #[serde(default = "default_header_read_timeout_s")]
    pub header_read_timeout_s: f64,
    /// Most browser WebSockets at once; beyond, the upgrade is answered 503.
    #[serde(default = "default_ws_max_subscribers")]
    pub ws_max_subscribers: usize,
}

fn default_max_connections() -> usize {
    bench_server::DEFAULT_MAX_CONNECTIONS
}

fn default_header_read_timeout_s() -> f64 {
    bench_server::DEFAULT_HEADER_READ_TIMEOUT_S
}

fn default_ws_max_subscribers() -> usize {
    bench_server::ws::DEFAULT_WS_MAX_SUBSCRIBERS
}

impl Default for CentralConfig {
    fn default() -> Self {
        CentralConfig {
            auth_token: None,
            insecure_no_auth: false,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: default_max_connections(),
            header_read_timeout_s: default_header_read_timeout_s(),
            ws_max_subscribers: default_ws_max_subscribers(),
        }
    }
}

/// The environment variable that sets (and overrides) `central.auth_token`.
pub const TOKEN_ENV: &str = "BENCH_CENTRAL_TOKEN";

impl CentralConfig {
    /// Applies `BENCH_CENTRAL_TOKEN` from `env` (a non-empty value wins over the file).
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(t) = env(TOKEN_ENV).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
            self.auth_token = Some(t);
        }
        self
    }

    /// The token, if authentication is on.
    pub fn token(&self) -> Option<&str> {
        self.auth_token.as_deref().filter(|t| !t.is_empty())
    }

    /// The limits of central's HTTP server.
    pub fn limits(&self) -> bench_server::Limits {
        bench_server::Limits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs_f64(self.header_read_timeout_s),
        }
    }
}

/// One agent central races.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Also used as a file-name prefix in run folders, hence the strict character set.
    pub machine_id: String,
    /// Display name; defaults to `machine_id`.
    #[serde(default)]
    pub label: Option<String>,
    /// `http(s)://host:port` of the agent's API.
    pub agent_base_url: String,
    #[serde(default)]
    pub notes: Option<String>,
    /// The agent's `auth_token`, sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
    /// For an `https://` agent whose certificate a private CA (or the agent itself) signed: the
    /// PEM CA certificate(s) central trusts for this agent, instead of the system's roots.
    /// Relative to the folder of machines.yaml.
    #[serde(default)]
    pub ca_cert_file: Option<PathBuf>,
    /// `native` (this project's bench-agent) or `original` (the original Python bench-race
    /// agent). Left out: detected from the agent's `/health`.
    #[serde(default)]
    pub protocol: Option<bench_shared::api::Protocol>,
    /// The TLS client set-up built from `ca_cert_file` when the file is loaded.
    #[serde(skip)]
    trust: AgentTrust,
}

/// A machine's TLS client configuration, when it has its own CA (compared by identity).
#[derive(Debug, Clone, Default)]
struct AgentTrust(Option<Arc<rustls::ClientConfig>>);

impl PartialEq for AgentTrust {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

impl MachineConfig {
    /// A machine with only its id and URL set (tests and embedding).
    pub fn new(machine_id: impl Into<String>, agent_base_url: impl Into<String>) -> Self {
        MachineConfig {
            machine_id: machine_id.into(),
            label: None,
            agent_base_url: agent_base_url.into(),
            notes: None,
            token: None,
            ca_cert_file: None,
            protocol: None,
            trust: AgentTrust::default(),
        }
    }

    /// Trusts the CA certificate(s) in `ca_cert_file` (PEM) for this agent's `https://` and
    /// `wss://` connections. Blocking file I/O.
    pub fn trust_ca_file(&mut self, ca_cert_file: PathBuf) -> Result<(), TlsError> {
        let config = bench_shared::tls::client_config_trusting(&ca_cert_file)?;
        self.trust = AgentTrust(Some(Arc::new(config)));
        self.ca_cert_file = Some(ca_cert_file);
        Ok(())
    }

    /// The TLS client configuration for this agent, when `ca_cert_file` is set.
    pub fn tls_client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.trust.0.clone()
    }

    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.machine_id)
    }

    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.agent_base_url.trim_end_matches('/')
    }

    /// The agent's event WebSocket URL (`ws://host:port/ws`).
    pub fn ws_url(&self) -> String {
        let base = self.base_url();
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_owned()
        };
        format!("{ws}/ws")
    }
}

/// Why `machines.yaml` was rejected. Every variant names the file, and where known the key and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: line {line}: {key}: {message}")]
    Invalid { path: PathBuf, line: usize, key: String, message: String },
}

impl MachinesFile {
    /// Reads and validates a `machines.yaml` file.
    pub fn load(path: &Path) -> Result<MachinesFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        MachinesFile::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<MachinesFile, ConfigError> {
        let mut file: MachinesFile = serde_norway::from_str(text).map_err(|e| {
            // serde_norway puts "at line L column C" in its message when it knows the location.
            let message = match e.location() {
                Some(loc) if !e.to_string().contains("line") => format!("line {}: {e}", loc.line()),
                _ => e.to_string(),
            };
            ConfigError::Parse { path: path.into(), message }
        })?;
        file.validate(text, path)?;
        file.load_trust(text, path)?;
        Ok(file)
    }

    /// Loads every machine's `ca_cert_file` (relative to the folder of `path`).
    fn load_trust(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let dir = path.parent().unwrap_or(Path::new(""));
        for (i, m) in self.machines.iter_mut().enumerate() {
            let Some(file) = m.ca_cert_file.clone() else { continue };
            let resolved = if file.is_absolute() { file.clone() } else { dir.join(&file) };
            if let Err(e) = m.trust_ca_file(resolved) {
                let line = key_line(text, "ca_cert_file", file.to_str(), 0).unwrap_or(0);
                return Err(ConfigError::Invalid {
                    path: path.into(),
                    line,
                    key: format!("machines[{i}].ca_cert_file"),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |line: usize, key: &str, message: String| ConfigError::Invalid {
            path: path.into(),
            line,
            key: key.into(),
            message,
        };
        let c = &self.central;
        let central_line = |key: &str| key_line(text, key, None, 0).unwrap_or(0);
        if c.auth_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(invalid(central_line("auth_token"), "central.auth_token", "must not be empty".into()));
        }
        if c.insecure_no_auth && c.auth_token.is_some() {
            return Err(invalid(
                central_line("insecure_no_auth"),
                "central.insecure_no_auth",
                "is true while central.auth_token is set: remove one (a token, or no authentication at all)".into(),
            ));
        }
        if c.max_connections == 0 {
            return Err(invalid(
                central_line("max_connections"),
                "central.max_connections",
                "must be at least 1".into(),
            ));
        }
        if c.ws_max_subscribers == 0 {
            let line = central_line("ws_max_subscribers");
            return Err(invalid(line, "central.ws_max_subscribers", "must be at least 1".into()));
        }
        if !(c.header_read_timeout_s.is_finite() && c.header_read_timeout_s > 0.0) {
            let line = central_line("header_read_timeout_s");
            return Err(invalid(line, "central.header_read_timeout_s", "must be a positive number of seconds".into()));
        }
        if self.machines.is_empty() {
            let line = key_line(text, "machines", None, 0).unwrap_or(1);
            return Err(invalid(line, "machines", "must list at least one machine".into()));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, m) in self.machines.iter().enumerate() {
            let key = format!("machines[{i}].machine_id");
            let id_line =
                || key_line(text, "machine_id", Some(&m.machine_id), count(&seen, &m.machine_id)).unwrap_or(0);
            if !valid_machine_id(&m.machine_id) {
                return Err(invalid(
                    id_line(),
                    &key,
                    format!("{:?} must be 1-64 characters of A-Z a-z 0-9 . _ -", m.machine_id),
                ));
            }
            if seen.contains(&m.machine_id.as_str()) {
                return Err(invalid(id_line(), &key, format!("duplicate machine id {:?}", m.machine_id)));
            }
            seen.push(&m.machine_id);
            if let Err(why) = check_url(&m.agent_base_url) {
                let line = key_line(text, "agent_base_url", Some(&m.agent_base_url), 0).unwrap_or(0);
                return Err(invalid(line, &format!("machines[{i}].agent_base_url"), why));
            }
        }
        Ok(())
    }
}

fn count(seen: &[&str], id: &str) -> usize {
    seen.iter().filter(|s| **s == id).count()
}

/// Machine ids are used in file names: ASCII letters, digits, `.`, `_`, `-`; no leading dot.
pub fn valid_machine_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_url(raw: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e}); expected http://host:port"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?} must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{raw:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    Ok(())
}

/// The 1-based line of the `nth` (0-based) occurrence of `key:` (with `value`, if given).
fn key_line(text: &str, key: &str, value: Option<&str>, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let l = line.trim_start().trim_start_matches("- ").trim_start();
            let Some(rest) = l.strip_prefix(key).and_then(|r| r.trim_start().strip_prefix(':')) else {
                return false;
            };
            match value {
                None => true,
                Some(v) => {
                    let r = rest.split(" #").next().unwrap_or("").trim();
                    r.trim_matches(|c| c == '"' || c == '\'') == v
                }
            }
        })
        .nth(nth)
        .map(|(i, _)| i + 1)
}

/// Timing knobs of runs and the fleet. Production uses [`Settings::default`]; tests shorten them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How far ahead of dispatch the common `start_at` lies, so every agent has the job first.
    pub start_delay: Duration,
    /// How often the fleet refreshes `/health` and `/capabilities`.
    pub health_interval: Duration,
    /// Time limit of one agent HTTP call (default: `bench_shared::timeouts::CENTRAL_AGENT_HTTP`).
    pub http_timeout: Duration,
    /// First reconnect delay of an agent WebSocket; doubles up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// With no event from a machine for this long, central probes its agent; a failed probe
    /// ends the machine as `error`.
    pub silence: Duration,
    /// Fixed part of a machine's run deadline (model load, queueing, slow start).
    pub deadline_base: Duration,
    /// Per generated token of the deadline (generous: 1 s per token, a 1 tok/s floor, since a
    /// big model on a CPU-only machine is slow but not broken; dead agents are caught by
    /// `silence` long before).
    pub deadline_per_token: Duration,
    /// Capacity of the browser broadcast; a client that falls this far behind is disconnected.
    pub browser_buffer: usize,
    /// How often central pings each agent and browser WebSocket; two unanswered pings drop it.
    /// 1 s: a silent agent is dropped within 2-3 s, and the probe of its job that follows
    /// (bounded by `http_timeout`) still ends the machine as `error` within 15 s. A false drop
    /// (a very busy agent) costs one reconnect and a backfill, nothing else.
    pub ping_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            start_delay: Duration::from_millis(1500),
            health_interval: Duration::from_secs(5),
            http_timeout: bench_shared::timeouts::CENTRAL_AGENT_HTTP,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            silence: Duration::from_secs(30),
            deadline_base: Duration::from_secs(300),
            deadline_per_token: Duration::from_secs(1),
            browser_buffer: 4096,
            ping_interval: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MachinesFile, ConfigError> {
        MachinesFile::parse(text, Path::new("machines.yaml"))
    }

    #[test]
    fn every_machines_yaml_key_is_in_docs_configuration_md() {
        use bench_shared::reference::{config_keys, read_doc, undocumented};
        let keys = config_keys(&|text| parse(text).err().map(|e| e.to_string()));
        for nested in ["machines[].agent_base_url", "machines[].protocol", "central.auth_token"] {
            assert!(keys.iter().any(|k| k == nested), "the probe reaches nested sections: {nested} not in {keys:?}");
        }
        let doc = read_doc(env!("CARGO_MANIFEST_DIR"), "configuration.md");
        let missing = undocumented(&doc, keys.iter().map(String::as_str));
        assert!(missing.is_empty(), "docs/configuration.md lacks these machines.yaml keys: {missing:?}");
    }

    #[test]
    fn shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/machines.example.yaml");
        let file = MachinesFile::load(&path).unwrap();
        assert!(!file.machines.is_empty());
        assert_eq!(file.machines[0].ws_url(), "ws://127.0.0.1:9001/ws");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("machines:\n  - machine_id: a\n    agent_base_url: http://h:1\n    lable: x\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("lable") && msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn duplicate_ids_name_the_second_line() {
        let text = "machines:\n  - machine_id: a\n    agent_base_url: http://h:1\n  - machine_id: \"a\"\n    agent_base_url: http://h:2\n";
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.contains("line 4") && msg.contains("machines[1].machine_id") && msg.contains("duplicate"), "{msg}");
    }

    #[test]
    fn central_block_and_env_token() {
        let f = parse("machines:\n  - machine_id: a\n    agent_base_url: http://h:1\ncentral:\n  auth_token: s\n  allowed_origins: [\"http://x:1\"]\n  ws_max_subscribers: 3\n").unwrap();
        assert_eq!(f.central.token(), Some("s"));
        assert_eq!((f.central.ws_max_subscribers, f.central.max_connections), (3, 1024));
        let env = |k: &str| (k == TOKEN_ENV).then(|| "from-env".to_owned());
        assert_eq!(f.central.clone().with_env(env).token(), Some("from-env"));
        assert_eq!(CentralConfig::default().with_env(|_| None).token(), None);
        let msg =
            parse("machines:\n  - machine_id: a\n    agent_base_url: http://h:1\ncentral:\n  ws_max_subscribers: 0\n")
                .unwrap_err()
                .to_string();
        assert!(msg.contains("central.ws_max_subscribers") && msg.contains("line 5"), "{msg}");
        let msg = parse("machines:\n  - machine_id: a\n    agent_base_url: http://h:1\ncentral:\n  auth_tokn: x\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("auth_tokn"), "{msg}");
    }

    #[test]
    fn bad_url_empty_list_and_bad_id() {
        let msg = parse("machines:\n  - machine_id: a\n    agent_base_url: ftp://h\n").unwrap_err().to_string();
        assert!(msg.contains("line 3") && msg.contains("agent_base_url"), "{msg}");
        let msg = parse("machines:\n  - machine_id: a\n    agent_base_url: not a url\n").unwrap_err().to_string();
        assert!(msg.contains("line 3") && msg.contains("not a URL"), "{msg}");
        let msg = parse("# c\nmachines: []\n").unwrap_err().to_string();
        assert!(msg.contains("line 2") && msg.contains("machines"), "{msg}");
        let msg = parse("machines:\n  - machine_id: ../x\n    agent_base_url: http://h:1\n").unwrap_err().to_string();
        assert!(msg.contains("line 2") && msg.contains("machine_id"), "{msg}");
        let msg = parse("machines:\n  - label: x\n    agent_base_url: http://h:1\n").unwrap_err().to_string();
        assert!(msg.contains("machine_id") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn ca_cert_file_is_loaded_relative_to_the_file_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.path().join("agent-ca.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "junk\n").unwrap();
        let yaml = |file: &str| {
            format!("machines:\n  - machine_id: a\n    agent_base_url: https://localhost:1\n    ca_cert_file: {file}\n")
        };
        let path = dir.path().join("machines.yaml");
        let file = MachinesFile::parse(&yaml("agent-ca.pem"), &path).unwrap();
        assert_eq!(file.machines[0].ca_cert_file.as_deref(), Some(dir.path().join("agent-ca.pem").as_path()));
        assert!(file.machines[0].tls_client_config().is_some());
        let msg = MachinesFile::parse(&yaml("junk.pem"), &path).unwrap_err().to_string();
        assert!(msg.contains("line 4: machines[0].ca_cert_file") && msg.contains("no PEM certificate"), "{msg}");
        let msg = MachinesFile::parse(&yaml("missing.pem"), &path).unwrap_err().to_string();
        assert!(msg.contains("machines[0].ca_cert_file") && msg.contains("cannot read"), "{msg}");
        assert!(
            parse("machines:\n  - machine_id: a\n    agent_base_url: http://h:1\n").unwrap().machines[0]
                .tls_client_config()
                .is_none()
        );
    }
}

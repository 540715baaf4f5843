//! The token a server requires: configured, or generated on first start when the server binds
//! beyond loopback (the way Jupyter does it), kept in a file only the user can read.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rand::Rng;

/// How a server decides who may use it, from its config and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPlan {
    /// A token from the config (or its environment variable).
    Configured,
    /// Beyond loopback with no token configured: the one in this file (generated if missing).
    TokenFile(PathBuf),
    /// Loopback only and no token: open, as on a developer machine.
    OpenLoopback,
    /// `--insecure-no-auth` / `insecure_no_auth: true` beyond loopback: open, with the warning.
    OpenInsecure,
}

impl AuthPlan {
    /// The plan for a server bound to `bound` with `configured` token and `insecure` opt-out;
    /// `token_file` is where a generated token lives.
    pub fn decide(configured: bool, insecure: bool, bound: IpAddr, token_file: PathBuf) -> AuthPlan {
        if configured {
            AuthPlan::Configured
        } else if bound.is_loopback() {
            AuthPlan::OpenLoopback
        } else if insecure {
            AuthPlan::OpenInsecure
        } else {
            AuthPlan::TokenFile(token_file)
        }
    }
}

/// The token a server ends up with at start-up, and what to tell its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The token to require (`None`: open).
    pub token: Option<String>,
    /// Printed once to the console (stderr), whatever the log filter: the ready login URL of a
    /// token generated now, or where the token file is; `None` for nothing to say.
    pub notice: Option<String>,
    /// A warning for the log (serving beyond loopback without a token).
    pub warning: Option<String>,
}

/// Carries out `plan` for `server` (e.g. `bench-central`) listening on `bound` over `scheme`:
/// reads or generates the token file, and words what the user must know. `configured` is the
/// token from the config; `hints` are extra lines for a new token (where else to put it).
/// Blocking file I/O: call at start-up.
pub fn resolve(
    plan: &AuthPlan,
    configured: Option<&str>,
    server: &str,
    scheme: &str,
    bound: SocketAddr,
    hints: &dyn Fn(&str) -> Vec<String>,
) -> io::Result<Resolved> {
    let resolved = match plan {
        AuthPlan::Configured => Resolved { token: configured.map(str::to_owned), notice: None, warning: None },
        AuthPlan::OpenLoopback => Resolved { token: None, notice: None, warning: None },
        AuthPlan::OpenInsecure => Resolved {
            token: None,
            notice: None,
            warning: Some(format!(
                "SECURITY: {server} listens on {bound} (reachable from other machines) with authentication turned \
                 off (--insecure-no-auth / insecure_no_auth: true): anyone who can reach this port can use it. \
                 Remove the opt-out to require a token, or bind to 127.0.0.1."
            )),
        },
        AuthPlan::TokenFile(path) => {
            let (token, new) = load_or_create(path)?;
            let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let notice = if new {
                let mut lines = vec![
                    format!(
                        "{server}: no token is configured and it listens on {bound} (reachable from other machines), \
                         so it generated one and requires it from every client, this machine included."
                    ),
                    format!("  token file: {}  (only you can read it; delete it for a new token)", shown.display()),
                ];
                for (i, url) in login_urls(scheme, bound, &token).iter().enumerate() {
                    let label = if i == 0 { "  login URL:  " } else { "              " };
                    lines.push(format!("{label}{url}"));
                }
                lines.extend(hints(&token));
                lines.push(
                    "  Trusted network only: --insecure-no-auth (or insecure_no_auth: true) serves without a token."
                        .into(),
                );
                lines.join("\n")
            } else {
                format!(
                    "{server}: listens on {bound} and requires the token in {} from every client (the login URL is \
                     {scheme}://<host>:{}/login?token=<that token>)",
                    shown.display(),
                    bound.port()
                )
            };
            Resolved { token: Some(token), notice: Some(notice), warning: None }
        }
    };
    Ok(resolved)
}

/// A new random token: 32 bytes from the OS-seeded generator, as 64 hex digits.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token kept in `path`, generating and writing one (mode 0600) when the file is missing or
/// empty. Returns the token and whether it was generated now. A file others could read is made
/// private again (with a warning). Blocking file I/O: call at start-up.
pub fn load_or_create(path: &Path) -> io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            make_private(path)?;
            return Ok((text.trim().to_owned(), false));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot read token file {}: {e}", path.display()))),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let token = generate();
    write_private(path, &format!("{token}\n"))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write token file {}: {e}", path.display())))?;
    Ok((token, true))
}

/// Writes `text` to a file only the owner can read and write (created that way, never widened).
pub fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    make_private(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(unix)]
fn make_private(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "token file was readable by others: made it 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// The machine's host name, for URLs other machines can open (`None` when unknown).
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
}

/// Ready login URLs for a server listening on `bound`: its own address when it names one, else
/// the host name (for other machines) and loopback (for this one).
pub fn login_urls(scheme: &str, bound: SocketAddr, token: &str) -> Vec<String> {
    let port = bound.port();
    let url = |host: &str| format!("{scheme}://{host}:{port}/login?token={token}");
    let ip = bound.ip();
    if !ip.is_unspecified() {
        let host = if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
        return vec![url(&host)];
    }
    let mut urls: Vec<String> = host_name().iter().map(|h| url(h)).collect();
    urls.push(url("127.0.0.1"));
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_bind_address_config_and_opt_out() {
        let f = PathBuf::from("/x/central.token");
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(AuthPlan::decide(false, false, any, f.clone()), AuthPlan::TokenFile(f.clone()));
        assert_eq!(AuthPlan::decide(false, true, any, f.clone()), AuthPlan::OpenInsecure);
        assert_eq!(AuthPlan::decide(true, true, any, f.clone()), AuthPlan::Configured);
        assert_eq!(AuthPlan::decide(false, false, lo, f.clone()), AuthPlan::OpenLoopback);
        assert_eq!(AuthPlan::decide(false, false, "::1".parse().unwrap(), f), AuthPlan::OpenLoopback);
    }

    #[test]
    fn token_file_is_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/agent.token");
        let (t1, new1) = load_or_create(&path).unwrap();
        assert!(new1 && t1.len() == 64 && t1.chars().all(|c| c.is_ascii_hexdigit()));
        let (t2, new2) = load_or_create(&path).unwrap();
        assert_eq!((t2.as_str(), new2), (t1.as_str(), false));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            load_or_create(&path).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_ne!(generate(), generate());
    }

    #[test]
    fn login_urls_name_a_reachable_host() {
        let urls = login_urls("http", "10.1.2.3:8080".parse().unwrap(), "t");
        assert_eq!(urls, ["http://10.1.2.3:8080/login?token=t"]);
        let urls = login_urls("https", "0.0.0.0:9001".parse().unwrap(), "t");
        assert_eq!(urls.last().unwrap(), "https://127.0.0.1:9001/login?token=t");
        let urls = login_urls("http", "[fd00::1]:1".parse().unwrap(), "t");
        assert_eq!(urls, ["http://[fd00::1]:1/login?token=t"]);
    }
}

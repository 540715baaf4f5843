//! Who may use a server: its token (configured, or generated on first start beyond loopback),
//! sessions opened with it in a browser, and a limit on wrong tokens per client address.
//!
//! A request is let through when it carries a live session cookie, or the token as
//! `Authorization: Bearer` (or another place a server accepts, such as `/ws?token=`). Tokens are
//! compared in constant time (SHA-256 of both, then every byte). Every wrong token counts against
//! the client's address; after [`LoginLimiter::MAX_FAILURES`] in a minute that address gets 429
//! with `Retry-After` for any token, right or wrong. A request without credentials is not a guess
//! and is not counted, nor is a stale session cookie (a browser resends it on every request).
//!
//! # Layout
//! - [`token`]: the token plan ([`AuthPlan`]), the private token file, ready login URLs.
//! - [`limiter`]: wrong tokens per client address.
//! - [`sessions`]: browser sessions stored hashed, surviving restarts, ended by logout.

pub mod limiter;
pub mod sessions;
pub mod token;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

pub use limiter::LoginLimiter;
pub use sessions::{SESSION_TTL, Sessions};
pub use token::AuthPlan;

use crate::guard::{bearer_token, error_response};

/// What a request's credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No token is required, or the request has the token or a live session.
    Allowed,
    /// No credentials at all (401, or the login page for a browser).
    Missing,
    /// A wrong token (counted against the client's address).
    Wrong,
    /// Too many wrong tokens from this address: 429 for this long.
    Limited(Duration),
}

/// A server's token, sessions and limiter.
#[derive(Debug)]
pub struct Gate {
    /// SHA-256 of the token, when one is required.
    token: Option<[u8; 32]>,
    sessions: Option<Sessions>,
    limiter: LoginLimiter,
    cookie: String,
}

impl Gate {
    /// A server anyone may use (loopback without a token, or opted out).
    pub fn open() -> Gate {
        Gate { token: None, sessions: None, limiter: LoginLimiter::default(), cookie: String::new() }
    }

    /// A server that requires `token`; browser sessions use cookie `cookie` and persist in
    /// `sessions_file` (blocking read: call at start-up).
    pub fn with_token(token: &str, cookie: &str, sessions_file: Option<PathBuf>) -> Gate {
        Gate {
            token: Some(digest(token)),
            sessions: Some(Sessions::open(sessions_file, token, SESSION_TTL)),
            limiter: LoginLimiter::default(),
            cookie: cookie.to_owned(),
        }
    }

    /// True when a token is required.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Judges a request: its session cookie, its bearer token, and `other` token (e.g. `?token=`).
    pub fn judge(&self, client: Option<IpAddr>, headers: &HeaderMap, other: Option<&str>) -> Verdict {
        if self.token.is_none() || self.session(headers).is_some() {
            return Verdict::Allowed;
        }
        let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
        let given: Vec<&str> = [bearer, other].into_iter().flatten().collect();
        if given.is_empty() {
            return Verdict::Missing;
        }
        self.judge_tokens(client, &given)
    }

    /// Judges a token typed at a login (form field or `/login?token=`).
    pub fn judge_token(&self, client: Option<IpAddr>, given: &str) -> Verdict {
        if self.token.is_none() {
            return Verdict::Allowed;
        }
        self.judge_tokens(client, &[given.trim()])
    }

    fn judge_tokens(&self, client: Option<IpAddr>, given: &[&str]) -> Verdict {
        let Some(expected) = &self.token else { return Verdict::Allowed };
        let now = Instant::now();
        if let Some(ip) = client
            && let Err(wait) = self.limiter.check(ip, now)
        {
            return Verdict::Limited(wait);
        }
        // Every candidate is compared (no early exit that would tell which one matched).
        let ok = given.iter().fold(false, |ok, g| ok | same(&digest(g), expected));
        if ok {
            return Verdict::Allowed;
        }
        if let Some(ip) = client {
            self.limiter.fail(ip, now);
            tracing::warn!(client = %ip, "wrong token");
        }
        Verdict::Wrong
    }

    /// The live session id the request's cookie carries.
    pub fn session<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let sessions = self.sessions.as_ref()?;
        cookie(headers, &self.cookie).filter(|id| sessions.is_valid(id))
    }

    /// Opens a session; the `Set-Cookie` value for it (`HttpOnly`, `SameSite=Strict`, and
    /// `Secure` when served over https). `None` when no token is required.
    pub async fn login(&self, secure: bool) -> Option<HeaderValue> {
        let sessions = self.sessions.as_ref()?;
        let id = sessions.create().await;
        let secure = if secure { "; Secure" } else { "" };
        let value = format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.cookie,
            sessions.ttl().as_secs()
        );
        HeaderValue::from_str(&value).ok()
    }

    /// Ends the request's session (if any); the `Set-Cookie` value that clears the cookie.
    pub async fn logout(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let sessions = self.sessions.as_ref()?;
        if let Some(id) = cookie(headers, &self.cookie) {
            sessions.remove(id).await;
        }
        HeaderValue::from_str(&format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", self.cookie)).ok()
    }
}

/// The client address hyper saw (`None` for requests built in tests without a socket).
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip())
}

/// Extractor of [`client_ip`] (never rejects).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// How the error of a [`limited_response`] starts (a client, such as central calling an agent,
/// tells a refused token from other 429s by it).
pub const LIMITED_ERROR_PREFIX: &str = "too many wrong tokens";

/// The 429 for a limited client, with `Retry-After` in whole seconds.
pub fn limited_response(wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let error = format!(
        "{LIMITED_ERROR_PREFIX} from this address ({} within {} s): retry after {secs} s",
        LoginLimiter::MAX_FAILURES,
        LoginLimiter::WINDOW.as_secs()
    );
    let mut resp = error_response(StatusCode::TOO_MANY_REQUESTS, &error, Some("token"));
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn digest(text: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal digests, comparing every byte whatever differs first.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn bearer_session_and_limits() {
        let gate = Gate::with_token("s3cret", "sess", None);
        let ip: IpAddr = "10.9.8.7".parse().unwrap();
        assert_eq!(gate.judge(Some(ip), &headers(&[]), None), Verdict::Missing);
        assert_eq!(gate.judge(Some(ip), &headers(&[("authorization", "Bearer s3cret")]), None), Verdict::Allowed);
        assert_eq!(gate.judge(Some(ip), &headers(&[]), Some("s3cret")), Verdict::Allowed);
        // A stale cookie is no guess.
        assert_eq!(gate.judge(Some(ip), &headers(&[("cookie", "sess=old")]), None), Verdict::Missing);
        let cookie = gate.login(false).await.unwrap();
        let pair = cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        assert_eq!(gate.judge(Some(ip), &headers(&[("cookie", &pair)]), None), Verdict::Allowed);
        for _ in 0..LoginLimiter::MAX_FAILURES {
            assert_eq!(gate.judge_token(Some(ip), "guess"), Verdict::Wrong);
        }
        assert!(matches!(gate.judge_token(Some(ip), "s3cret"), Verdict::Limited(_)), "limited even when right");
        assert_eq!(gate.judge(Some(ip), &headers(&[("cookie", &pair)]), None), Verdict::Allowed, "sessions go on");
        assert_eq!(gate.judge_token(Some("10.0.0.1".parse().unwrap()), "s3cret"), Verdict::Allowed);
        let cleared = gate.logout(&headers(&[("cookie", &pair)])).await.unwrap();
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(gate.judge(None, &headers(&[("cookie", &pair)]), None), Verdict::Missing);
        assert_eq!(Gate::open().judge(None, &headers(&[]), None), Verdict::Allowed);
        let resp = limited_response(Duration::from_millis(49_100));
        assert_eq!(
            (resp.status(), &resp.headers()["retry-after"]),
            (StatusCode::TOO_MANY_REQUESTS, &HeaderValue::from(50))
        );
    }

    #[test]
    fn digests_compare_whole() {
        assert!(same(&digest("a"), &digest("a")) && !same(&digest("a"), &digest("b")));
        let h = headers(&[("cookie", "a=1; sess=abc ; b=2")]);
        assert_eq!((cookie(&h, "sess"), cookie(&h, "c"), cookie(&h, "")), (Some("abc"), None, None));
    }
}

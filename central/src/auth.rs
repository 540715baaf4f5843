//! Central authentication: `central.auth_token` (or env `BENCH_CENTRAL_TOKEN`).
//!
//! With a token set, every `/api/*` route and `/api/ws` need either `Authorization: Bearer
//! <token>` (scripts; the scheme in any case) or the session cookie the `/login` page sets
//! (browsers: a WebSocket cannot carry a header). Pages redirect to `/login`; `/health`,
//! `/login` and `/static/*` stay open. The cookie is `HttpOnly` and `SameSite=Strict`, so no
//! other site's page can send it; sessions live in memory (a restart asks to log in again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use bench_server::guard::{bearer_token, constant_time_eq, error_response};
use rand::Rng;
use serde::Deserialize;

use crate::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "bench_session";
/// How long a login lasts.
const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most sessions kept; the oldest is dropped beyond (memory stays bounded whatever logs in).
const MAX_SESSIONS: usize = 1024;

/// Logged-in browser sessions: random id → when it was created.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// A new session id (256 random bits, hex).
    pub fn create(&self) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut live = self.lock();
        live.retain(|_, at| at.elapsed() < SESSION_TTL);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), Instant::now());
        id
    }

    pub fn is_valid(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|at| at.elapsed() < SESSION_TTL)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Paths anyone may request: the health check, the login page and what it needs.
fn is_open(path: &str) -> bool {
    path == "/health" || path == "/login" || path.starts_with("/static/")
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// True when the request carries the token or a live session.
pub fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = state.access.config.token() else { return true };
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    if bearer.is_some_and(|given| constant_time_eq(given, expected)) {
        return true;
    }
    cookie(headers, SESSION_COOKIE).is_some_and(|id| state.access.sessions.is_valid(id))
}

/// Middleware: lets authorized requests through; `/api/*` gets a 401 JSON, pages a redirect.
pub async fn require(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if is_open(path) || authorized(&state, req.headers()) {
        return next.run(req).await;
    }
    if path.starts_with("/api/") {
        let mut resp = error_response(
            StatusCode::UNAUTHORIZED,
            "missing or wrong credentials: send `Authorization: Bearer <central.auth_token>` or log in at /login",
            Some("Authorization"),
        );
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Redirect::to(&format!("/login?next={}", encode(target))).into_response()
}

/// `/login`: one field, no script.
#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub version: &'static str,
    pub next: String,
    pub error: Option<String>,
    pub auth_enabled: bool,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// Only a local path: `//host` or `https://…` would make the login an open redirect.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn page(state: &AppState, next: String, error: Option<String>) -> LoginPage {
    LoginPage { version: env!("CARGO_PKG_VERSION"), next, error, auth_enabled: state.access.config.token().is_some() }
}

/// `GET /login`.
pub async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    crate::pages::with_page_headers(page(&state, safe_next(q.next.as_deref()), None))
}

/// `POST /login` (form): sets the session cookie and goes back to `next`; a wrong token is a
/// 401 with the form again.
pub async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(expected) = state.access.config.token() else {
        return Redirect::to(&next).into_response();
    };
    if !constant_time_eq(form.token.trim(), expected) {
        tracing::warn!("failed login at /login");
        let mut resp = crate::pages::with_page_headers(page(&state, next, Some("Wrong token.".into())));
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return resp;
    }
    let id = state.access.sessions.create();
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_TTL.as_secs());
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_next_and_sessions() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; bench_session=abc ; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(safe_next(Some("/history?x=1")), "/history?x=1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "history"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(encode("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
        let s = Sessions::default();
        let id = s.create();
        assert_eq!(id.len(), 64);
        assert!(s.is_valid(&id) && !s.is_valid("nope") && id != s.create());
    }
}

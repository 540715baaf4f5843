//! Central authentication: `central.auth_token` (or env `BENCH_CENTRAL_TOKEN`), or the token
//! central generates on first start when it listens beyond loopback without one
//! (`<results_dir>/central.token`, see `bench_server::auth::token`).
//!
//! With a token, every `/api/*` route and `/api/ws` need either `Authorization: Bearer <token>`
//! (scripts; the scheme in any case) or the session cookie the login sets (browsers: a WebSocket
//! cannot carry a header). Pages redirect to `/login`; `/health`, `/login`, `/logout` and
//! `/static/*` stay open. A browser logs in with the form, or at once with the URL central prints
//! (`/login?token=…`). The cookie is `HttpOnly` and `SameSite=Strict`, so no other site's page
//! can send it; sessions are stored hashed in `<results_dir>/sessions.json` and survive a
//! restart until they expire (7 days) or `POST /logout` ends them. Wrong tokens are limited per
//! client address: 5 a minute, then 429 with `Retry-After`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use bench_server::auth::{ClientIp, Verdict, client_ip, limited_response};
use bench_server::guard::error_response;
use serde::Deserialize;

use crate::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "bench_session";

/// Put on a request let through by a live browser session (pages then offer "Log out").
#[derive(Debug, Clone, Copy)]
pub struct LoggedIn;

/// Paths anyone may request: the health check, the login and logout, and what the login page needs.
fn is_open(path: &str) -> bool {
    path == "/health" || path == "/login" || path == "/logout" || path.starts_with("/static/")
}

/// Middleware: lets authorized requests through; `/api/*` gets a 401 JSON (429 when the client
/// sent too many wrong tokens), pages a redirect to the login page.
pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let gate = &state.access.gate;
    let path = req.uri().path();
    if gate.session(req.headers()).is_some() {
        req.extensions_mut().insert(LoggedIn);
        return next.run(req).await;
    }
    if is_open(path) {
        return next.run(req).await;
    }
    match gate.judge(client_ip(req.extensions()), req.headers(), None) {
        Verdict::Allowed => return next.run(req).await,
        Verdict::Limited(wait) => return limited_response(wait),
        Verdict::Missing | Verdict::Wrong => {}
    }
    if path.starts_with("/api/") || path == "/metrics" {
        let mut resp = error_response(
            StatusCode::UNAUTHORIZED,
            "missing or wrong credentials: send `Authorization: Bearer <token>` (central.auth_token, \
             BENCH_CENTRAL_TOKEN, or the token central generated in <results_dir>/central.token) or log in at /login",
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
    /// The ready login URL central prints: `/login?token=…` logs in at once.
    #[serde(default)]
    token: Option<String>,
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

fn page(state: &AppState, next: String, error: Option<String>, status: StatusCode) -> Response {
    let page = LoginPage { version: env!("CARGO_PKG_VERSION"), next, error, auth_enabled: state.access.gate.enabled() };
    let mut resp = crate::pages::with_page_headers(page);
    *resp.status_mut() = status;
    resp
}

/// `GET /login`: the form, or with `?token=` a login at once (the printed URL).
pub async fn login_page(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    match q.token {
        Some(token) => log_in(&state, ip, &token, next).await,
        None => page(&state, next, None, StatusCode::OK),
    }
}

/// `POST /login` (form): sets the session cookie and goes back to `next`; a wrong token is a
/// 401 with the form again, too many a 429.
pub async fn login(State(state): State<AppState>, ClientIp(ip): ClientIp, Form(form): Form<LoginForm>) -> Response {
    log_in(&state, ip, &form.token, safe_next(form.next.as_deref())).await
}

async fn log_in(state: &AppState, ip: Option<std::net::IpAddr>, token: &str, next: String) -> Response {
    let gate = &state.access.gate;
    if !gate.enabled() {
        return Redirect::to(&next).into_response();
    }
    match gate.judge_token(ip, token) {
        Verdict::Allowed => {
            let mut resp = Redirect::to(&next).into_response();
            if let Some(cookie) = gate.login(false).await {
                resp.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            resp
        }
        Verdict::Limited(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let error = format!("Too many wrong tokens from this address: wait {secs} s and try again.");
            let mut resp = page(state, next, Some(error), StatusCode::TOO_MANY_REQUESTS);
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        Verdict::Missing | Verdict::Wrong => page(state, next, Some("Wrong token.".into()), StatusCode::UNAUTHORIZED),
    }
}

/// `POST /logout` (an empty form): ends the session and goes to the login page.
pub async fn logout(State(state): State<AppState>, req: Request) -> Response {
    let cleared = state.access.gate.logout(req.headers()).await;
    let mut resp = Redirect::to("/login").into_response();
    if let Some(c) = cleared {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_and_encoded() {
        assert_eq!(safe_next(Some("/history?x=1")), "/history?x=1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "history"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(encode("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
        assert!(is_open("/logout") && is_open("/static/x.css") && !is_open("/api/runs"));
    }
}

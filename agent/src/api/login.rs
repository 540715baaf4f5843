//! The token check of the agent's protected routes, and browser sessions.
//!
//! With a token (configured as `auth_token`, or generated on first start beyond loopback) every
//! route but `/health`, `/time`, `/login` and `/logout` needs `Authorization: Bearer <token>`
//! (scheme in any case), `?token=` on `/ws` (browsers cannot set headers on WebSockets; request
//! logs redact it), or the session cookie `GET /login?token=` sets (the URL the agent prints when
//! it generates its token). Wrong tokens are limited per client address (429 with `Retry-After`).

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use bench_server::auth::{ClientIp, Verdict, client_ip, limited_response};
use bench_server::guard::error_response;

use super::error::ApiError;
use super::state::AppState;

/// Middleware of the protected routes.
pub async fn require(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let from_query = (req.uri().path() == "/ws")
        .then(|| Query::<HashMap<String, String>>::try_from_uri(req.uri()).ok())
        .flatten()
        .and_then(|Query(mut q)| q.remove("token"));
    match state.gate.judge(client_ip(req.extensions()), req.headers(), from_query.as_deref()) {
        Verdict::Allowed => next.run(req).await,
        Verdict::Missing | Verdict::Wrong => ApiError::Unauthorized.into_response(),
        Verdict::Limited(wait) => limited_response(wait),
    }
}

/// Where a browser lands after logging in: the agent has no pages, its JSON is what there is.
const AFTER_LOGIN: &str = "/capabilities";

/// `GET /login?token=…`: opens a browser session (cookie) and goes to `/capabilities`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !state.gate.enabled() {
        return Redirect::to(AFTER_LOGIN).into_response();
    }
    let Some(token) = q.get("token") else {
        let error = "open the login URL the agent printed when it generated its token \
                     (/login?token=<token>), or send `Authorization: Bearer <token>`";
        return error_response(StatusCode::UNAUTHORIZED, error, Some("token"));
    };
    match state.gate.judge_token(ip, token) {
        Verdict::Allowed => {
            let mut resp = Redirect::to(AFTER_LOGIN).into_response();
            if let Some(cookie) = state.gate.login(state.config.tls.is_some()).await {
                resp.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            resp
        }
        Verdict::Limited(wait) => limited_response(wait),
        Verdict::Missing | Verdict::Wrong => ApiError::Unauthorized.into_response(),
    }
}

/// `POST /logout` (an empty form): ends the browser session.
pub async fn logout(State(state): State<AppState>, req: Request) -> Response {
    let cleared = state.gate.logout(req.headers()).await;
    let mut resp = (StatusCode::OK, axum::Json(bench_shared::api::LoggedOut { logged_out: true })).into_response();
    if let Some(c) = cleared {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

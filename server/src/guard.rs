//! Request guards both servers apply before routing: cross-origin and DNS-rebinding defences,
//! JSON-only POST bodies, JSON 405 answers, and request logs that never show a token.
//!
//! - `Host` must be in `allowed_hosts` when that list is set (loopback names always pass): a
//!   DNS-rebinding page reaches the server under the attacker's host name, which is refused.
//! - A WebSocket upgrade with an `Origin` must come from the server's own origin or one listed
//!   in `allowed_origins` (a page elsewhere must not read the live feed or drive a socket).
//!   Non-browser clients send no `Origin` and pass.
//! - Every POST needs `Content-Type: application/json` (415 otherwise): a form or `text/plain`
//!   POST is what another site's page can send without a CORS preflight. Paths listed in
//!   `form_paths` take a form instead, and those in `gzip_paths` `application/gzip` (which no
//!   page can send cross-site without a preflight either).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

/// What one server accepts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Extra origins (`scheme://host[:port]`) allowed to open WebSockets.
    pub allowed_origins: Vec<String>,
    /// When not empty, the only `Host` names (with or without port) accepted.
    pub allowed_hosts: Vec<String>,
    /// POST paths that take an HTML form (`application/x-www-form-urlencoded`) instead of JSON.
    pub form_paths: Vec<&'static str>,
    /// POST paths that take a gzip body (`application/gzip`, also `application/x-gzip`).
    pub gzip_paths: Vec<&'static str>,
}

/// Wraps `router` with the guards of `policy`, the JSON 405 answer and the redacting trace layer.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>, policy: Policy) -> Router<S> {
    router
        .layer(middleware::from_fn_with_state(Arc::new(policy), guard))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            tracing::debug_span!("request", method = %req.method(), uri = %redact_query(&req.uri().to_string()))
        }))
}

async fn guard(State(policy): State<Arc<Policy>>, req: Request, next: Next) -> Response {
    if let Err(refusal) = check(&policy, req.method(), req.uri().path(), req.headers()) {
        return refusal;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED && !resp.headers().contains_key(header::CONTENT_TYPE) {
        let allow = resp.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let error = format!("method {method} is not allowed on {path}; allowed: {allow}");
        let mut json = error_response(StatusCode::METHOD_NOT_ALLOWED, &error, Some("method"));
        if let Some(v) = resp.headers().get(header::ALLOW) {
            json.headers_mut().insert(header::ALLOW, v.clone());
        }
        return json;
    }
    resp
}

/// The refusal for a request the policy does not accept.
#[allow(clippy::result_large_err)]
pub fn check(policy: &Policy, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Response> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !policy.allowed_hosts.is_empty() && !host_allowed(host, &policy.allowed_hosts) {
        let error = format!(
            "Host {host:?} is not in allowed_hosts ({}); use one of those names",
            policy.allowed_hosts.join(", ")
        );
        return Err(error_response(StatusCode::FORBIDDEN, &error, Some("Host")));
    }
    if is_websocket_upgrade(headers)
        && let Some(origin) = headers.get(header::ORIGIN)
    {
        let origin = origin.to_str().unwrap_or("(not text)");
        if !origin_allowed(origin, host, &policy.allowed_origins) {
            let error = format!("WebSocket Origin {origin:?} is neither this server's origin nor in allowed_origins");
            return Err(error_response(StatusCode::FORBIDDEN, &error, Some("Origin")));
        }
    }
    if method == Method::POST {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        const FORM: &str = "application/x-www-form-urlencoded";
        const GZIP: &str = "application/gzip";
        let (ok, wanted) = if policy.form_paths.contains(&path) {
            (media_type(ct) == FORM, FORM)
        } else if policy.gzip_paths.contains(&path) {
            (matches!(media_type(ct).as_str(), GZIP | "application/x-gzip"), GZIP)
        } else {
            (is_json(ct), "application/json")
        };
        if !ok {
            let got = if ct.is_empty() { "none".to_owned() } else { format!("{ct:?}") };
            let error = format!("Content-Type must be {wanted} (got {got})");
            return Err(error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, &error, Some("Content-Type")));
        }
    }
    Ok(())
}

/// `{"error", "field"}` with `status`: the shape every bench-race error has, newline-terminated
/// like every other JSON answer (these are made outside the apps' newline layer).
pub fn error_response(status: StatusCode, error: &str, field: Option<&str>) -> Response {
    let body =
        bench_shared::api::ErrorBody { field: field.map(str::to_owned), ..bench_shared::api::ErrorBody::new(error) };
    // Plain data with string keys: serializing cannot fail.
    let text = format!("{}\n", serde_json::to_string(&body).unwrap_or_default());
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn media_type(ct: &str) -> String {
    ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The body length a request declares (`Content-Length`), when it declares one. A server refuses
/// a declared length over its limit before reading any of the body: reading first would make the
/// client upload it all, and a client still uploading may miss the refusal.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// `application/json`, with parameters (`; charset=utf-8`) or a `+json` suffix type.
pub fn is_json(ct: &str) -> bool {
    let m = media_type(ct);
    m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
}

/// The token of an `Authorization` value: scheme `Bearer` in any case (RFC 7235: schemes are
/// case-insensitive), then the token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Compares without an early exit on the first differing byte (no timing hint about a secret).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (host, None),
    }
}

/// `host` (a `Host` header) is loopback or listed (an entry with a port must match it too).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let (name, port) = split_host_port(host);
    if matches!(name.to_ascii_lowercase().as_str(), "localhost" | "127.0.0.1" | "::1") {
        return true;
    }
    allowed.iter().any(|a| {
        let (a_name, a_port) = split_host_port(a.trim());
        a_name.eq_ignore_ascii_case(name) && (a_port.is_none() || a_port == port)
    })
}

/// `origin` is the server's own (same host and port as `host`) or listed.
pub fn origin_allowed(origin: &str, host: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if allowed.iter().any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (o_name, o_port) = split_host_port(authority);
    let (h_name, h_port) = split_host_port(host);
    !host.is_empty()
        && o_name.eq_ignore_ascii_case(h_name)
        && o_port.unwrap_or(default_port) == h_port.unwrap_or(default_port)
}

/// The URI with the value of every `token` query parameter replaced (logs must not hold secrets).
pub fn redact_query(uri: &str) -> String {
    let Some((path, query)) = uri.split_once('?') else { return uri.to_owned() };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("token") => format!("{k}=REDACTED"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert!(constant_time_eq("abc", "abc") && !constant_time_eq("abc", "abd") && !constant_time_eq("a", "ab"));
    }

    #[test]
    fn origins_and_hosts() {
        assert!(origin_allowed("http://10.0.0.2:8080", "10.0.0.2:8080", &[]));
        assert!(origin_allowed("http://box", "box:80", &[]));
        assert!(!origin_allowed("http://evil.example", "10.0.0.2:8080", &[]));
        assert!(!origin_allowed("http://10.0.0.2:9999", "10.0.0.2:8080", &[]));
        assert!(!origin_allowed("null", "10.0.0.2:8080", &[]));
        assert!(origin_allowed("https://dash.lan/", "10.0.0.2:8080", &["https://dash.lan".into()]));
        assert!(host_allowed("127.0.0.1:9001", &["bench.lan".into()]));
        assert!(host_allowed("[::1]:9001", &["bench.lan".into()]));
        assert!(host_allowed("bench.lan:9001", &["bench.lan".into()]));
        assert!(host_allowed("BENCH.lan:9001", &["bench.lan:9001".into()]));
        assert!(!host_allowed("bench.lan:9002", &["bench.lan:9001".into()]));
        assert!(!host_allowed("evil.example:9001", &["bench.lan".into()]));
    }

    #[test]
    fn gzip_paths_take_gzip_and_nothing_else() {
        let policy = Policy { gzip_paths: vec!["/import"], ..Default::default() };
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            h
        };
        assert!(check(&policy, &Method::POST, "/import", &with("application/gzip")).is_ok());
        assert!(check(&policy, &Method::POST, "/import", &with("application/x-gzip")).is_ok());
        for ct in ["application/json", "text/plain", "application/octet-stream"] {
            let refused = check(&policy, &Method::POST, "/import", &with(ct)).unwrap_err();
            assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        }
        assert!(check(&policy, &Method::POST, "/other", &with("application/gzip")).is_err(), "JSON elsewhere");
    }

    #[test]
    fn content_types_and_redaction() {
        assert!(is_json("application/json") && is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain") && !is_json("") && !is_json("application/x-www-form-urlencoded"));
        assert_eq!(redact_query("/ws?job_id=a&token=s3cret"), "/ws?job_id=a&token=REDACTED");
        assert_eq!(redact_query("/ws?TOKEN=x"), "/ws?TOKEN=REDACTED");
        assert_eq!(redact_query("/jobs"), "/jobs");
    }
}

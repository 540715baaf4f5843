//! The agent's REST API and WebSocket.
//!
//! # Layout
//! - [`state`]: `AppState`, the shared bundle of `Arc`s.
//! - [`info`]: `GET /health`, `GET /time`, `GET /capabilities`.
//! - [`jobs`]: `POST/GET /jobs`, `GET/DELETE /jobs/{id}`, `GET /jobs/{id}/events` (NDJSON).
//! - [`ws`]: `GET /ws`, every event as one JSON text frame.
//! - [`machine`]: `GET /api/agent/runtime_metrics`, `GET /metrics` (Prometheus), capability extras.
//! - [`models`]: `POST /api/models/pull` (Ollama pulls a model; events like a job's).
//! - [`login`]: the token check of every protected route, `GET /login?token=`, `POST /logout`.
//! - [`error`], [`extract`]: JSON errors `{"error", "field"?, "detail"?}` for every failure.

pub mod error;
pub mod extract;
pub mod info;
pub mod jobs;
pub mod login;
pub mod machine;
pub mod models;
pub mod state;
pub mod workloads;
pub mod ws;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::routing::{get, post};
use bench_server::guard;

use crate::workload::compat;

use error::ApiError;
use state::AppState;

/// The agent's routes (no socket: serve it with [`crate::serve`], or test it with `oneshot`).
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/capabilities", get(info::capabilities))
        .route("/jobs", get(jobs::list).post(jobs::create))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/ws", get(ws::upgrade))
        .route("/api/agent/runtime_metrics", get(machine::runtime_metrics))
        .route("/metrics", get(machine::prometheus))
        .route("/api/models/pull", post(models::pull))
        .route("/api/models/pulls", get(models::running))
        // The original bench-race's image and compute routes (see crate::workload::compat).
        .route("/api/comfy/txt2img", post(compat::txt2img))
        .route("/api/image/start", post(compat::txt2img))
        .route("/api/image/job_status", get(compat::job_status))
        .route("/api/image/jobs", get(compat::jobs))
        .route("/api/image/result/{image_id}", get(compat::result))
        .route("/api/comfy/health", get(compat::comfy_health))
        .route("/api/comfy/checkpoints", get(compat::comfy_checkpoints))
        .route("/api/compute", post(compat::compute))
        .route_layer(middleware::from_fn_with_state(state.clone(), login::require));
    let policy = guard::Policy {
        allowed_origins: state.config.allowed_origins.clone(),
        allowed_hosts: state.config.allowed_hosts.clone(),
        form_paths: vec!["/logout"],
        gzip_paths: Vec::new(),
    };
    let app = Router::new()
        .route("/health", get(info::health))
        .route("/time", get(info::time))
        .route("/login", get(login::login))
        .route("/logout", post(login::logout))
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::map_response(bench_server::newline::json_newline))
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT_BYTES));
    guard::apply(app, policy).with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route {} {}; see GET /health, /time, /capabilities, /jobs, /jobs/{{id}}, /jobs/{{id}}/events, /ws, \
         /api/agent/runtime_metrics, /metrics, /login, POST /api/models/pull, /api/comfy/*, /api/image/*, /api/compute",
        req.method(),
        req.uri().path()
    ))
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::config::AgentConfig;
    use crate::engine::EngineSettings;

    fn state(token: Option<&str>) -> AppState {
        let engine = EngineSettings {
            request_timeout_s: 10.0,
            ..EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
        };
        let mut cfg = AgentConfig::new("unit", engine);
        cfg.auth_token = token.map(str::to_owned);
        AppState::new(cfg)
    }

    async fn call(state: AppState, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let resp = router(state).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn health_is_open_and_errors_are_json() {
        let (status, body) = call(state(Some("t")), Request::get("/health").body(Body::empty()).unwrap()).await;
        assert_eq!((status, body["machine_id"].as_str()), (StatusCode::OK, Some("unit")));
        let (status, body) = call(state(Some("t")), Request::get("/jobs").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let before = crate::engine::wall_now_s() * 1000.0;
        let (status, body) = call(state(Some("t")), Request::get("/time").body(Body::empty()).unwrap()).await;
        let t: bench_shared::api::AgentTime = serde_json::from_value(body).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(t.now_unix_ms >= before && t.now_unix_ms <= crate::engine::wall_now_s() * 1000.0, "{t:?}");
        let req = Request::post("/jobs")
            .header("authorization", "bearer t")
            .header("content-type", "application/json")
            .body(Body::from("{nope"))
            .unwrap();
        let (status, body) = call(state(Some("t")), req).await;
        assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("body")));
        assert!(body["error"].as_str().unwrap().contains("malformed JSON"), "{body}");
        let req = Request::get("/ws?token=t").body(Body::empty()).unwrap();
        let (status, body) = call(state(Some("t")), req).await;
        assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("upgrade")), "{body}");
    }
}

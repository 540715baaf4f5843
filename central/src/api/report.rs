//! `GET /api/runs/{id}/report.html`: the run as one self-contained HTML file ([`crate::report`]).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::runs::checked;
use crate::AppState;
use crate::runs::summary::{build, outcomes_from_events};
use bench_shared::time::{now_s, rfc3339};

/// The report may load nothing at all: inline styles only, images only as `data:`, no script.
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn html(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<Response, ApiError> {
    checked(&run_id)?;
    let (store, id) = (state.store.clone(), run_id.clone());
    let body = super::blocking(move || {
        let meta = store.metadata(&id)?;
        let outcomes = outcomes_from_events(&store.events(&id)?);
        let summary = match store.summary(&id)? {
            Some(s) => s,
            None => build(&meta, &outcomes),
        };
        crate::report::build(&meta, &summary, &outcomes, &rfc3339(now_s()))
            .render()
            .map_err(|e| ApiError::Internal(format!("report of {id}: {e}")))
    })
    .await?;
    let mut res = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(REPORT_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{run_id}-report.html\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

//! `GET /api/leaderboard?metric=&model=&engine=&since=`: machines ranked over every complete
//! run (see [`crate::store::leaderboard`]); read from the run index.

use axum::Json;
use axum::extract::State;
use bench_shared::compare::Metric;
use bench_shared::share::Leaderboard;

use super::ApiError;
use super::params::Params;
use crate::AppState;
use crate::store::leaderboard::BoardQuery;

const KNOWN: [&str; 4] = ["metric", "model", "engine", "since"];

fn parse(q: &Params) -> Result<BoardQuery, ApiError> {
    q.only(&KNOWN)?;
    let text = |k: &str| q.text(k).map(str::to_owned);
    let metric = match q.text("metric") {
        None => Metric::default(),
        Some(v) => Metric::parse(v).ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
            ApiError::bad("metric", format!("must be one of {}, got {v:?}", names.join(", ")))
        })?,
    };
    Ok(BoardQuery { metric, model: text("model"), engine: text("engine"), since_s: super::filters::since(q)? })
}

/// `GET /api/leaderboard`.
pub async fn show(State(state): State<AppState>, q: Params) -> Result<Json<Leaderboard>, ApiError> {
    let query = parse(&q)?;
    let store = state.store.clone();
    Ok(Json(super::blocking(move || Ok(store.leaderboard(&query))).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&'static str, &'static str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    fn field(r: Result<BoardQuery, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest { field, .. }) => field.unwrap_or_default(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn query_fields_are_named_when_wrong() {
        assert_eq!(field(parse(&q(&[("metric", "speed")]))), "metric");
        assert_eq!(field(parse(&q(&[("since", "last week")]))), "since");
        assert_eq!(field(parse(&q(&[("machine", "x")]))), "machine");
        let ok =
            parse(&q(&[("metric", "ttft_ms"), ("model", " smol "), ("engine", "ollama"), ("since", "1970-01-02")]))
                .unwrap();
        assert_eq!(
            ok,
            BoardQuery {
                metric: Metric::TtftMs,
                model: Some("smol".into()),
                engine: Some("ollama".into()),
                since_s: Some(86_400.0)
            }
        );
        assert_eq!(parse(&q(&[])).unwrap().metric, Metric::DecodeTokS);
    }
}

//! `GET /api/runs?model=&machine=&engine_version=&status=&since=`: which stored runs to list.
//!
//! Each filter is optional and they combine with AND. The files under `results/runs/` stay the
//! only record; the filters read the store's in-memory index of them (`crate::store`).

use bench_shared::run::RunStatus;

use super::ApiError;
use super::params::Params;

const STATUSES: [RunStatus; 5] =
    [RunStatus::Running, RunStatus::Complete, RunStatus::Partial, RunStatus::Failed, RunStatus::Interrupted];

/// The parsed filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Case-insensitive substring of one of the run's models.
    pub model: Option<String>,
    /// A machine of the run, by `machine_id` or label (case-insensitive, exact).
    pub machine: Option<String>,
    /// A machine's engine version, exact.
    pub engine_version: Option<String>,
    pub status: Option<RunStatus>,
    /// Runs started at or after this epoch second.
    pub since_s: Option<f64>,
}

impl RunFilter {
    /// Reads the filters from the query; a bad value is a 400 naming the field and what it takes.
    pub fn from_query(q: &Params) -> Result<RunFilter, ApiError> {
        let text = |k: &str| q.text(k).map(str::to_owned);
        let status = match text("status") {
            None => None,
            Some(v) => Some(STATUSES.into_iter().find(|s| s.as_str() == v).ok_or_else(|| {
                let names: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
                ApiError::bad("status", format!("must be one of {}, got {v:?}", names.join(", ")))
            })?),
        };
        let since_s = since(q)?;
        Ok(RunFilter {
            model: text("model"),
            machine: text("machine"),
            engine_version: text("engine_version"),
            status,
            since_s,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == RunFilter::default()
    }

    pub fn matches(&self, m: &crate::store::RunFacts) -> bool {
        let model_ok = self.model.as_ref().is_none_or(|want| {
            let want = want.to_lowercase();
            m.models.iter().any(|x| x.to_lowercase().contains(&want))
        });
        let machine_ok = self.machine.as_ref().is_none_or(|want| {
            m.machines.iter().any(|r| r.machine_id.eq_ignore_ascii_case(want) || r.label.eq_ignore_ascii_case(want))
        });
        let version_ok = self.engine_version.as_ref().is_none_or(|want| {
            m.machines.iter().any(|r| r.engine.as_ref().and_then(|e| e.version.as_deref()) == Some(want.as_str()))
        });
        let status_ok = self.status.is_none_or(|s| m.status == s);
        let since_ok = self.since_s.is_none_or(|t| m.started_at_s >= t);
        model_ok && machine_ok && version_ok && status_ok && since_ok
    }
}

/// The `since` parameter as epoch seconds (`None` when absent or empty); a bad value is a 400.
pub(super) fn since(q: &Params) -> Result<Option<f64>, ApiError> {
    match q.text("since") {
        None => Ok(None),
        Some(v) => parse_since(v).map(Some).ok_or_else(|| {
            ApiError::bad(
                "since",
                format!("must be a date YYYY-MM-DD, a UTC time YYYY-MM-DDTHH:MM[:SS][Z] or epoch seconds, got {v:?}"),
            )
        }),
    }
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC) or epoch seconds → epoch seconds.
pub(super) fn parse_since(v: &str) -> Option<f64> {
    if let Ok(s) = v.parse::<f64>() {
        return s.is_finite().then_some(s);
    }
    let v = v.strip_suffix('Z').unwrap_or(v);
    let (date, clock) = match v.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (v, None),
    };
    let mut d = date.split('-');
    let (y, mo, day) = (d.next()?.parse::<i32>().ok()?, d.next()?.parse::<u8>().ok()?, d.next()?.parse::<u8>().ok()?);
    if d.next().is_some() {
        return None;
    }
    let date = time::Date::from_calendar_date(y, time::Month::try_from(mo).ok()?, day).ok()?;
    let (mut h, mut mi, mut s) = (0u8, 0u8, 0u8);
    if let Some(c) = clock {
        let mut parts = c.split(':');
        h = parts.next()?.parse().ok()?;
        mi = parts.next()?.parse().ok()?;
        s = parts.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        if parts.next().is_some() {
            return None;
        }
    }
    let t = time::Time::from_hms(h, mi, s).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn since_takes_dates_times_and_epoch_seconds() {
        assert_eq!(parse_since("1970-01-02"), Some(86_400.0));
        assert_eq!(parse_since("1970-01-01T01:00Z"), Some(3600.0));
        assert_eq!(parse_since("1970-01-01T00:00:30"), Some(30.0));
        assert_eq!(parse_since("1795000000"), Some(1_795_000_000.0));
        for bad in ["yesterday", "2026-13-01", "2026-11-23T25:00", "2026-11", "NaN"] {
            assert_eq!(parse_since(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_field_and_what_it_accepts() {
        let e = format!("{:?}", RunFilter::from_query(&q(&[("status", "done")])).unwrap_err());
        assert!(e.contains("status") && e.contains("running, complete, partial, failed, interrupted"), "{e}");
        let e = format!("{:?}", RunFilter::from_query(&q(&[("since", "last week")])).unwrap_err());
        assert!(e.contains("since") && e.contains("YYYY-MM-DD"), "{e}");
        let f = RunFilter::from_query(&q(&[("model", " smollm "), ("status", "partial"), ("machine", "")])).unwrap();
        assert_eq!((f.model.as_deref(), f.status, f.machine), (Some("smollm"), Some(RunStatus::Partial), None));
        assert!(RunFilter::from_query(&q(&[])).unwrap().is_empty());
    }
}

//! Query parameters, read one way everywhere: trimmed, an empty value meaning "not given", an
//! unknown name refused with the list of accepted ones.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use super::ApiError;

/// A request's query parameters (`?a=1&b=x`); a later repeat of a name wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(HashMap<String, String>);

impl Params {
    #[cfg(test)]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Params(pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }

    /// The parameter's value, trimmed; `None` when absent or empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Refuses a parameter not in `known` (400 naming it and the accepted ones).
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        let mut names: Vec<&String> = self.0.keys().filter(|k| !known.contains(&k.as_str())).collect();
        names.sort();
        match names.first() {
            None => Ok(()),
            Some(k) => Err(ApiError::bad(k, format!("unknown parameter; accepted: {}", known.join(", ")))),
        }
    }

    /// An integer parameter from `0` to `max`, `default` when absent.
    pub fn uint(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| ApiError::bad(name, format!("must be an integer from {min} to {max}, got {v:?}"))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state).await.map_err(|e| {
            ApiError::BadRequest { field: None, message: format!("unreadable query string: {}", e.body_text()) }
        })?;
        Ok(Params(pairs.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_and_empty_means_absent() {
        let p = Params::from_pairs([("a", " x "), ("b", ""), ("n", "7")]);
        assert_eq!((p.text("a"), p.text("b"), p.text("c")), (Some("x"), None, None));
        assert_eq!(p.uint("n", 1, 0, 10).unwrap(), 7);
        assert_eq!(p.uint("m", 3, 0, 10).unwrap(), 3);
        let e = format!("{:?}", p.uint("n", 1, 0, 5).unwrap_err());
        assert!(e.contains("from 0 to 5"), "{e}");
        assert!(p.only(&["a", "b", "n"]).is_ok());
        let e = format!("{:?}", p.only(&["a", "b"]).unwrap_err());
        assert!(e.contains("\"n\"") && e.contains("accepted: a, b"), "{e}");
    }
}

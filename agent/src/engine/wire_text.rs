//! Borrowed text in the engines' wire shapes: a JSON string without escapes (most tokens) is
//! read as a slice of the payload, so parsing a streamed chunk allocates nothing for its text.
//!
//! serde borrows a `Cow<str>` field only when it is written bare; inside an `Option` it would
//! always copy. [`opt_text`] is the `deserialize_with` for `Option<Cow<str>>` fields.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

/// A string as the payload holds it: borrowed where it can be, owned where it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(Visit).map(Text)
    }
}

/// `deserialize_with` for an `Option<Cow<str>>` field (`null` is `None`).
pub fn opt_text<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text<'a>>::deserialize(d)?.map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T<'a> {
        #[serde(default, borrow, deserialize_with = "opt_text")]
        s: Option<Cow<'a, str>>,
    }

    #[test]
    fn plain_strings_are_borrowed_escaped_ones_owned() {
        let plain: T<'_> = serde_json::from_str(r#"{"s":"abc"}"#).unwrap();
        assert!(matches!(plain.s, Some(Cow::Borrowed("abc"))));
        let escaped: T<'_> = serde_json::from_str(r#"{"s":"a\nb"}"#).unwrap();
        assert!(matches!(escaped.s.as_deref(), Some("a\nb")));
        assert!(matches!(escaped.s, Some(Cow::Owned(_))));
        let null: T<'_> = serde_json::from_str(r#"{"s":null}"#).unwrap();
        let absent: T<'_> = serde_json::from_str("{}").unwrap();
        assert!(null.s.is_none() && absent.s.is_none());
        assert!(serde_json::from_str::<T<'_>>(r#"{"s":1}"#).is_err());
        let v = serde_json::json!({"s": "from a value"});
        assert_eq!(T::deserialize(&v).unwrap().s.as_deref(), Some("from a value"));
    }
}

//! Identifier newtypes: a machine, an agent's job and a run are different strings, and a function
//! taking two of them cannot be called with the arguments swapped. On the wire each is the plain
//! string (`#[serde(transparent)]`).

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

macro_rules! from_any_string {
    ($name:ident) => {
        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }
    };
}

id! {
    /// A machine, as central's machines.yaml names it (`machine_id`).
    MachineId
}
from_any_string!(MachineId);

id! {
    /// A job, as the agent that runs it named it.
    JobId
}
from_any_string!(JobId);

id! {
    /// A run, `YYYY-MM-DD_HHMMSS_xxxxxx` (UTC, six hex digits): only [`RunId::parse`] and
    /// [`RunId::new_at`] make one, so a run id is always safe as a folder name.
    RunId
}

impl RunId {
    /// The id if `s` has the run-id shape, else `None` (a path, a traversal, anything else).
    pub fn parse(s: &str) -> Option<RunId> {
        let b = s.as_bytes();
        let ok = b.len() == 24
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 | 17 => *c == b'_',
                18..=23 => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
                _ => c.is_ascii_digit(),
            });
        ok.then(|| RunId(s.to_owned()))
    }

    /// A new id for a run started at `epoch_s`, with a random suffix.
    pub fn new_at(epoch_s: f64, suffix: u32) -> RunId {
        let t = time::OffsetDateTime::from_unix_timestamp(epoch_s as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let fmt = time::macros::format_description!("[year]-[month]-[day]_[hour][minute][second]");
        RunId(format!("{}_{:06x}", t.format(&fmt).unwrap_or_default(), suffix & 0xff_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_on_the_wire_and_run_ids_are_checked() {
        let m = MachineId::from("gpu-box");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"gpu-box\"");
        assert_eq!(serde_json::from_str::<JobId>("\"j1\"").unwrap(), JobId::from("j1"));
        assert!(m == "gpu-box" && m.as_str() == "gpu-box" && format!("{m}") == "gpu-box");
        let id = RunId::new_at(1_795_000_000.0, 0xab12cd);
        assert_eq!(id.as_str(), "2026-11-18_110640_ab12cd");
        assert_eq!(RunId::parse(id.as_str()), Some(id));
        for bad in
            ["../../etc/passwd", "2026-11-23_143022_ab12c", "2026-11-23_143022_AB12CD", "2026-11-23/143022_ab12cd", ""]
        {
            assert_eq!(RunId::parse(bad), None, "{bad}");
        }
    }
}

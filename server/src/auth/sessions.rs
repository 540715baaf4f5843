//! Browser sessions that survive a restart: each login gets a random id (256 bits) for its
//! cookie; the store keeps only the SHA-256 of each id and its expiry (wall clock, so it means the
//! same after a restart), in memory and in a JSON file only the user can read. The file also
//! holds a fingerprint of the token the sessions were opened with: changing the token ends every
//! session. Logging out removes the session from both.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How long a login lasts by default.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most sessions kept; the one expiring first is dropped beyond (bounded memory and file).
const MAX_SESSIONS: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct SessionFile {
    version: u32,
    token_fingerprint: String,
    sessions: Vec<StoredSession>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSession {
    id_sha256: String,
    expires_unix_s: u64,
}

/// Logged-in browser sessions (see the module docs).
#[derive(Debug)]
pub struct Sessions {
    /// Where sessions persist (`None`: memory only).
    path: Option<PathBuf>,
    ttl: Duration,
    fingerprint: String,
    /// SHA-256 (hex) of a live id → its expiry, epoch seconds.
    live: Mutex<HashMap<String, u64>>,
    /// Serializes file writes so a later snapshot never lands before an earlier one.
    writing: tokio::sync::Mutex<()>,
}

impl Sessions {
    /// The sessions stored in `path` for `token` (blocking read: call at start-up). A missing,
    /// unreadable or foreign file starts empty (and is replaced at the next login).
    pub fn open(path: Option<PathBuf>, token: &str, ttl: Duration) -> Sessions {
        let fingerprint = fingerprint(token);
        let now = now_s();
        let mut live = HashMap::new();
        if let Some(p) = &path {
            match std::fs::read_to_string(p) {
                Ok(text) => match serde_json::from_str::<SessionFile>(&text) {
                    Ok(f) if f.token_fingerprint == fingerprint => {
                        live.extend(
                            f.sessions
                                .into_iter()
                                .filter(|s| s.expires_unix_s > now)
                                .map(|s| (s.id_sha256, s.expires_unix_s)),
                        );
                    }
                    Ok(_) => tracing::info!(file = %p.display(), "the token changed: earlier sessions ended"),
                    Err(e) => tracing::warn!(file = %p.display(), "ignoring unreadable session file: {e}"),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %p.display(), "cannot read session file: {e}"),
            }
        }
        Sessions { path, ttl, fingerprint, live: Mutex::new(live), writing: tokio::sync::Mutex::new(()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session; returns the id for the cookie. Stored before returning.
    pub async fn create(&self) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        {
            let now = now_s();
            let mut live = self.lock();
            live.retain(|_, exp| *exp > now);
            if live.len() >= MAX_SESSIONS
                && let Some(first) = live.iter().min_by_key(|(_, exp)| **exp).map(|(k, _)| k.clone())
            {
                live.remove(&first);
            }
            live.insert(hash(&id), now + self.ttl.as_secs());
        }
        self.persist().await;
        id
    }

    pub fn is_valid(&self, id: &str) -> bool {
        self.lock().get(&hash(id)).is_some_and(|exp| *exp > now_s())
    }

    /// Ends the session `id` (logout); true when it was live.
    pub async fn remove(&self, id: &str) -> bool {
        let was = self.lock().remove(&hash(id)).is_some();
        if was {
            self.persist().await;
        }
        was
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn persist(&self) {
        let Some(path) = self.path.clone() else { return };
        let _turn = self.writing.lock().await;
        let file = SessionFile {
            version: 1,
            token_fingerprint: self.fingerprint.clone(),
            sessions: self
                .lock()
                .iter()
                .map(|(h, exp)| StoredSession { id_sha256: h.clone(), expires_unix_s: *exp })
                .collect(),
        };
        let written = tokio::task::spawn_blocking(move || {
            let text = serde_json::to_string(&file).map_err(std::io::Error::other)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // Temp file + rename: a crash mid-write leaves the old file whole.
            let tmp = path.with_extension("json.tmp");
            super::token::write_private(&tmp, &text)?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot store sessions (they last until a restart): {e}"),
            Err(e) => tracing::warn!("session writer failed: {e}"),
        }
    }
}

/// SHA-256 of `text`, hex.
pub fn hash(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn fingerprint(token: &str) -> String {
    hash(&format!("bench-race session key\n{token}"))[..16].to_owned()
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_survive_a_restart_until_logout_or_a_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.json");
        let s = Sessions::open(Some(path.clone()), "tok", SESSION_TTL);
        let (a, b) = (s.create().await, s.create().await);
        assert!(a.len() == 64 && a != b && s.is_valid(&a) && !s.is_valid("nope"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&a), "ids are stored hashed");
        drop(s);
        let again = Sessions::open(Some(path.clone()), "tok", SESSION_TTL);
        assert!(again.is_valid(&a) && again.is_valid(&b), "a restart keeps sessions");
        assert!(again.remove(&a).await && !again.remove(&a).await);
        let third = Sessions::open(Some(path.clone()), "tok", SESSION_TTL);
        assert!(!third.is_valid(&a) && third.is_valid(&b), "logout is stored too");
        let other = Sessions::open(Some(path), "new-token", SESSION_TTL);
        assert!(!other.is_valid(&b), "a new token ends every session");
    }

    #[tokio::test]
    async fn expired_sessions_are_refused() {
        let s = Sessions::open(None, "tok", Duration::ZERO);
        let id = s.create().await;
        assert!(!s.is_valid(&id));
    }
}

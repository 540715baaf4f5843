//! Sweep prompts: deterministic filler text behind a per-request nonce.
//!
//! Engines cache prompts (llama.cpp's `cache_prompt` is on by default, Ollama keeps the KV of
//! the last prompt), and a cached prefix makes prefill look almost free. Every call of a sweep
//! therefore starts with a fresh nonce, so no two calls share more than the chat template's
//! prefix. The nonce is a fixed-width decimal number so that every prompt with the same filler
//! length has the same token count, which is what calibration relies on.

use std::sync::atomic::{AtomicU64, Ordering};

/// Filler text: plain English prose with ordinary word lengths, so its chars-per-token ratio is
/// typical of real prompts. Repeated as often as needed.
const FILLER: &str = "The harbour town woke slowly under a grey sky. Fishermen checked their nets along the \
stone quay while gulls argued over scraps near the market hall. A baker opened her shutters and the smell \
of fresh bread drifted down the narrow lanes toward the water. Children ran past the old lighthouse, \
counting the boats that had returned before dawn. On the hill above the town, a farmer led two horses \
through a gate and paused to watch the ferry leave for the islands. The ferry carried letters, crates of \
apples, a piano wrapped in blankets, and a group of students who planned to map the tide pools on the \
northern shore. Their teacher had promised them a week of careful measurements, cold sandwiches, and \
long evenings spent writing reports by lamplight. In the library near the square, a retired engineer \
sorted drawings of bridges he had designed decades ago, each sheet marked with notes about wind, load, \
and the patience of the workers who built them. ";

/// The instruction before the filler; it asks for a long answer so that generation runs to
/// `max_tokens` rather than stopping early.
const INSTRUCTION: &str = "Continue the following story in the same style, at length.\n\n";

/// Hands out unique nonces for one process: a random-ish start (so two processes sharing an
/// engine do not collide) plus a counter.
#[derive(Debug)]
pub struct NonceSource {
    next: AtomicU64,
}

impl Default for NonceSource {
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64 ^ d.as_secs().rotate_left(20))
            .unwrap_or(0);
        NonceSource { next: AtomicU64::new(nanos % 9_000_000_000 + 1_000_000_000) }
    }
}

impl NonceSource {
    /// A fresh 10-digit nonce.
    pub fn next(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        1_000_000_000 + n % 9_000_000_000
    }
}

/// The characters before the filler (nonce line + instruction); constant for every nonce.
pub fn prefix_len() -> usize {
    prompt(1_000_000_000, 0).len()
}

/// The prompt for one call: nonce, instruction, and `filler_chars` characters of filler.
pub fn prompt(nonce: u64, filler_chars: usize) -> String {
    let mut s = String::with_capacity(filler_chars + 96);
    s.push_str(&format!("Request {nonce:010}.\n"));
    s.push_str(INSTRUCTION);
    let mut left = filler_chars;
    while left > 0 {
        // FILLER is ASCII, so byte slicing is char slicing.
        let take = left.min(FILLER.len());
        s.push_str(&FILLER[..take]);
        left -= take;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_has_exact_length_and_unique_prefix() {
        assert!(FILLER.is_ascii());
        let nonces = NonceSource::default();
        let (a, b) = (nonces.next(), nonces.next());
        assert_ne!(a, b);
        let pa = prompt(a, 2500);
        let pb = prompt(b, 2500);
        assert_eq!(pa.len(), prefix_len() + 2500);
        assert_eq!(pa.len(), pb.len());
        assert_ne!(pa[..20], pb[..20]);
        assert_eq!(pa[prefix_len()..], pb[prefix_len()..]);
        assert_eq!(prompt(a, 0).len(), prefix_len());
    }
}

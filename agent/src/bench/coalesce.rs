//! Coalescing of streamed text into `llm_token` events.
//!
//! Engines deliver text a token at a time; one WebSocket frame per token would flood slow
//! browsers. Text is buffered per channel and flushed at `max_chars`, at a newline, or
//! `max_age` after the buffer's first piece arrived. The event's timestamp is the arrival of that
//! first piece, never the flush time, so coalescing never distorts timing.

use std::time::Duration;

use bench_shared::metrics::TokenChannel;
use tokio::sync::mpsc;

use crate::engine::TextChunk;

/// When to flush buffered text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlushPolicy {
    pub max_chars: usize,
    pub max_age: Duration,
}

impl FlushPolicy {
    pub fn new(max_chars: usize, max_age_s: f64) -> Self {
        FlushPolicy { max_chars: max_chars.max(1), max_age: Duration::from_secs_f64(max_age_s.max(0.0)) }
    }
}

/// A flushed piece of text.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    /// Wall-clock arrival (epoch s) of the first chunk in this piece.
    pub timestamp_s: f64,
    pub channel: TokenChannel,
    /// Chunks (engine deltas) coalesced into this piece.
    pub chunks: u32,
}

struct Buffer {
    text: String,
    chars: usize,
    chunks: u32,
    first_at: std::time::Instant,
    timestamp_s: f64,
    channel: TokenChannel,
}

impl Buffer {
    fn into_piece(self) -> Piece {
        Piece { text: self.text, timestamp_s: self.timestamp_s, channel: self.channel, chunks: self.chunks }
    }
}

/// Reads chunks until the sender is dropped, calling `emit` for every flushed piece.
///
/// One timer serves the whole stream: it is armed when a buffer starts (not once per chunk, which
/// would register and drop a timer in the runtime's wheel for every token), and a ready chunk is
/// taken before the timer is looked at.
pub async fn coalesce(mut rx: mpsc::UnboundedReceiver<TextChunk>, policy: FlushPolicy, mut emit: impl FnMut(Piece)) {
    let mut buf: Option<Buffer> = None;
    let age = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(age);
    loop {
        let next = if buf.is_some() {
            tokio::select! {
                biased;
                c = rx.recv() => c,
                () = &mut age => {
                    if let Some(b) = buf.take() {
                        emit(b.into_piece());
                    }
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let Some(chunk) = next else { break };
        if chunk.text.is_empty() {
            continue;
        }
        if buf.as_ref().is_some_and(|b| b.channel != chunk.channel)
            && let Some(b) = buf.take()
        {
            emit(b.into_piece());
        }
        let b = buf.get_or_insert_with(|| {
            age.as_mut().reset(tokio::time::Instant::from_std(chunk.at + policy.max_age));
            Buffer {
                text: String::new(),
                chars: 0,
                chunks: 0,
                first_at: chunk.at,
                timestamp_s: chunk.wall_s,
                channel: chunk.channel,
            }
        });
        b.text.push_str(&chunk.text);
        b.chars += chunk.text.chars().count();
        b.chunks += 1;
        // The age is judged on arrivals too: chunks that keep arriving never starve the timer.
        let aged = chunk.at.saturating_duration_since(b.first_at) >= policy.max_age;
        if (b.chars >= policy.max_chars || chunk.text.contains('\n') || aged)
            && let Some(b) = buf.take()
        {
            emit(b.into_piece());
        }
    }
    if let Some(b) = buf.take() {
        emit(b.into_piece());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str, wall_s: f64, channel: TokenChannel) -> TextChunk {
        TextChunk { at: tokio::time::Instant::now().into_std(), wall_s, text: text.into(), channel }
    }

    async fn run(chunks: Vec<TextChunk>, policy: FlushPolicy) -> Vec<Piece> {
        let (tx, rx) = mpsc::unbounded_channel();
        for c in chunks {
            tx.send(c).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        coalesce(rx, policy, |p| out.push(p)).await;
        out
    }

    #[tokio::test]
    async fn flushes_at_char_limit_newline_channel_change_and_end() {
        let c = TokenChannel::Content;
        let r = TokenChannel::Reasoning;
        let pieces = run(
            vec![
                chunk("think", 1.0, r),
                chunk("ab", 2.0, c),
                chunk("cd", 3.0, c),
                chunk("e\n", 4.0, c),
                chunk("fg", 5.0, c),
                chunk("hi", 6.0, c),
                chunk("j", 7.0, c),
            ],
            FlushPolicy::new(4, 60.0),
        )
        .await;
        let got: Vec<(&str, f64, TokenChannel)> =
            pieces.iter().map(|p| (p.text.as_str(), p.timestamp_s, p.channel)).collect();
        assert_eq!(got, vec![("think", 1.0, r), ("abcd", 2.0, c), ("e\n", 4.0, c), ("fghi", 5.0, c), ("j", 7.0, c)]);
        let chunks: Vec<u32> = pieces.iter().map(|p| p.chunks).collect();
        assert_eq!(chunks, vec![1, 2, 1, 2, 1], "each piece counts the engine deltas in it");
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_by_age_with_the_first_arrival_as_timestamp() {
        let (tx, rx) = mpsc::unbounded_channel();
        let policy = FlushPolicy::new(1000, 0.1);
        let consumer = tokio::spawn(async move {
            let mut out = Vec::new();
            coalesce(rx, policy, |p| out.push((p.text, p.timestamp_s, tokio::time::Instant::now()))).await;
            out
        });
        let t0 = tokio::time::Instant::now();
        tx.send(chunk("a", 10.0, TokenChannel::Content)).unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        tx.send(chunk("b", 10.04, TokenChannel::Content)).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(chunk("c", 10.14, TokenChannel::Content)).unwrap();
        drop(tx);
        let out = consumer.await.unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].0.as_str(), out[0].1), ("ab", 10.0));
        assert_eq!(out[0].2 - t0, Duration::from_millis(100), "flushed 0.1 s after the first arrival");
        assert_eq!((out[1].0.as_str(), out[1].1), ("c", 10.14));
    }
}

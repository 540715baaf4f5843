//! Collects the pieces of one generation as they arrive: text-carrying chunks with their
//! arrival instants (for the trace), the text itself, and live copies for the token sink.

use std::time::Instant;

use bench_shared::metrics::{ChunkArrival, EngineStats, TokenChannel};

use super::{GenOutcome, TextChunk, TokenSink, offset_us, wall_now_s};

/// Builds a [`GenOutcome`] from arrivals measured against the instant the request was sent.
pub struct Recorder<'a> {
    sent_at: Instant,
    sink: Option<&'a TokenSink>,
    outcome: GenOutcome,
}

impl<'a> Recorder<'a> {
    /// `sent_at` is the instant taken immediately before the request was sent.
    pub fn new(sent_at: Instant, sink: Option<&'a TokenSink>) -> Self {
        Recorder { sent_at, sink, outcome: GenOutcome { sent_at: Some(sent_at), ..GenOutcome::default() } }
    }

    /// Records one chunk of generated text that arrived at `at`. Empty text is not a chunk:
    /// engines send role-only and `content: null` deltas that carry no generated token.
    pub fn text(&mut self, at: Instant, channel: TokenChannel, text: &str) {
        if text.is_empty() {
            return;
        }
        self.outcome.trace.chunks.push(ChunkArrival { offset_us: offset_us(self.sent_at, at), channel });
        match channel {
            TokenChannel::Content => self.outcome.text.push_str(text),
            TokenChannel::Reasoning => self.outcome.reasoning_text.push_str(text),
        }
        if let Some(sink) = self.sink {
            // A closed receiver only means nobody watches live; the trace stays complete.
            let _ = sink.send(TextChunk { at, wall_s: wall_now_s(), text: text.to_owned(), channel });
        }
    }

    /// Completes the outcome: `end` is the arrival of the response's last chunk.
    pub fn finish(mut self, end: Instant, streamed: bool, stats: EngineStats) -> GenOutcome {
        self.outcome.trace.end_offset_us = offset_us(self.sent_at, end);
        self.outcome.trace.streamed = streamed;
        self.outcome.stats = stats;
        self.outcome
    }
}

/// Finishes a non-streamed answer: its text arrived all at once, when the body was complete,
/// so the trace has one chunk per non-empty channel at `end` and no TTFT.
pub fn non_streamed(sent_at: Instant, end: Instant, content: &str, reasoning: &str, stats: EngineStats) -> GenOutcome {
    let mut rec = Recorder::new(sent_at, None);
    rec.text(end, TokenChannel::Reasoning, reasoning);
    rec.text(end, TokenChannel::Content, content);
    rec.finish(end, false, stats)
}

//! Property tests of the stream readers: however the network splits the bytes, the NDJSON
//! (Ollama) and SSE (OpenAI-compatible) readers give the same lines and the same tokens, and no
//! input — garbage included — makes them panic.

use proptest::prelude::*;
use serde_json::json;

use super::lines::{LineSplitter, SseLine, sse_line};
use super::{ollama_wire, openai_wire};

/// Feeds `bytes` cut at `cuts` (positions, any order, duplicates allowed); returns every line.
fn split_feed(bytes: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut s = LineSplitter::default();
    let mut out = Vec::new();
    let mut from = 0;
    for c in cuts {
        out.extend(s.push(&bytes[from..c]));
        from = c;
    }
    out.extend(s.push(&bytes[from..]));
    out.extend(s.finish());
    out
}

fn ndjson(tokens: &[String]) -> Vec<u8> {
    let mut body = String::new();
    for t in tokens {
        body.push_str(
            &json!({"model": "m", "message": {"role": "assistant", "content": t}, "done": false}).to_string(),
        );
        body.push('\n');
    }
    body.push_str(
        &json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true,
        "eval_count": tokens.len()})
        .to_string(),
    );
    body.push('\n');
    body.into_bytes()
}

fn sse(tokens: &[String], keepalive_every: usize, crlf: bool) -> Vec<u8> {
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut body = String::new();
    for (i, t) in tokens.iter().enumerate() {
        if keepalive_every > 0 && i % keepalive_every == 0 {
            body.push_str(&format!(": keep-alive{nl}{nl}"));
        }
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": t}}]});
        body.push_str(&format!("data: {chunk}{nl}{nl}"));
    }
    body.push_str(&format!("data: [DONE]{nl}{nl}"));
    body.into_bytes()
}

fn ollama_tokens(lines: &[String]) -> (String, bool) {
    let mut text = String::new();
    let mut done = false;
    for l in lines {
        let chunk = ollama_wire::parse_line(l).expect("every line parses");
        text.push_str(chunk.content());
        done |= chunk.done;
    }
    (text, done)
}

fn sse_tokens(lines: &[String]) -> (String, bool) {
    let mut text = String::new();
    for l in lines {
        match sse_line(l) {
            SseLine::Data(d) => {
                text.push_str(openai_wire::parse_completion(d).expect("every data line parses").content())
            }
            SseLine::Done => return (text, true),
            SseLine::Other => {}
        }
    }
    (text, false)
}

/// Tokens as engines send them: any text, including newlines, quotes and multi-byte characters.
fn tokens() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop_oneof![any::<String>(), "[a-z \n\"\\\\é✓🙂]{0,6}"], 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ndjson_tokens_do_not_depend_on_read_boundaries(toks in tokens(), cuts in prop::collection::vec(any::<usize>(), 0..64)) {
        let body = ndjson(&toks);
        let whole = split_feed(&body, &[]);
        let split = split_feed(&body, &cuts);
        prop_assert_eq!(&whole, &split);
        let (text, done) = ollama_tokens(&split);
        prop_assert_eq!(text, toks.concat());
        prop_assert!(done);
    }

    #[test]
    fn sse_tokens_do_not_depend_on_read_boundaries(
        toks in tokens(),
        cuts in prop::collection::vec(any::<usize>(), 0..64),
        keepalive_every in 0usize..5,
        crlf in any::<bool>(),
    ) {
        let body = sse(&toks, keepalive_every, crlf);
        let split = split_feed(&body, &cuts);
        prop_assert_eq!(&split_feed(&body, &[]), &split);
        let (text, done) = sse_tokens(&split);
        prop_assert_eq!(text, toks.concat());
        prop_assert!(done);
    }

    /// Garbage never panics a reader, and the lines it yields do not depend on the split either.
    #[test]
    fn garbage_never_panics_and_splits_alike(bytes in prop::collection::vec(any::<u8>(), 0..2048), cuts in prop::collection::vec(any::<usize>(), 0..64)) {
        let split = split_feed(&bytes, &cuts);
        prop_assert_eq!(&split_feed(&bytes, &[]), &split);
        for l in &split {
            let _ = ollama_wire::parse_line(l);
            if let SseLine::Data(d) = sse_line(l) {
                let _ = openai_wire::parse_completion(d);
            }
        }
    }
}

//! Each request's prompt, a function of the seed and the request's index, so every machine sends
//! the same prompts in the same order.
//!
//! A prompt is a cache-busting tag followed by words drawn from a list of short, common English
//! words (each one token in the usual BPE vocabularies, so `input_tokens` words are about that
//! many tokens; the engine's own count is what `requests.csv` records). With
//! `dataset: shared_prefix` the prompt starts with its group's prefix and the tag follows it, so
//! an engine's prefix cache can serve the prefix but nothing after it.

use super::rng::{Purpose, Stream};
use super::spec::{TokenCount, Workload};

/// Short common words (single tokens with their leading space in GPT-2-style vocabularies).
const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "that",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "it",
    "an",
    "were",
    "are",
    "which",
    "this",
    "be",
    "or",
    "has",
    "had",
    "first",
    "one",
    "their",
    "its",
    "new",
    "after",
    "but",
    "who",
    "not",
    "they",
    "have",
    "her",
    "she",
    "two",
    "been",
    "other",
    "when",
    "there",
    "all",
    "during",
    "into",
    "school",
    "time",
    "may",
    "years",
    "more",
    "most",
    "only",
    "over",
    "city",
    "some",
    "world",
    "would",
    "where",
    "later",
    "up",
    "such",
    "used",
    "many",
    "can",
    "state",
    "about",
    "national",
    "out",
    "known",
    "university",
    "united",
    "then",
    "made",
    "also",
    "while",
    "him",
    "than",
    "three",
    "these",
    "both",
    "film",
    "team",
    "between",
    "under",
    "year",
    "part",
    "family",
    "series",
    "second",
    "season",
    "game",
    "well",
    "through",
    "early",
    "music",
    "house",
    "back",
    "work",
    "name",
    "people",
    "water",
    "small",
    "large",
    "north",
    "south",
    "east",
    "west",
    "river",
    "town",
    "light",
    "night",
    "day",
    "road",
    "book",
    "song",
    "green",
    "blue",
    "red",
    "black",
    "white",
    "field",
    "power",
    "line",
    "side",
    "life",
    "long",
    "high",
    "low",
    "old",
    "young",
    "great",
    "little",
    "own",
    "home",
    "land",
    "sea",
    "air",
    "fire",
    "stone",
    "tree",
    "wood",
    "hill",
    "lake",
    "park",
    "church",
    "king",
    "war",
    "art",
    "law",
    "case",
    "form",
    "group",
    "point",
    "end",
    "way",
    "place",
    "area",
    "rock",
    "club",
    "band",
    "radio",
    "love",
    "hand",
    "head",
    "eye",
    "face",
    "door",
    "room",
    "table",
    "car",
    "ship",
    "train",
    "plane",
    "bird",
    "fish",
    "dog",
    "cat",
    "horse",
    "food",
    "bread",
    "milk",
    "tea",
    "coffee",
    "gold",
    "iron",
    "glass",
    "paper",
    "money",
    "price",
    "market",
    "trade",
    "bank",
    "station",
    "bridge",
    "tower",
    "castle",
    "garden",
    "island",
    "valley",
];

/// Estimated tokens of the `[xxxxxxxxxxxxxxxx]` tag (not taken off the word count).
pub const TAG_TOKENS: u32 = 9;

/// One request's prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPrompt {
    pub text: String,
    /// Words after the tag (and after the prefix, for shared-prefix prompts).
    pub input_words: u32,
    /// The shared-prefix group, if any.
    pub group: Option<u32>,
}

/// The number of words request `index` asks for.
pub fn input_words(w: &Workload, stream: &mut Stream) -> u32 {
    match w.input_tokens {
        TokenCount::Fixed(n) => n,
        TokenCount::Normal(d) => (d.mean + d.sd * stream.normal()).round().clamp(1.0, 10.0 * d.mean.max(1.0)) as u32,
    }
}

fn push_words(out: &mut String, n: u32, stream: &mut Stream) {
    for i in 0..n {
        if i > 0 || !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[stream.below(WORDS.len())]);
    }
}

/// The prefix of shared-prefix group `g`.
pub fn prefix(w: &Workload, g: u32) -> String {
    let tokens = w.shared_prefix.map_or(0, |p| p.tokens);
    let mut out = String::new();
    push_words(&mut out, tokens, &mut Stream::new(w.seed, Purpose::Prefix(g)));
    out
}

/// 16 hex digits from the nonce and the index; differs between consecutive requests from the
/// first digit on, so a prefix cache holds nothing past the tag.
fn tag(w: &Workload, index: u64) -> String {
    let mut s = Stream::new(w.seed, Purpose::Prompt(index));
    let mut h = s.next_u64();
    if let Some(nonce) = &w.prompt_nonce {
        h ^= crate::hash::mix(crate::hash::fnv1a(nonce.as_bytes()));
    }
    format!("[{h:016x}]")
}

/// The prompt of request `index` (warm-up requests included: they count from 0 like the rest).
pub fn request_prompt(w: &Workload, index: u64) -> RequestPrompt {
    let mut stream = Stream::new(w.seed, Purpose::Prompt(index));
    // The first draw is the tag's; the words come after it.
    let _ = stream.next_u64();
    let words = input_words(w, &mut stream);
    let group = w.shared_prefix.map(|p| (index % u64::from(p.groups.max(1))) as u32);
    let mut text = String::new();
    if let Some(g) = group {
        text.push_str(&prefix(w, g));
        text.push(' ');
    }
    text.push_str(&tag(w, index));
    push_words(&mut text, words, &mut stream);
    RequestPrompt { text, input_words: words, group }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::spec::Arrival;
    use crate::load::spec::{Length, SharedPrefix, TokenDist, Warmup};

    fn workload(input: TokenCount, shared: Option<SharedPrefix>, nonce: Option<&str>) -> Workload {
        Workload {
            model: "m".into(),
            arrival: Arrival::Poisson,
            burstiness: 1.0,
            input_tokens: input,
            max_tokens: 8,
            shared_prefix: shared,
            seed: 3,
            temperature: 0.0,
            num_ctx: 512,
            prompt_nonce: nonce.map(str::to_owned),
            length: Length::Requests(10),
            warmup: Warmup::None,
        }
    }

    #[test]
    fn prompts_are_a_function_of_seed_and_index() {
        let w = workload(TokenCount::Fixed(20), None, None);
        let (a, b) = (request_prompt(&w, 0), request_prompt(&w, 1));
        assert_eq!(a, request_prompt(&w, 0));
        assert_ne!(a.text, b.text);
        assert!(a.text.starts_with('[') && a.text[1..3] != b.text[1..3], "{} / {}", a.text, b.text);
        assert_eq!(a.text.split(' ').count(), 21, "{}", a.text);
        let n = request_prompt(&workload(TokenCount::Fixed(20), None, Some("run1")), 0);
        assert_ne!(n.text[..18], a.text[..18], "the nonce changes the tag");
        assert_eq!(n.text[18..], a.text[18..], "but not the words");
    }

    #[test]
    fn normal_lengths_scatter_around_the_mean() {
        let w = workload(TokenCount::Normal(TokenDist { mean: 100.0, sd: 10.0 }), None, None);
        let lens: Vec<f64> = (0..2000).map(|i| request_prompt(&w, i).input_words as f64).collect();
        let mean = lens.iter().sum::<f64>() / lens.len() as f64;
        let sd = (lens.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (lens.len() - 1) as f64).sqrt();
        assert!((mean - 100.0).abs() < 1.5 && (sd - 10.0).abs() < 1.0, "{mean} {sd}");
    }

    #[test]
    fn shared_prefix_groups_share_their_prefix_and_differ_after_it() {
        let w = workload(TokenCount::Fixed(5), Some(SharedPrefix { groups: 2, tokens: 30 }), None);
        let p = [0, 1, 2, 3].map(|i| request_prompt(&w, i));
        assert_eq!(p.iter().map(|r| r.group).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(0), Some(1)]);
        let prefix0 = prefix(&w, 0);
        assert_eq!(prefix0.split(' ').count(), 30);
        assert!(p[0].text.starts_with(&prefix0) && p[2].text.starts_with(&prefix0));
        assert!(!p[1].text.starts_with(&prefix0));
        assert_ne!(p[0].text, p[2].text);
        assert_eq!(p[0].text[prefix0.len()..].chars().nth(1), Some('['));
    }
}

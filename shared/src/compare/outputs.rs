//! Output equivalence: at temperature 0 (the agent always sends a seed), the same model should
//! write the same text on every machine; where it does not, say where the texts part.

use serde::{Deserialize, Serialize};

use super::Prepared;

/// `comparison.outputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outputs {
    /// True when the outputs were compared (temperature 0 and at least two texts).
    pub compared: bool,
    /// Machine ids grouped by identical first-repeat text (one group: all identical).
    pub identical_groups: Vec<Vec<String>>,
    /// Where the first two groups' texts part.
    pub first_divergence: Option<Divergence>,
    /// Why the outputs were not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// One machine of each of the first two groups.
    pub machines: [String; 2],
    /// Character index where the texts first differ.
    pub char_index: usize,
    /// Up to 40 characters of each text from that point.
    pub excerpts: [String; 2],
}

const EXCERPT_CHARS: usize = 40;

pub(super) fn compare_outputs(machines: &[Prepared<'_>], temperature: f64) -> Outputs {
    let texts: Vec<(&str, &str)> =
        machines.iter().filter_map(|m| m.input.output_text.as_deref().map(|t| (m.id(), t))).collect();
    let not = |reason: &str| Outputs {
        compared: false,
        identical_groups: Vec::new(),
        first_divergence: None,
        reason: Some(reason.to_owned()),
    };
    if temperature != 0.0 {
        return not("temperature is above 0: outputs may differ by design");
    }
    if texts.len() < 2 {
        return not("fewer than two machines produced text");
    }
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for (id, text) in &texts {
        match groups.iter_mut().find(|g| g.0 == *text) {
            Some(g) => g.1.push((*id).to_owned()),
            None => groups.push((text, vec![(*id).to_owned()])),
        }
    }
    let first_divergence = (groups.len() > 1).then(|| {
        let (a, b) = (groups[0].0, groups[1].0);
        let char_index = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        let excerpt = |t: &str| t.chars().skip(char_index).take(EXCERPT_CHARS).collect::<String>();
        Divergence {
            machines: [groups[0].1[0].clone(), groups[1].1[0].clone()],
            char_index,
            excerpts: [excerpt(a), excerpt(b)],
        }
    });
    Outputs {
        compared: true,
        identical_groups: groups.into_iter().map(|g| g.1).collect(),
        first_divergence,
        reason: None,
    }
}

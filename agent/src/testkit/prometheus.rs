//! A strict reader of the Prometheus / OpenMetrics text exposition format, for the `/metrics`
//! tests of agent and central (it panics on anything malformed).

use std::collections::BTreeMap;

/// A strict reader of the Prometheus / OpenMetrics text format: every sample belongs to a family
/// declared by `# TYPE` before it, names and labels are well formed, values are numbers.
/// Returns `name{labels}` → value.
pub fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut families: Vec<String> = Vec::new();
    let mut samples = BTreeMap::new();
    let mut saw_eof = false;
    for line in text.lines() {
        assert!(!saw_eof, "nothing may follow # EOF: {line:?}");
        if line == "# EOF" {
            saw_eof = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "bad family name {name:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "unknown", "info", "stateset"].contains(&kind),
                "{line}"
            );
            families.push(name.to_owned());
        } else if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
        } else {
            assert!(!line.starts_with('#'), "unknown comment {line:?}");
            let (series, value) = line.rsplit_once(' ').expect("sample: series value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let name = series.split('{').next().unwrap();
            assert!(valid_name(name), "bad metric name in {line:?}");
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect("labels in braces");
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').expect("label k=v");
                    assert!(
                        valid_name(k) && v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                        "bad label {pair:?}"
                    );
                }
            }
            let family = families.iter().filter(|f| name.starts_with(f.as_str())).max_by_key(|f| f.len());
            assert!(family.is_some(), "sample {name} before its # TYPE");
            samples.insert(series.to_owned(), value);
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_well_formed_text() {
        let s = parse_exposition(
            "# HELP x_total Things.\n# TYPE x counter\nx_total{status=\"done\",gpu=\"0\"} 3\n# TYPE h histogram\n\
             h_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 0.5\n# EOF\n",
        );
        assert_eq!((s["x_total{status=\"done\",gpu=\"0\"}"], s["h_count"], s["h_sum"]), (3.0, 2.0, 0.5));
    }

    #[test]
    #[should_panic(expected = "before its # TYPE")]
    fn rejects_a_sample_without_its_family() {
        parse_exposition("y 1\n");
    }

    #[test]
    #[should_panic(expected = "bad label")]
    fn rejects_an_unquoted_label() {
        parse_exposition("# TYPE x gauge\nx{a=b} 1\n");
    }

    #[test]
    #[should_panic(expected = "bad value")]
    fn rejects_a_non_number() {
        parse_exposition("# TYPE x gauge\nx one\n");
    }
}

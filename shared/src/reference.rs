//! Keeps the reference in `docs/` true to the code: the config keys a parser accepts and the
//! event kinds an enum has, read from serde's own error messages (never a hand-kept list), and
//! which of them a document lacks.
//!
//! A `deny_unknown_fields` struct answers an unknown key with "unknown field `x`, expected one of
//! `a`, `b`, …"; a tagged enum answers an unknown tag with "unknown variant `x`, expected one of
//! …". [`config_keys`] feeds a parser a probe key at every level and follows each key that turns
//! out to be a section (a map, or a list of maps) down to its own keys. The tests of the crates
//! that own the types (agent.yaml in `bench-agent`, machines.yaml in `bench-central`, events here)
//! check `docs/configuration.md` and `docs/events.md` with [`undocumented`].

/// The key or tag no struct or enum has: what serde then lists is everything it accepts.
pub const PROBE: &str = "__probe__";

/// The names serde lists after "unknown `what` `__probe__`" (`what`: `field` or `variant`), in
/// its order; `None` when the message is not that error.
pub fn expected_names(message: &str, what: &str) -> Option<Vec<String>> {
    let marker = format!("unknown {what} `{PROBE}`");
    let rest = &message[message.find(&marker)? + marker.len()..];
    if rest.starts_with(", there are no") {
        return Some(Vec::new());
    }
    // serde's `OneOf`: "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
    let mut rest = rest.strip_prefix(", expected ")?;
    rest = rest.strip_prefix("one of ").unwrap_or(rest);
    let mut names = Vec::new();
    while let Some(body) = rest.strip_prefix('`') {
        let end = body.find('`')?;
        names.push(body[..end].to_owned());
        rest = &body[end + 1..];
        match [", ", " or "].iter().find_map(|sep| rest.strip_prefix(sep)) {
            Some(r) => rest = r,
            None => break,
        }
    }
    (!names.is_empty()).then_some(names)
}

/// One step into a config file: a key of a map, or the items of a list.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Items,
}

/// Every key a config parser accepts, nested ones as `section.key` and list items as
/// `section[].key` (e.g. `engine.mock.ttft_ms`, `machines[].token`). `parse` parses YAML text
/// and returns its error message (`None` when it parsed). The probe documents are JSON, which
/// is also YAML.
pub fn config_keys(parse: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(fields) = fields_at(parse, &[]) {
        walk(parse, &mut Vec::new(), fields, &mut out);
    }
    out
}

/// Sections nest this deep at most (a recursive type would otherwise never end).
const MAX_DEPTH: usize = 8;

fn walk(parse: &dyn Fn(&str) -> Option<String>, path: &mut Vec<Step>, fields: Vec<String>, out: &mut Vec<String>) {
    for field in fields {
        path.push(Step::Key(field));
        out.push(dotted(path));
        if path.len() < MAX_DEPTH {
            if let Some(inner) = fields_at(parse, path) {
                walk(parse, path, inner, out);
            } else {
                path.push(Step::Items);
                if let Some(inner) = fields_at(parse, path) {
                    walk(parse, path, inner, out);
                }
                path.pop();
            }
        }
        path.pop();
    }
}

/// The keys of the section at `path`, if it is a struct that rejects unknown keys.
fn fields_at(parse: &dyn Fn(&str) -> Option<String>, path: &[Step]) -> Option<Vec<String>> {
    expected_names(&parse(&probe_document(path))?, "field")
}

/// `{"a": {"b": [{"__probe__": 1}]}}` for the path `a`, `b`, items.
fn probe_document(path: &[Step]) -> String {
    path.iter().rev().fold(format!("{{\"{PROBE}\": 1}}"), |inner, step| match step {
        Step::Key(k) => format!("{{\"{k}\": {inner}}}"),
        Step::Items => format!("[{inner}]"),
    })
}

fn dotted(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Items => s.push_str("[]"),
        }
    }
    s
}

/// The names that do not appear in `doc` as code (`` `name` ``), in the given order.
pub fn undocumented<'a>(doc: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names.into_iter().filter(|n| !doc.contains(&format!("`{n}`"))).map(str::to_owned).collect()
}

/// The text of `docs/<name>` in this workspace (the crates sit one folder below its root).
pub fn read_doc(manifest_dir: &str, name: &str) -> String {
    let path = std::path::Path::new(manifest_dir).join("../docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        name: String,
        #[serde(default)]
        limits: Option<Limits>,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        max: u32,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        depth: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        id: String,
        weight: f64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Slow,
    }

    fn parse(text: &str) -> Option<String> {
        serde_json::from_str::<File>(text).err().map(|e| e.to_string())
    }

    #[test]
    fn config_keys_follow_sections_and_lists_of_sections_and_stop_at_values() {
        assert_eq!(
            config_keys(&parse),
            [
                "name",
                "limits",
                "limits.max",
                "limits.inner",
                "limits.inner.depth",
                "items",
                "items[].id",
                "items[].weight",
                "tags",
                "mode"
            ]
        );
    }

    #[test]
    fn expected_names_reads_every_form_of_serdes_list() {
        let names = |m: &str, what| expected_names(m, what);
        assert_eq!(
            names("unknown field `__probe__`, expected one of `a`, `b`, `c` at line 1 column 2", "field").unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(names("unknown variant `__probe__`, expected `a` or `b`", "variant").unwrap(), ["a", "b"]);
        assert_eq!(names("unknown field `__probe__`, expected `only`", "field").unwrap(), ["only"]);
        assert_eq!(names("unknown field `__probe__`, there are no fields", "field").unwrap(), Vec::<String>::new());
        assert_eq!(names("invalid type: map, expected a string", "field"), None);
        assert_eq!(names("unknown field `other`, expected `a`", "field"), None);
    }

    #[test]
    fn undocumented_names_what_the_doc_lacks_as_code() {
        let doc = "| `engine.kind` | … |\nthe engine, and `label`";
        assert_eq!(undocumented(doc, ["engine.kind", "engine", "label"]), ["engine"]);
    }
}

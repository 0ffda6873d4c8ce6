//! Splicing one member of a JSON object without touching the rest: members are read in document
//! order with their values kept as the original JSON text, so numbers, key order and unrelated
//! fields come back byte for byte (only whitespace between members is dropped).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's members in document order (duplicate keys kept).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for MembersVisitor<'a> {
            type Value = Members<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor(std::marker::PhantomData))
    }
}

fn members(json: &str) -> Result<Members<'_>, String> {
    serde_json::from_str(json).map_err(|e| {
        if e.is_data() {
            "value is not a JSON object".to_string()
        } else {
            format!("value is not JSON: {e}")
        }
    })
}

/// Checks that `json` is one JSON object (and nothing else).
pub fn check(json: &str) -> Result<(), String> {
    members(json).map(|_| ())
}

/// What a splice function decides for one member's JSON text.
pub type Splice<'f> = dyn FnMut(&str) -> Result<Option<String>, String> + 'f;

/// Calls `splice` with the JSON text of every member at `path` (`["a", "b"]` is `a.b`) in the
/// object `json`, and returns the object rewritten with the texts it returned, or `None` when
/// it changed nothing. A path through something that is not an object is skipped; `json`
/// itself not being a JSON object is an error.
pub fn splice(
    json: &str,
    path: &[&str],
    splice_member: &mut Splice<'_>,
) -> Result<Option<String>, String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let members = members(json)?;
    let mut changed = false;
    let mut texts: Vec<(String, std::borrow::Cow<'_, str>)> = Vec::with_capacity(members.0.len());
    for (name, raw) in members.0 {
        let text = raw.get();
        let replacement = if name != *first {
            None
        } else if rest.is_empty() {
            splice_member(text)?
        } else if text.trim_start().starts_with('{') {
            splice(text, rest, splice_member)?
        } else {
            None
        };
        changed |= replacement.is_some();
        texts.push((name, replacement.map_or(text.into(), Into::into)));
    }
    if !changed {
        return Ok(None);
    }
    let mut out = String::with_capacity(json.len());
    out.push('{');
    for (i, (name, text)) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).map_err(|e| e.to_string())?);
        out.push(':');
        out.push_str(text);
    }
    out.push('}');
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(text: &str) -> Result<Option<String>, String> {
        Ok(Some(format!(
            "\"{}\"",
            text.trim_matches('"').to_uppercase()
        )))
    }

    #[test]
    fn only_the_member_changes() {
        let json = r#"{"z": 1.50, "card": "abc", "a": {"card": "x"}, "card": "def"}"#;
        let out = splice(json, &["card"], &mut upper).unwrap().unwrap();
        assert_eq!(
            out,
            r#"{"z":1.50,"card":"ABC","a":{"card": "x"},"card":"DEF"}"#
        );
    }

    #[test]
    fn nested_paths_and_misses() {
        let json = r#"{"a": {"b": "x", "c": 2}, "d": "e"}"#;
        assert_eq!(
            splice(json, &["a", "b"], &mut upper).unwrap().unwrap(),
            r#"{"a":{"b":"X","c":2},"d":"e"}"#
        );
        assert_eq!(splice(json, &["d", "b"], &mut upper).unwrap(), None);
        assert_eq!(splice(json, &["nope"], &mut upper).unwrap(), None);
        assert_eq!(
            splice(r#"{"k\"ey": "v"}"#, &["k\"ey"], &mut upper)
                .unwrap()
                .unwrap(),
            r#"{"k\"ey":"V"}"#
        );
    }

    #[test]
    fn non_objects_are_errors() {
        assert_eq!(
            splice("[1]", &["a"], &mut upper).unwrap_err(),
            "value is not a JSON object"
        );
        assert_eq!(
            splice("\"s\"", &["a"], &mut upper).unwrap_err(),
            "value is not a JSON object"
        );
        assert!(splice("{\"a\": ", &["a"], &mut upper)
            .unwrap_err()
            .starts_with("value is not JSON"));
        assert!(splice("{} x", &["a"], &mut upper).is_err());
    }
}

//! Splicing members of a JSON object without touching the rest: members are read in document
//! order with their values kept as the original JSON text, so numbers, key order and unrelated
//! fields come back byte for byte (only whitespace between members is dropped). One parse per
//! object level serves every configured path.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A member name, borrowed from the input unless it contains escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for NameVisitor<'a> {
            type Value = Name<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
        }

        deserializer.deserialize_str(NameVisitor(std::marker::PhantomData))
    }
}

/// A JSON object's members in document order (duplicate names kept).
struct Members<'a>(Vec<(Name<'a>, &'a RawValue)>);

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
                while let Some(member) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor(std::marker::PhantomData))
    }
}

/// Why a splice failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceError {
    /// The value itself is not a JSON object.
    NotAnObject(String),
    /// The splice function refused a member.
    Member(String),
}

impl fmt::Display for SpliceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpliceError::NotAnObject(reason) | SpliceError::Member(reason) => f.write_str(reason),
        }
    }
}

/// A path to splice: an id handed back to the splice function, and the member names leading
/// to the member (`["a", "b"]` for `a.b`). No path may be a prefix of another.
pub type Path<'p> = (usize, &'p [String]);

/// What the splice function returns for one member's JSON text: its replacement, if any.
pub type Splice<'f> = dyn FnMut(usize, &str) -> Result<Option<String>, String> + 'f;

/// Calls `splice` with the JSON text of every member at one of `paths` in the object `json`,
/// and returns the object rewritten with the texts it returned, or `None` when it changed
/// nothing. A path through something that is not an object is skipped.
pub fn splice(
    json: &str,
    paths: &[Path<'_>],
    splice_member: &mut Splice<'_>,
) -> Result<Option<String>, SpliceError> {
    let members: Members<'_> = serde_json::from_str(json).map_err(|e| {
        SpliceError::NotAnObject(if e.is_data() {
            "value is not a JSON object".to_string()
        } else {
            format!("value is not JSON: {e}")
        })
    })?;
    let mut replacements: Vec<Option<String>> = Vec::new();
    for (name, raw) in &members.0 {
        let name = name.0.as_ref();
        let mut replacement = None;
        let mut deeper: Vec<Path<'_>> = Vec::new();
        for (id, segments) in paths {
            match segments.split_first() {
                Some((first, rest)) if first == name => {
                    if rest.is_empty() {
                        replacement = splice_member(*id, raw.get()).map_err(SpliceError::Member)?;
                    } else {
                        deeper.push((*id, rest));
                    }
                }
                _ => {}
            }
        }
        if replacement.is_none() && !deeper.is_empty() && raw.get().trim_start().starts_with('{') {
            replacement = splice(raw.get(), &deeper, splice_member).or_else(|e| match e {
                // Not an object after all: nothing to splice inside it.
                SpliceError::NotAnObject(_) => Ok(None),
                member => Err(member),
            })?;
        }
        replacements.push(replacement);
    }
    if replacements.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = String::with_capacity(json.len() + 64);
    out.push('{');
    for (i, ((name, raw), replacement)) in members.0.iter().zip(&replacements).enumerate() {
        if i > 0 {
            out.push(',');
        }
        match &name.0 {
            // A borrowed name had no escapes: quote it as it was.
            Cow::Borrowed(plain) => {
                out.push('"');
                out.push_str(plain);
                out.push('"');
            }
            Cow::Owned(unescaped) => out.push_str(
                &serde_json::to_string(unescaped)
                    .map_err(|e| SpliceError::Member(e.to_string()))?,
            ),
        }
        out.push(':');
        out.push_str(replacement.as_deref().unwrap_or(raw.get()));
    }
    out.push('}');
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(_id: usize, text: &str) -> Result<Option<String>, String> {
        Ok(Some(format!(
            "\"{}\"",
            text.trim_matches('"').to_uppercase()
        )))
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    fn run(json: &str, paths: &[&str]) -> Result<Option<String>, SpliceError> {
        let owned: Vec<Vec<String>> = paths.iter().map(|p| path(p)).collect();
        let paths: Vec<Path<'_>> = owned
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.as_slice()))
            .collect();
        splice(json, &paths, &mut upper)
    }

    #[test]
    fn only_the_members_change() {
        let json = r#"{"z": 1.50, "card": "abc", "a": {"card": "x"}, "card": "def"}"#;
        let out = run(json, &["card"]).unwrap().unwrap();
        assert_eq!(
            out,
            r#"{"z":1.50,"card":"ABC","a":{"card": "x"},"card":"DEF"}"#
        );
    }

    #[test]
    fn nested_paths_and_misses() {
        let json = r#"{"a": {"b": "x", "c": "y", "d": 2}, "d": "e"}"#;
        assert_eq!(
            run(json, &["a.b", "a.c", "d"]).unwrap().unwrap(),
            r#"{"a":{"b":"X","c":"Y","d":2},"d":"E"}"#
        );
        assert_eq!(run(json, &["d.b"]).unwrap(), None);
        assert_eq!(run(json, &["nope"]).unwrap(), None);
        assert_eq!(run(r#"{"a": [1]}"#, &["a.b"]).unwrap(), None);
        assert_eq!(
            run(r#"{"k\"ey": "v", "x\u00e9": 1}"#, &["k\"ey"])
                .unwrap()
                .unwrap(),
            r#"{"k\"ey":"V","xé":1}"#
        );
    }

    #[test]
    fn non_objects_are_errors() {
        let not_object = SpliceError::NotAnObject("value is not a JSON object".to_string());
        assert_eq!(run("[1]", &["a"]).unwrap_err(), not_object);
        assert_eq!(run("\"s\"", &["a"]).unwrap_err(), not_object);
        assert!(run("{\"a\": ", &["a"])
            .unwrap_err()
            .to_string()
            .starts_with("value is not JSON"));
        assert!(run("{} x", &["a"]).is_err());
    }

    #[test]
    fn member_errors_are_not_object_errors() {
        let mut refuse = |_: usize, _: &str| -> Result<Option<String>, String> { Err("no".into()) };
        let p = path("a.b");
        let err = splice(r#"{"a": {"b": 1}}"#, &[(0, p.as_slice())], &mut refuse).unwrap_err();
        assert_eq!(err, SpliceError::Member("no".to_string()));
    }
}

//! Replacing members of a JSON object without touching the rest: [`locate`] finds where the
//! configured members' values are in the original text (one parse per object level serves
//! every path), [`rewrite`] swaps those byte ranges, so numbers, key order, whitespace and
//! unrelated fields come back byte for byte.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

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

/// Why finding or rewriting members failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceError {
    /// The value itself is not a JSON object.
    NotAnObject(String),
}

impl fmt::Display for SpliceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpliceError::NotAnObject(reason) => f.write_str(reason),
        }
    }
}

/// A configured path: an id handed back with each match, and the member names leading to the
/// member (`["a", "b"]` for `a.b`). No path may be a prefix of another.
pub type Path<'p> = (usize, &'p [String]);

/// One member found at a configured path: the path's id and where the member's value text is
/// in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: usize,
    pub range: Range<usize>,
}

/// Finds the value of every member at one of `paths` in the object `json` (every occurrence,
/// should a name repeat), in document order. A path through something that is not an object
/// matches nothing. Finding and rewriting are separate so a plugin can collect the members of
/// a whole batch and encrypt them in one host call. Appends to `found` (one list serves a
/// whole batch); on error `found` is as it was.
pub fn locate_into(
    json: &str,
    paths: &[Path<'_>],
    found: &mut Vec<Found>,
) -> Result<(), SpliceError> {
    let before = found.len();
    let located = locate_at(json, 0, paths, found);
    if located.is_err() {
        found.truncate(before);
    }
    located
}

fn locate_at(
    json: &str,
    base: usize,
    paths: &[Path<'_>],
    found: &mut Vec<Found>,
) -> Result<(), SpliceError> {
    let members: Members<'_> = serde_json::from_str(json).map_err(|e| {
        SpliceError::NotAnObject(if e.is_data() {
            "value is not a JSON object".to_string()
        } else {
            format!("value is not JSON: {e}")
        })
    })?;
    for (name, raw) in &members.0 {
        let name = name.0.as_ref();
        let text = raw.get();
        // `RawValue` borrows from `json`: its position is its address minus the document's
        // (checked to lie inside it; comparing the bytes would cost more than the parse).
        let start = (text.as_ptr() as usize)
            .checked_sub(json.as_ptr() as usize)
            .filter(|s| json.is_char_boundary(*s) && json.is_char_boundary(s + text.len()))
            .ok_or_else(|| SpliceError::NotAnObject("value is not JSON".to_string()))?;
        let mut deeper: Vec<Path<'_>> = Vec::new();
        for (id, segments) in paths {
            match segments.split_first() {
                Some((first, rest)) if first == name => {
                    if rest.is_empty() {
                        found.push(Found {
                            id: *id,
                            range: base + start..base + start + text.len(),
                        });
                    } else {
                        deeper.push((*id, rest));
                    }
                }
                _ => {}
            }
        }
        if !deeper.is_empty() && text.starts_with('{') {
            locate_at(text, base + start, &deeper, found)?;
        }
    }
    Ok(())
}

/// Appends `json` to `out` with the value of each of `members` replaced by what `write`
/// appends for it; everything else is kept byte for byte. `members` are in document order and
/// do not overlap (what [`locate_into`] finds).
pub fn rewrite_into(
    json: &str,
    members: &[Found],
    out: &mut String,
    mut write: impl FnMut(&Found, &mut String) -> Result<(), String>,
) -> Result<(), String> {
    let mut at = 0;
    for m in members {
        let before = json
            .get(at..m.range.start)
            .ok_or_else(|| "overlapping members".to_string())?;
        out.push_str(before);
        write(m, out)?;
        at = m.range.end;
    }
    out.push_str(json.get(at..).unwrap_or_default());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locate(json: &str, paths: &[Path<'_>]) -> Result<Vec<Found>, SpliceError> {
        let mut found = Vec::new();
        locate_into(json, paths, &mut found).map(|()| found)
    }

    fn upper(json: &str, found: &[Found]) -> String {
        let mut out = String::new();
        rewrite_into(json, found, &mut out, |f, out| {
            let text = json[f.range.clone()].trim_matches('"').to_uppercase();
            out.push_str(&format!("\"{text}\""));
            Ok(())
        })
        .unwrap();
        out
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
        let found = locate(json, &paths)?;
        Ok((!found.is_empty()).then(|| upper(json, &found)))
    }

    #[test]
    fn only_the_members_change() {
        let json = r#"{"z": 1.50, "card": "abc", "a": {"card": "x"}, "card": "def"}"#;
        let out = run(json, &["card"]).unwrap().unwrap();
        assert_eq!(
            out,
            r#"{"z": 1.50, "card": "ABC", "a": {"card": "x"}, "card": "DEF"}"#
        );
    }

    #[test]
    fn nested_paths_and_misses() {
        let json = r#"{"a": {"b": "x", "c": "y", "d": 2}, "d": "e"}"#;
        assert_eq!(
            run(json, &["a.b", "a.c", "d"]).unwrap().unwrap(),
            r#"{"a": {"b": "X", "c": "Y", "d": 2}, "d": "E"}"#
        );
        let found = locate(json, &[(5, &path("a.c")[..])]).unwrap();
        assert_eq!(
            found,
            vec![Found {
                id: 5,
                range: 22..25
            }]
        );
        assert_eq!(&json[22..25], "\"y\"");
        assert_eq!(run(json, &["d.b"]).unwrap(), None);
        assert_eq!(run(json, &["nope"]).unwrap(), None);
        assert_eq!(run(r#"{"a": [1]}"#, &["a.b"]).unwrap(), None);
        assert_eq!(
            run(r#"{"k\"ey": "v", "x\u00e9": 1}"#, &["k\"ey"])
                .unwrap()
                .unwrap(),
            r#"{"k\"ey": "V", "x\u00e9": 1}"#
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
        // A nested member that is malformed inside is caught by the outer parse.
        assert!(run(r#"{"a": {"b": }}"#, &["a.b"]).is_err());
    }

    #[test]
    fn overlapping_rewrites_are_refused() {
        let at = |range| Found { id: 0, range };
        let x = |_: &Found, out: &mut String| {
            out.push('X');
            Ok(())
        };
        let mut out = String::new();
        assert!(rewrite_into("abcdef", &[at(1..4), at(2..5)], &mut out, x).is_err());
        out.clear();
        rewrite_into("abcdef", &[at(1..2), at(4..6)], &mut out, x).unwrap();
        assert_eq!(out, "aXcdX");
    }

    #[test]
    fn a_failed_locate_leaves_the_list_as_it_was() {
        let p = path("a");
        let mut found = vec![Found { id: 9, range: 0..1 }];
        assert!(locate_into(r#"{"a": 1, "b": }"#, &[(0, &p[..])], &mut found).is_err());
        assert_eq!(found.len(), 1);
    }
}

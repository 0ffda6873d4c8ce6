//! Replacing members of a JSON object without touching the rest: [`locate_into`] finds where
//! the configured members' values are in the original text, [`rewrite_into`] swaps those byte
//! ranges, so numbers, key order, whitespace and unrelated fields come back byte for byte.
//!
//! The scanner is written by hand: it validates the whole document and finds members at any
//! depth in one pass, without allocating (serde_json's `RawValue` route parsed each nested
//! object again and built a member list per level; that was about a third of the plugin's
//! time).

use std::fmt;
use std::ops::Range;

/// Objects and arrays nested deeper than this are refused (serde_json's limit too): the
/// scanner recurses, and the guest's stack is small.
const MAX_DEPTH: usize = 128;

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
    let mut scanner = Scanner {
        b: json.as_bytes(),
        at: 0,
        depth: 0,
        found,
    };
    let located = scanner.document(paths);
    if located.is_err() {
        found.truncate(before);
    }
    located
}

/// Whether `text` is one JSON value (of any kind), whitespace around it allowed.
pub fn is_json(text: &str) -> bool {
    let mut none = Vec::new();
    let mut scanner = Scanner {
        b: text.as_bytes(),
        at: 0,
        depth: 0,
        found: &mut none,
    };
    scanner.ws();
    scanner.value(&[]).is_ok() && {
        scanner.ws();
        scanner.at == scanner.b.len()
    }
}

/// A syntax error, before it is worded for the record's rejection.
struct Syntax(&'static str, usize);

struct Scanner<'a, 'f> {
    b: &'a [u8],
    at: usize,
    depth: usize,
    found: &'f mut Vec<Found>,
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `x` ends a run of plain string bytes: `"`, `\\` or a control byte.
/// Each term has a byte's high bit set where that byte is below the subtrahend (exact as a
/// yes/no answer); one branch for the three tests.
fn any_special(x: u64) -> bool {
    let quote = x ^ (LOW * u64::from(b'"'));
    let backslash = x ^ (LOW * u64::from(b'\\'));
    let zero_quote = quote.wrapping_sub(LOW) & !quote;
    let zero_backslash = backslash.wrapping_sub(LOW) & !backslash;
    let control = x.wrapping_sub(LOW * 0x20) & !x;
    (zero_quote | zero_backslash | control) & HIGH != 0
}

impl Scanner<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Syntax> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Syntax(what, self.at))
        }
    }

    /// The whole value: an object, with nothing but whitespace around it.
    fn document(&mut self, paths: &[Path<'_>]) -> Result<(), SpliceError> {
        let word = |Syntax(what, at): Syntax| {
            SpliceError::NotAnObject(format!("value is not JSON: {what} at byte {at}"))
        };
        self.ws();
        let object = self.peek() == Some(b'{');
        self.value(if object { paths } else { &[] }).map_err(word)?;
        self.ws();
        if self.at != self.b.len() {
            return Err(word(Syntax("trailing characters", self.at)));
        }
        if !object {
            return Err(SpliceError::NotAnObject(
                "value is not a JSON object".to_string(),
            ));
        }
        Ok(())
    }

    /// One value at the cursor; `paths` apply to its members if it is an object.
    fn value(&mut self, paths: &[Path<'_>]) -> Result<(), Syntax> {
        match self.peek() {
            Some(b'{') => self.nested(|s| s.object(paths)),
            Some(b'[') => self.nested(Scanner::array),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Syntax("expected a value", self.at)),
        }
    }

    fn nested(
        &mut self,
        inner: impl FnOnce(&mut Self) -> Result<(), Syntax>,
    ) -> Result<(), Syntax> {
        if self.depth >= MAX_DEPTH {
            return Err(Syntax("nested too deeply", self.at));
        }
        self.depth += 1;
        let result = inner(self);
        self.depth -= 1;
        result
    }

    fn object(&mut self, paths: &[Path<'_>]) -> Result<(), Syntax> {
        self.items(b'}', "expected `,` or `}`", |s| s.member(paths))
    }

    fn array(&mut self) -> Result<(), Syntax> {
        self.items(b']', "expected `,` or `]`", |s| s.value(&[]))
    }

    /// The items of an object or array after its opening byte, separated by commas, up to
    /// and including `close`.
    fn items(
        &mut self,
        close: u8,
        expected: &'static str,
        mut item: impl FnMut(&mut Self) -> Result<(), Syntax>,
    ) -> Result<(), Syntax> {
        self.at += 1; // `{` or `[`
        self.ws();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.at += 1;
                    self.ws();
                }
                Some(c) if c == close => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Syntax(expected, self.at)),
            }
        }
    }

    /// One `"name": value` member; its value is found if it ends one of `paths`.
    fn member(&mut self, paths: &[Path<'_>]) -> Result<(), Syntax> {
        let name = self.string()?;
        self.ws();
        self.expect(b':', "expected `:`")?;
        self.ws();
        let start = self.at;
        // Paths continuing below this member (rarely more than one: no allocation unless a
        // configured path goes through it).
        let mut deeper: Vec<Path<'_>> = Vec::new();
        // No path is a prefix of another: a member ends at most one, and then no path goes
        // below it.
        let mut hit = None;
        for (id, segments) in paths {
            if let Some((first, rest)) = segments.split_first() {
                if name.is(first, self.b) {
                    if rest.is_empty() {
                        hit = hit.or(Some(*id));
                    } else {
                        deeper.push((*id, rest));
                    }
                }
            }
        }
        let into = if self.peek() == Some(b'{') {
            &deeper[..]
        } else {
            &[]
        };
        self.value(into)?;
        if let Some(id) = hit {
            self.found.push(Found {
                id,
                range: start..self.at,
            });
        }
        Ok(())
    }

    /// A string at the cursor (which must be at its `"`): where its content is, and whether
    /// it has escapes.
    fn string(&mut self) -> Result<Name, Syntax> {
        self.expect(b'"', "expected a string")?;
        let start = self.at;
        let mut escaped = false;
        loop {
            // Eight plain bytes at a time (most of a value is plain string bytes).
            let mut rest = self.b.get(self.at..).unwrap_or_default();
            while let Some((chunk, after)) = rest.split_first_chunk::<8>() {
                if any_special(u64::from_le_bytes(*chunk)) {
                    break;
                }
                rest = after;
            }
            self.at = self.b.len() - rest.len();
            match self.peek() {
                Some(b'"') => {
                    let name = Name {
                        range: start..self.at,
                        escaped,
                    };
                    self.at += 1;
                    return Ok(name);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.at += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1;
                        }
                        Some(b'u') => {
                            let hex = self.b.get(self.at + 1..self.at + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(Syntax("bad \\u escape", self.at));
                            }
                            self.at += 5;
                        }
                        _ => return Err(Syntax("bad escape", self.at)),
                    }
                }
                Some(0..0x20) => return Err(Syntax("control character in a string", self.at)),
                Some(_) => self.at += 1,
                None => return Err(Syntax("unterminated string", self.at)),
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Syntax> {
        if self.b.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Syntax("expected a value", self.at))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), Syntax> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Syntax("bad number", self.at)),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(Syntax("bad number", self.at));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(Syntax("bad number", self.at));
            }
        }
        Ok(())
    }
}

/// A member name as it appears in the document (between its quotes).
struct Name {
    range: Range<usize>,
    escaped: bool,
}

impl Name {
    /// Whether the name is `wanted`; a name with escapes is decoded first (rare).
    fn is(&self, wanted: &str, doc: &[u8]) -> bool {
        let Some(raw) = doc.get(self.range.clone()) else {
            return false;
        };
        if !self.escaped {
            return raw == wanted.as_bytes();
        }
        let quoted = doc.get(self.range.start.saturating_sub(1)..self.range.end + 1);
        quoted
            .and_then(|q| serde_json::from_slice::<String>(q).ok())
            .is_some_and(|decoded| decoded == wanted)
    }
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

    /// The hand-written scanner accepts exactly what serde_json accepts: fixed edge cases,
    /// then many random strings over JSON's alphabet (a deterministic generator).
    #[test]
    fn the_scanner_agrees_with_serde_json() {
        let agrees = |s: &str| {
            let theirs = serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok();
            assert_eq!(is_json(s), theirs, "{s:?}");
            if s.trim_start().starts_with('{') {
                assert_eq!(locate(s, &[]).is_ok(), theirs, "{s:?}");
            }
        };
        let deep_ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let too_deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        for s in [
            "{}",
            " { } ",
            "{\"a\":1}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\" 1}",
            "{\"a\":}",
            "[1,2]",
            "[1,]",
            "01",
            "-0",
            "-0.0",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+5",
            "1E-5",
            "1.5e3",
            "+1",
            "tru",
            "true",
            "nulll",
            "null",
            "false",
            "\"\\u12G4\"",
            "\"\\u00e9\"",
            "\"\\x\"",
            "\"a\tb\"",
            "\"a\\tb\"",
            "\"\\/\"",
            "\"unterminated",
            "\"é ✓\"",
            "\"\\uD800\"",
            "{\"a\":{\"b\":[{\"c\":\"d\"}]}}",
            "{} x",
            "",
            "   ",
            "{\"a\":1}}",
            "[[]",
            &deep_ok,
            "\"0123456789abcdef\\\"0123456789\"",
            "{\"k\\\"ey\": \"v\"}",
        ] {
            agrees(s);
        }
        // Unlike serde_json skipping a value, the scanner limits nesting (it recurses).
        assert!(!is_json(&too_deep));
        let deep_object = format!("{}{}", "{\"a\":".repeat(129), "}".repeat(129));
        assert!(locate(&deep_object, &[])
            .unwrap_err()
            .to_string()
            .contains("nested too deeply"));
        let alphabet: Vec<char> = "{}[]\":,0123456789-+.eEtrufalsn \\u/bDd\n\t"
            .chars()
            .collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50_000 {
            let len = (next() % 14) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            agrees(&s);
        }
    }

    #[test]
    fn a_failed_locate_leaves_the_list_as_it_was() {
        let p = path("a");
        let mut found = vec![Found { id: 9, range: 0..1 }];
        assert!(locate_into(r#"{"a": 1, "b": }"#, &[(0, &p[..])], &mut found).is_err());
        assert_eq!(found.len(), 1);
    }
}

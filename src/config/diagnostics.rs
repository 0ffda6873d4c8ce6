//! Where in a config file each problem is, and every problem of a file in one run.
//!
//! serde stops at the first unknown key or wrong type. [`deserialize`] reports that error,
//! blanks the entry it names (spaces, so every other byte keeps its offset) and deserializes
//! again, until the rest of the file is clean: one run lists every such mistake, each at its
//! own line and column. Semantic checks ([`super::validate`]) name a [`KeyPath`], which
//! [`locate`] finds in the file.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// Most problems reported for one file (each one costs a parse).
const MAX_PROBLEMS: usize = 64;

/// One problem, placed in the file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A key in the config tree, such as `listeners[1].tls.cert`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// A dotted path, such as `sasl.auth_timeout_ms`.
    pub fn parse(dotted: &str) -> Self {
        KeyPath(
            dotted
                .split('.')
                .filter(|k| !k.is_empty())
                .map(|k| Segment::Key(k.to_string()))
                .collect(),
        )
    }

    /// This path with `key` appended.
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(Segment::Key(key.to_string()));
        self
    }

    /// This path with an array index appended.
    pub fn index(mut self, index: usize) -> Self {
        self.0.push(Segment::Index(index));
        self
    }

    fn first_key(&self) -> Option<&str> {
        match self.0.first() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A semantic problem with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: KeyPath,
    pub message: String,
}

impl Issue {
    pub fn new(path: KeyPath, message: impl Into<String>) -> Self {
        Issue {
            path,
            message: message.into(),
        }
    }

    /// A message from a section's own check (`audit`, `tls` ...): placed at the first key it
    /// names in backticks (`audit.rotate_bytes`, or `client_ca` within the section), else at
    /// the section.
    pub fn in_section(section: KeyPath, message: String) -> Self {
        let named = message
            .split('`')
            .nth(1)
            .map(|token| token.split([' ', '=']).next().unwrap_or_default())
            .filter(|key| {
                !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.".contains(c))
            });
        let path = match named {
            Some(key)
                if section
                    .first_key()
                    .is_some_and(|s| key.starts_with(&format!("{s}."))) =>
            {
                KeyPath::parse(key)
            }
            Some(key) => {
                let mut path = section;
                path.0.extend(KeyPath::parse(key).0);
                path
            }
            None => section,
        };
        Issue { path, message }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

fn problem_at(text: &str, offset: usize, message: String) -> Problem {
    let (line, column) = line_column(text, offset);
    Problem {
        line,
        column,
        message,
    }
}

/// What to do about a serde error, after its message.
fn hint(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "; remove the key or correct its spelling (`palisade config print-default` lists every key)"
    } else if message.starts_with("unknown variant") || message.starts_with("invalid type") {
        "; `palisade config print-default` shows the values this key takes"
    } else if message.starts_with("missing field") {
        "; add the key (`palisade config print-default` shows it with its meaning)"
    } else {
        ""
    }
}

/// What [`deserialize`] made of a file.
pub struct Deserialized<T> {
    /// The value, if the file parses once its broken entries are blanked.
    pub value: Option<T>,
    /// The file with those entries blanked (byte offsets unchanged): a key set here is one the
    /// value really took from the file.
    pub repaired: String,
    /// Syntax errors, unknown keys, wrong types; empty for a clean file.
    pub problems: Vec<Problem>,
}

/// Deserializes `text`, collecting every unknown key, wrong type and syntax error in it.
pub fn deserialize<T: DeserializeOwned>(text: &str) -> Deserialized<T> {
    let mut problems = Vec::new();
    let document = match ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let message = format!("{}; fix the TOML syntax", e.message().trim_end());
            problems.push(problem_at(text, offset, message));
            return Deserialized {
                value: None,
                repaired: text.to_string(),
                problems,
            };
        }
    };
    let mut working = text.to_string();
    loop {
        let error = match toml::from_str::<T>(&working) {
            Ok(value) => {
                return Deserialized {
                    value: Some(value),
                    repaired: working,
                    problems,
                }
            }
            Err(e) => e,
        };
        let message = error.message().trim_end().to_string();
        let span = error.span();
        let offset = span.as_ref().map_or(0, |s| s.start);
        problems.push(problem_at(
            text,
            offset,
            format!("{message}{}", hint(&message)),
        ));
        // Go on past this error only if its entry can be blanked; otherwise stop here.
        let blanked = span
            .and_then(|s| entry_at(document.as_table(), s.start))
            .map(|range| blank(&working, range))
            .filter(|b| *b != working && problems.len() < MAX_PROBLEMS);
        match blanked {
            Some(b) => working = b,
            None => {
                return Deserialized {
                    value: None,
                    repaired: working,
                    problems,
                }
            }
        }
    }
}

/// `text` with every character in `range` but line breaks replaced by spaces.
fn blank(text: &str, range: Range<usize>) -> String {
    text.char_indices()
        .map(|(i, c)| {
            if range.contains(&i) && c != '\n' && c != '\r' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The byte range of the innermost entry (`key = value`, or a whole `[table]`) whose key or
/// value contains `offset`.
fn entry_at(table: &dyn TableLike, offset: usize) -> Option<Range<usize>> {
    for (name, item) in table.iter() {
        let key_span = table.key(name).and_then(|k| k.span());
        match item {
            Item::Value(value) => {
                let value_span = value.span()?;
                let start = key_span.map_or(value_span.start, |k| k.start);
                if (start..value_span.end).contains(&offset) {
                    return Some(start..value_span.end);
                }
            }
            Item::Table(t) => {
                if let Some(found) = table_entry_at(t, key_span, offset) {
                    return Some(found);
                }
            }
            Item::ArrayOfTables(tables) => {
                for t in tables.iter() {
                    if let Some(found) = table_entry_at(t, key_span.clone(), offset) {
                        return Some(found);
                    }
                }
            }
            Item::None => {}
        }
    }
    None
}

fn table_entry_at(
    table: &toml_edit::Table,
    key_span: Option<Range<usize>>,
    offset: usize,
) -> Option<Range<usize>> {
    // An error on the table's own name (`[nope]`) blanks the whole table; any other error
    // is inside it.
    match (key_span, table.span()) {
        (Some(k), whole) if k.contains(&offset) => {
            let start = whole.as_ref().map_or(k.start, |w| w.start.min(k.start));
            let end = whole.map_or(k.end, |w| w.end).max(table_end(table));
            Some(start..end)
        }
        _ => entry_at(table, offset),
    }
}

/// The end of the last entry of `table` and of its sub-tables.
fn table_end(table: &dyn TableLike) -> usize {
    table
        .iter()
        .filter_map(|(_, item)| match item {
            Item::Table(t) => Some(table_end(t).max(t.span().map_or(0, |s| s.end))),
            Item::ArrayOfTables(ts) => ts
                .iter()
                .map(|t| table_end(t).max(t.span().map_or(0, |s| s.end)))
                .max(),
            other => other.span().map(|s| s.end),
        })
        .max()
        .unwrap_or(0)
}

/// Places each issue at the key it names in `text`, or at the nearest enclosing key that the
/// file has (an omitted key's section, else line 1).
pub fn locate_all(text: &str, issues: Vec<Issue>) -> Vec<Problem> {
    let document = ImDocument::parse(text).ok();
    issues
        .into_iter()
        .map(|issue| {
            let offset = document
                .as_ref()
                .and_then(|d| locate(d.as_table(), &issue.path))
                .map_or(0, |s| s.start);
            problem_at(text, offset, issue.message)
        })
        .collect()
}

enum Node<'a> {
    Table(&'a dyn TableLike),
    Tables(&'a toml_edit::ArrayOfTables),
    Array(&'a toml_edit::Array),
    Leaf,
}

fn item_node(item: &Item) -> Node<'_> {
    match item {
        Item::ArrayOfTables(t) => Node::Tables(t),
        Item::Value(v) => value_node(v),
        other => other.as_table_like().map_or(Node::Leaf, Node::Table),
    }
}

fn value_node(value: &Value) -> Node<'_> {
    match value {
        Value::InlineTable(t) => Node::Table(t),
        Value::Array(a) => Node::Array(a),
        _ => Node::Leaf,
    }
}

/// True if the file sets the key at `path` (as opposed to leaving it to its default).
pub fn is_set(text: &str, path: &KeyPath) -> bool {
    ImDocument::parse(text)
        .ok()
        .and_then(|d| walk(d.as_table(), path).1)
        .is_some()
}

/// The span of the deepest part of `path` present in the document.
fn locate(root: &dyn TableLike, path: &KeyPath) -> Option<Range<usize>> {
    walk(root, path).0
}

/// The span of the deepest part of `path` present, and the span of the whole path if it is.
fn walk(root: &dyn TableLike, path: &KeyPath) -> (Option<Range<usize>>, Option<Range<usize>>) {
    let mut node = Node::Table(root);
    let mut best = None;
    let mut found = 0;
    for segment in &path.0 {
        node = match (segment, node) {
            (Segment::Key(k), Node::Table(t)) => {
                let Some((key, item)) = t.get_key_value(k) else {
                    break;
                };
                best = key.span().or_else(|| item.span()).or(best);
                item_node(item)
            }
            (Segment::Index(i), Node::Tables(ts)) => {
                let Some(t) = ts.get(*i) else { break };
                best = t.span().or(best);
                Node::Table(t)
            }
            (Segment::Index(i), Node::Array(a)) => {
                let Some(v) = a.get(*i) else { break };
                best = v.span().or(best);
                value_node(v)
            }
            _ => break,
        };
        found += 1;
    }
    let complete = (found == path.0.len()).then(|| best.clone().unwrap_or(0..0));
    (best, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        #[serde(default)]
        a: A,
        #[serde(default)]
        items: Vec<A>,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    #[allow(dead_code)]
    struct A {
        n: u32,
        s: String,
    }

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "a\nbé = 1\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        assert_eq!(line_column(text, text.find('=').unwrap()), (2, 4));
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_reported_in_one_pass() {
        let text = "[a]\nn = \"x\"\nzz = 1\n\n[[items]]\ns = 5\n\n[nope]\nq = 1\n";
        let problems = deserialize::<Doc>(text).problems;
        let at: Vec<(usize, usize)> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, vec![(2, 5), (3, 1), (6, 5), (8, 2)], "{problems:?}");
        assert!(problems[0].message.contains("invalid type"));
        assert!(problems[1].message.contains("unknown field `zz`"));
        assert!(problems[1].message.contains("print-default"));
        assert!(problems[3].message.contains("unknown field `nope`"));
    }

    #[test]
    fn a_syntax_error_is_placed_and_a_clean_file_loads() {
        let parsed = deserialize::<Doc>("[a]\nn = = 1\n");
        let problems = parsed.problems;
        assert_eq!((problems[0].line, problems.len()), (2, 1), "{problems:?}");
        assert!(parsed.value.is_none());
        let clean = deserialize::<Doc>("[a]\nn = 1\n");
        assert!(clean.value.is_some() && clean.problems.is_empty());
    }

    #[test]
    fn issues_are_placed_at_their_key_or_the_nearest_present_parent() {
        let text = "[a]\nn = 1\n\n[[items]]\nn = 2\n[[items]]\ns = \"x\"\n";
        let issues = vec![
            Issue::new(KeyPath::parse("a.n"), "one"),
            Issue::new(KeyPath::parse("items").index(1).key("s"), "two"),
            Issue::new(KeyPath::parse("items").index(1).key("n"), "three"),
            Issue::new(KeyPath::parse("absent.key"), "four"),
            Issue::in_section(KeyPath::parse("a"), "`a.n` is wrong".into()),
            Issue::in_section(KeyPath::parse("items").index(0), "`n` is wrong".into()),
        ];
        let at: Vec<(usize, usize)> = locate_all(text, issues)
            .iter()
            .map(|p| (p.line, p.column))
            .collect();
        assert_eq!(at, vec![(2, 1), (7, 1), (6, 1), (1, 1), (2, 1), (5, 1)]);
    }
}

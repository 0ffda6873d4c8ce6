//! [`PolicyDiagnostic`]: one problem in a policy directory, located as `file:line:column`.
//!
//! Cedar's errors implement [`miette::Diagnostic`] with byte-offset labels into the text they
//! were parsed from, and help text ("did you mean `tags`?"). [`from_miette`] turns the first
//! label's offset into a 1-based line and column of the file and keeps the help.

use std::fmt;

/// A located error (or, for the watcher's log, the reason a reload was refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    /// The file name relative to the policy directory (e.g. `teams.cedar`).
    pub file: String,
    /// 1-based; 0 when the problem has no position (a missing file, a directory error).
    pub line: usize,
    /// 1-based, in characters; 0 when the problem has no position.
    pub column: usize,
    pub message: String,
    /// Cedar's help text, when it has one.
    pub help: Option<String>,
}

impl PolicyDiagnostic {
    /// A problem with a whole file (or directory), without a position.
    pub fn file_level(file: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyDiagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
            help: None,
        }
    }

    /// A problem at a byte offset of `text`.
    pub fn at_offset(
        file: impl Into<String>,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_col(text, offset);
        PolicyDiagnostic {
            file: file.into(),
            line,
            column,
            message: message.into(),
            help: None,
        }
    }
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.column, self.message
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`. An offset past the
/// end (or inside a character) is clamped to the nearest character boundary before it.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset = offset.saturating_sub(1);
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Converts one Cedar (miette) error about `text` (the contents of `file`) into a diagnostic.
/// The message is the error followed by its source chain; the position is the first label's.
pub fn from_miette(file: &str, text: &str, err: &dyn miette::Diagnostic) -> PolicyDiagnostic {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let more = s.to_string();
        if !message.contains(&more) {
            message.push_str(": ");
            message.push_str(&more);
        }
        source = s.source();
    }
    let offset = err
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let (line, column) = match offset {
        Some(offset) => line_col(text, offset),
        None => (0, 0),
    };
    PolicyDiagnostic {
        file: file.to_string(),
        line,
        column,
        message,
        help: err.help().map(|h| h.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 1), (1, 2));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 7), (2, 4)); // after the two-byte `é`
        assert_eq!(line_col(text, 8), (3, 1));
        assert_eq!(line_col(text, 99), (3, 2));
    }

    #[test]
    fn display_names_file_line_column_and_help() {
        let mut d = PolicyDiagnostic::at_offset("a.cedar", "x\ny", 2, "bad `y`");
        d.help = Some("did you mean `x`?".into());
        assert_eq!(
            d.to_string(),
            "a.cedar:2:1: error: bad `y`\n  help: did you mean `x`?"
        );
        assert_eq!(
            PolicyDiagnostic::file_level("dir", "missing").to_string(),
            "dir: error: missing"
        );
    }
}

//! [`Problem`]: why a new generation was refused, located as `file:line:column` when its
//! source knows the position (a policy parse error), as `file` when it only knows the file (a
//! certificate that does not parse), unlocated otherwise.

use std::fmt;

/// One reason a reload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file at fault, as the source names it (relative to its directory, or a path).
    pub file: Option<String>,
    /// 1-based; 0 when the source has no position.
    pub line: usize,
    /// 1-based, in characters; 0 when the source has no position.
    pub column: usize,
    pub message: String,
}

impl Problem {
    /// A problem at `line:column` of `file`.
    pub fn at(
        file: impl Into<String>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            file: Some(file.into()),
            line,
            column,
            message: message.into(),
        }
    }

    /// A problem whose message already says everything it knows (the file included, if any).
    pub fn unlocated(message: impl Into<String>) -> Self {
        Problem {
            file: None,
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// Problems joined as one line each, for a log line or an audit reason.
    pub fn join(problems: &[Problem]) -> String {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), 0) => write!(f, "{file}: {}", self.message),
            (Some(file), line) => write!(f, "{file}:{line}:{}: {}", self.column, self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

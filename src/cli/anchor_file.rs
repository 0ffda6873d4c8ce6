//! The anchor files `verify --heads-out` and `audit verify --head-out` write and `--anchor`
//! reads back: pretty JSON whose `format` field names the layout, so one kind is never taken
//! for the other.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::CliError;

/// A file layout that names itself.
pub trait Formatted {
    /// The `format` value this layout writes.
    const FORMAT: &'static str;
    fn format(&self) -> &str;
}

/// Reads an anchor file, refusing one of another format; errors name the file and place.
pub fn read<T: DeserializeOwned + Formatted>(path: &Path) -> Result<T, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read anchor `{}`: {e}", path.display())))?;
    let file: T = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "anchor `{}` line {} column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if file.format() != T::FORMAT {
        return Err(CliError::Usage(format!(
            "anchor `{}` is `{}`, not `{}`",
            path.display(),
            file.format(),
            T::FORMAT
        )));
    }
    Ok(file)
}

/// Writes `value` to `path` as pretty JSON.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    std::fs::write(path, text)?;
    Ok(())
}

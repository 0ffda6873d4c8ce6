//! Files only the broker's user may read (the SCRAM credential store, the plugin keyring, the
//! wrapped data keys): read refusing group/other access, written atomically with mode 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why a private file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Readable or writable by group or others (the mode, `& 0o777`).
    Permissions(u32),
}

/// Reads `path` as text, refusing a file any other user could read or write.
pub fn read(path: &Path) -> Result<String, ReadError> {
    let metadata = std::fs::metadata(path).map_err(ReadError::Io)?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ReadError::Permissions(mode));
    }
    std::fs::read_to_string(path).map_err(ReadError::Io)
}

/// Replaces `path` with `bytes`, mode 0600 from creation (see [`crate::atomic_file`]).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic_file::replace(path, bytes, crate::atomic_file::PRIVATE)
}

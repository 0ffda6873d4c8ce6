//! Files only the broker's user may read (the SCRAM credential store, the plugin keyring, the
//! wrapped data keys): read refusing group/other access, written atomically with mode 0600.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// Replaces `path` with `bytes` (mode 0600) so a reader sees the old or the new file, never a
/// mix: a uniquely named temp file, fsync, rename, fsync of the directory.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|_| std::io::Error::other("random source"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        hex::encode(suffix)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

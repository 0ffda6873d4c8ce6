//! Small file-system helpers: naming, atomic replacement, directory fsync, error mapping.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::StorageError;

/// Wraps an I/O error with the path it happened on.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `<dir>/<base offset, 20 digits>.<ext>`, as Kafka names segment files.
pub fn segment_file(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Base offsets of every `.log` file in a partition directory, ascending.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new contents
/// (see [`crate::atomic_file`]).
/// Removes what a crash between writing and renaming `path`'s replacement left beside it
/// (each write uses a temporary file of its own name); run when the file is first read.
pub fn remove_leftovers(path: &Path) -> Result<(), StorageError> {
    crate::atomic_file::remove_leftovers(path).map_err(io_err(path))
}

pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    crate::atomic_file::replace(path, bytes, crate::atomic_file::SHARED).map_err(io_err(path))
}

/// Splits `<topic>-<partition>` from the right (topic names may contain `-`).
pub fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    let partition: i32 = partition.parse().ok()?;
    (!topic.is_empty() && partition >= 0).then_some((topic, partition))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

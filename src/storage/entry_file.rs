//! A file of fixed-size, strictly ordered entries mirrored in memory: the shared mechanics of
//! the offset index and the time index (load and check, rewrite, append, sync).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::file_cache::{CachedFile, FileCache};

/// One entry's encoding and the order entries must keep.
pub trait Entry: Copy + PartialEq {
    const LEN: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Whether `self` may follow `prev` (a file breaking this is rebuilt).
    fn follows(&self, prev: &Self) -> bool;
}

pub struct EntryFile<E: Entry> {
    file: CachedFile,
    pub(super) entries: RwLock<Vec<E>>,
}

impl<E: Entry> EntryFile<E> {
    /// Parses a file; `None` when it is missing, has a partial entry, or breaks the order
    /// (then the caller rebuilds it).
    pub fn load(path: &Path) -> Option<Vec<E>> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() % E::LEN != 0 {
            return None;
        }
        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::LEN);
        for chunk in bytes.chunks_exact(E::LEN) {
            let entry = E::decode(chunk)?;
            if entries.last().is_some_and(|prev| !entry.follows(prev)) {
                return None;
            }
            entries.push(entry);
        }
        Some(entries)
    }

    /// Opens the file with known-good `entries`, rewriting it if `rewrite`.
    pub fn open(
        path: &Path,
        entries: Vec<E>,
        rewrite: bool,
        files: &Arc<FileCache>,
    ) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(rewrite)
            .open(path)?;
        if rewrite {
            let mut bytes = Vec::with_capacity(entries.len() * E::LEN);
            for entry in &entries {
                entry.encode(&mut bytes);
            }
            file.write_all_at(&bytes, 0)?;
        }
        Ok(Self {
            file: files.adopt(path.to_path_buf(), file),
            entries: RwLock::new(entries),
        })
    }

    /// Appends `entry` if it follows the last one (else does nothing: entries stay ordered).
    pub fn append(&self, entry: E) -> std::io::Result<()> {
        let mut entries = self.entries.write();
        if entries.last().is_some_and(|prev| !entry.follows(prev)) {
            return Ok(());
        }
        let at = u64::try_from(entries.len() * E::LEN).unwrap_or(u64::MAX);
        let mut bytes = Vec::with_capacity(E::LEN);
        entry.encode(&mut bytes);
        self.file.with(|f| f.write_all_at(&bytes, at))?;
        entries.push(entry);
        Ok(())
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// Big-endian fixed-width reads for `Entry::decode`.
pub fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub fn be_i64(bytes: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

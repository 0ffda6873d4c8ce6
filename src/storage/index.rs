//! Sparse offset index: (offset relative to the segment base u32, file position u32) for
//! one batch every [`INDEX_INTERVAL_BYTES`] of log, so a read scans at most that much.
//!
//! Entries live in memory (8 bytes each, ~2 MiB for a full 1 GiB segment) and are appended
//! to the `.index` file as they are created; the file is only read back on open.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use parking_lot::RwLock;

/// Log bytes between two index entries (Kafka's `index.interval.bytes`).
pub const INDEX_INTERVAL_BYTES: u64 = 4096;
const ENTRY_LEN: usize = 8;

pub struct OffsetIndex {
    file: File,
    entries: RwLock<Vec<(u32, u32)>>,
}

impl OffsetIndex {
    /// Parses an index file; `None` when it is missing, has a partial entry, or is not
    /// strictly increasing (then the caller rebuilds it).
    pub fn load(path: &Path) -> Option<Vec<(u32, u32)>> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() % ENTRY_LEN != 0 {
            return None;
        }
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let rel = u32::from_be_bytes(chunk.get(0..4)?.try_into().ok()?);
            let pos = u32::from_be_bytes(chunk.get(4..8)?.try_into().ok()?);
            if let Some(&(prev_rel, prev_pos)) = entries.last() {
                if rel <= prev_rel || pos <= prev_pos {
                    return None;
                }
            }
            entries.push((rel, pos));
        }
        Some(entries)
    }

    /// Opens the index with known-good `entries`, rewriting the file if `rewrite`.
    pub fn open(path: &Path, entries: Vec<(u32, u32)>, rewrite: bool) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(rewrite)
            .open(path)?;
        if rewrite {
            let mut bytes = Vec::with_capacity(entries.len() * ENTRY_LEN);
            for (rel, pos) in &entries {
                bytes.extend_from_slice(&rel.to_be_bytes());
                bytes.extend_from_slice(&pos.to_be_bytes());
            }
            file.write_all_at(&bytes, 0)?;
        }
        Ok(Self {
            file,
            entries: RwLock::new(entries),
        })
    }

    pub fn append(&self, relative_offset: u32, position: u32) -> std::io::Result<()> {
        let mut entries = self.entries.write();
        let at = u64::try_from(entries.len() * ENTRY_LEN).unwrap_or(u64::MAX);
        let mut bytes = [0u8; ENTRY_LEN];
        bytes[..4].copy_from_slice(&relative_offset.to_be_bytes());
        bytes[4..].copy_from_slice(&position.to_be_bytes());
        self.file.write_all_at(&bytes, at)?;
        entries.push((relative_offset, position));
        Ok(())
    }

    /// The position of the last indexed batch starting at or before `relative_offset`
    /// (0 = scan from the start of the segment).
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let entries = self.entries.read();
        let idx = entries.partition_point(|&(rel, _)| rel <= relative_offset);
        idx.checked_sub(1)
            .and_then(|i| entries.get(i))
            .map_or(0, |&(_, pos)| pos)
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

//! Time index: (largest timestamp so far in the segment i64, offset of that batch relative
//! to the segment base u32), appended alongside the offset index when the maximum grew, and
//! once more when the segment is sealed so its last entry is the segment's max timestamp.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use parking_lot::RwLock;

const ENTRY_LEN: usize = 12;

pub struct TimeIndex {
    file: File,
    entries: RwLock<Vec<(i64, u32)>>,
}

impl TimeIndex {
    /// Parses a time index file; `None` when missing, partial or not monotonic.
    pub fn load(path: &Path) -> Option<Vec<(i64, u32)>> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() % ENTRY_LEN != 0 {
            return None;
        }
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let ts = i64::from_be_bytes(chunk.get(0..8)?.try_into().ok()?);
            let rel = u32::from_be_bytes(chunk.get(8..12)?.try_into().ok()?);
            if let Some(&(prev_ts, prev_rel)) = entries.last() {
                if ts <= prev_ts || rel < prev_rel {
                    return None;
                }
            }
            entries.push((ts, rel));
        }
        Some(entries)
    }

    pub fn open(path: &Path, entries: Vec<(i64, u32)>, rewrite: bool) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(rewrite)
            .open(path)?;
        if rewrite {
            let mut bytes = Vec::with_capacity(entries.len() * ENTRY_LEN);
            for (ts, rel) in &entries {
                bytes.extend_from_slice(&ts.to_be_bytes());
                bytes.extend_from_slice(&rel.to_be_bytes());
            }
            file.write_all_at(&bytes, 0)?;
        }
        Ok(Self {
            file,
            entries: RwLock::new(entries),
        })
    }

    /// Appends unless `timestamp` does not exceed the last entry (entries stay increasing).
    pub fn maybe_append(&self, timestamp: i64, relative_offset: u32) -> std::io::Result<()> {
        let mut entries = self.entries.write();
        if entries.last().is_some_and(|&(ts, _)| ts >= timestamp) {
            return Ok(());
        }
        let at = u64::try_from(entries.len() * ENTRY_LEN).unwrap_or(u64::MAX);
        let mut bytes = [0u8; ENTRY_LEN];
        bytes[..8].copy_from_slice(&timestamp.to_be_bytes());
        bytes[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.file.write_all_at(&bytes, at)?;
        entries.push((timestamp, relative_offset));
        Ok(())
    }

    /// The relative offset of the last entry whose timestamp is below `target`: every batch
    /// up to it is older than `target`, so a scan for `target` may start there.
    pub fn lookup_before(&self, target: i64) -> Option<u32> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|&(ts, _)| ts < target);
        idx.checked_sub(1)
            .and_then(|i| entries.get(i))
            .map(|&(_, rel)| rel)
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

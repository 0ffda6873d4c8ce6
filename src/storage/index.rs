//! Sparse offset index: (offset relative to the segment base u32, file position u32) for
//! one batch every [`INDEX_INTERVAL_BYTES`] of log, so a read scans at most that much.
//!
//! Entries live in memory (8 bytes each, ~2 MiB for a full 1 GiB segment) and are appended
//! to the `.index` file as they are created; the file is only read back on open.

use super::entry_file::{be_u32, Entry, EntryFile};

/// Log bytes between two index entries (Kafka's `index.interval.bytes`).
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// (offset relative to the segment base, file position of that batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry(pub u32, pub u32);

impl Entry for OffsetEntry {
    const LEN: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(OffsetEntry(be_u32(bytes, 0)?, be_u32(bytes, 4)?))
    }
    fn follows(&self, prev: &Self) -> bool {
        self.0 > prev.0 && self.1 > prev.1
    }
}

pub type OffsetIndex = EntryFile<OffsetEntry>;

impl OffsetIndex {
    /// The position of the last indexed batch starting at or before `relative_offset`
    /// (0 = scan from the start of the segment).
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let entries = self.entries.read();
        let idx = entries.partition_point(|e| e.0 <= relative_offset);
        idx.checked_sub(1)
            .and_then(|i| entries.get(i))
            .map_or(0, |e| e.1)
    }
}

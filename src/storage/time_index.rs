//! Time index: (largest timestamp so far in the segment i64, offset of that batch relative
//! to the segment base u32), appended alongside the offset index when the maximum grew, and
//! once more when the segment is sealed so its last entry is the segment's max timestamp.

use super::entry_file::{be_i64, be_u32, Entry, EntryFile};

/// (largest timestamp so far, offset of that batch relative to the segment base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry(pub i64, pub u32);

impl Entry for TimeEntry {
    const LEN: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(TimeEntry(be_i64(bytes, 0)?, be_u32(bytes, 8)?))
    }
    fn follows(&self, prev: &Self) -> bool {
        self.0 > prev.0 && self.1 >= prev.1
    }
}

pub type TimeIndex = EntryFile<TimeEntry>;

impl TimeIndex {
    /// The relative offset of the last entry whose timestamp is below `target`: every batch
    /// up to it is older than `target`, so a scan for `target` may start there.
    pub fn lookup_before(&self, target: i64) -> Option<u32> {
        let entries = self.entries.read();
        let idx = entries.partition_point(|e| e.0 < target);
        idx.checked_sub(1).and_then(|i| entries.get(i)).map(|e| e.1)
    }
}

//! Where each field of a v2 record batch header sits, and the attribute bits: the one copy of
//! the layout that [`super::header`], storage (recovery, scans, offset and timestamp stamping)
//! and plugins (re-encoding a batch) all read.
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...
//! ```
//!
//! The CRC-32C covers everything from the attributes to the end of the batch, so the base
//! offset and the leader epoch can be assigned without recomputing it.

pub const BASE_OFFSET_AT: usize = 0;
pub const BATCH_LENGTH_AT: usize = 8;
/// baseOffset (8) + batchLength (4): the prefix every batch format shares, and the bytes
/// `batchLength` does not count.
pub const LOG_OVERHEAD: usize = 12;
pub const PARTITION_LEADER_EPOCH_AT: usize = 12;
/// The magic byte sits at the same place in every message format, which is how Kafka tells
/// the formats apart before parsing anything else.
pub const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
/// The CRC covers everything from here to the end of the batch.
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub const BASE_TIMESTAMP_AT: usize = 27;
pub const MAX_TIMESTAMP_AT: usize = 35;
pub const PRODUCER_ID_AT: usize = 43;
pub const PRODUCER_EPOCH_AT: usize = 51;
pub const BASE_SEQUENCE_AT: usize = 53;
pub const RECORD_COUNT_AT: usize = 57;
/// Size of the complete v2 header, up to and including recordCount.
pub const BATCH_HEADER_LEN: usize = 61;
/// Enough of the header to know where a batch starts, ends and which offsets it holds.
pub const PEEK_LEN: usize = BASE_TIMESTAMP_AT;
/// Smallest legal `batchLength`: the header minus the log overhead (an empty batch).
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

/// The only batch format accepted.
pub const MAGIC_V2: i8 = 2;

/// Attribute bits 0-2: the compression codec of the records section.
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: the timestamps are LogAppendTime (set by the broker), not CreateTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: a control batch (transaction markers).
pub const CONTROL_BIT: i16 = 0x20;

// Each field starts where the previous one ends.
const _: () = {
    assert!(BATCH_LENGTH_AT == BASE_OFFSET_AT + 8);
    assert!(LOG_OVERHEAD == BATCH_LENGTH_AT + 4);
    assert!(PARTITION_LEADER_EPOCH_AT == LOG_OVERHEAD);
    assert!(MAGIC_AT == PARTITION_LEADER_EPOCH_AT + 4);
    assert!(CRC_AT == MAGIC_AT + 1);
    assert!(ATTRIBUTES_AT == CRC_AT + 4);
    assert!(LAST_OFFSET_DELTA_AT == ATTRIBUTES_AT + 2);
    assert!(BASE_TIMESTAMP_AT == LAST_OFFSET_DELTA_AT + 4);
    assert!(MAX_TIMESTAMP_AT == BASE_TIMESTAMP_AT + 8);
    assert!(PRODUCER_ID_AT == MAX_TIMESTAMP_AT + 8);
    assert!(PRODUCER_EPOCH_AT == PRODUCER_ID_AT + 8);
    assert!(BASE_SEQUENCE_AT == PRODUCER_EPOCH_AT + 2);
    assert!(RECORD_COUNT_AT == BASE_SEQUENCE_AT + 4);
    assert!(BATCH_HEADER_LEN == RECORD_COUNT_AT + 4);
};

fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Big-endian field readers; `None` when `buf` ends before the field does.
pub fn read_i64(buf: &[u8], at: usize) -> Option<i64> {
    array(buf, at).map(i64::from_be_bytes)
}

pub fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    array(buf, at).map(i32::from_be_bytes)
}

pub fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    array(buf, at).map(i16::from_be_bytes)
}

pub fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    array(buf, at).map(u32::from_be_bytes)
}

pub fn read_i8(buf: &[u8], at: usize) -> Option<i8> {
    array(buf, at).map(i8::from_be_bytes)
}

/// Writes `value` at `at`; false (and nothing written) when `buf` is too short.
pub fn write_at(buf: &mut [u8], at: usize, value: &[u8]) -> bool {
    match at
        .checked_add(value.len())
        .and_then(|end| buf.get_mut(at..end))
    {
        Some(dst) => {
            dst.copy_from_slice(value);
            true
        }
        None => false,
    }
}

/// The CRC-32C the batch's bytes call for (over attributes..end); `None` if it ends earlier.
pub fn computed_crc(batch: &[u8]) -> Option<u32> {
    batch.get(ATTRIBUTES_AT..).map(crc32c::crc32c)
}

/// Recomputes the CRC and stores it, after a covered field was changed. False when `batch` is
/// too short to hold a header.
pub fn write_crc(batch: &mut [u8]) -> bool {
    match computed_crc(batch) {
        Some(crc) => write_at(batch, CRC_AT, &crc.to_be_bytes()),
        None => false,
    }
}

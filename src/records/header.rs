//! The fixed 61-byte v2 batch header.

use super::varint::Cursor;
use super::{BatchHeader, RecordError};

/// baseOffset (8) + batchLength (4): the prefix every batch format shares.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the complete v2 header, up to and including recordCount.
pub const BATCH_HEADER_LEN: usize = 61;
/// Smallest legal `batchLength`: the header minus the log overhead (an empty batch).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// Offset of the magic byte: it sits at the same place in every message format, which is how
/// Kafka tells the formats apart before parsing anything else.
pub const MAGIC_OFFSET: usize = 16;
/// Offset of the CRC field.
pub const CRC_OFFSET: usize = 17;
/// Offset of the attributes field: the CRC covers everything from here to the end.
pub const ATTRIBUTES_OFFSET: usize = 21;

/// Parsed header plus the fields validation needs but `BatchHeader` does not expose.
pub(crate) struct RawHeader {
    pub(crate) header: BatchHeader,
    pub(crate) crc: u32,
}

/// Parses the 61-byte header. `batch` must start at baseOffset; its magic has already been
/// checked by the caller (magic decides whether this layout applies at all).
pub(crate) fn parse_header(batch: &[u8]) -> Result<RawHeader, RecordError> {
    let short = || {
        RecordError::Truncated(format!(
            "batch header needs {BATCH_HEADER_LEN} bytes, have {}",
            batch.len()
        ))
    };
    let mut c = Cursor::new(batch);
    let base_offset = c.i64().ok_or_else(short)?;
    let batch_length = c.i32().ok_or_else(short)?;
    let _partition_leader_epoch = c.i32().ok_or_else(short)?;
    let _magic = c.i8().ok_or_else(short)?;
    let crc = c.u32().ok_or_else(short)?;
    let attributes = c.i16().ok_or_else(short)?;
    let last_offset_delta = c.i32().ok_or_else(short)?;
    let base_timestamp = c.i64().ok_or_else(short)?;
    let max_timestamp = c.i64().ok_or_else(short)?;
    let producer_id = c.i64().ok_or_else(short)?;
    let producer_epoch = c.i16().ok_or_else(short)?;
    let base_sequence = c.i32().ok_or_else(short)?;
    let record_count = c.i32().ok_or_else(short)?;
    Ok(RawHeader {
        header: BatchHeader {
            base_offset,
            batch_length,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            record_count,
        },
        crc,
    })
}

/// Checks the header fields that do not depend on the records themselves.
pub(crate) fn check_counts(h: &BatchHeader) -> Result<(), RecordError> {
    if h.record_count < 0 {
        return Err(RecordError::Malformed(format!(
            "negative record count {}",
            h.record_count
        )));
    }
    if h.last_offset_delta < 0 {
        return Err(RecordError::Malformed(format!(
            "negative last offset delta {}",
            h.last_offset_delta
        )));
    }
    // Clients assign offset deltas 0..count-1, so the last delta is fixed by the count. Empty
    // batches (left behind by compaction) keep their original last delta, so only non-empty
    // batches are held to this.
    if h.record_count > 0 && i64::from(h.last_offset_delta) + 1 != i64::from(h.record_count) {
        return Err(RecordError::Malformed(format!(
            "last offset delta {} is inconsistent with record count {}",
            h.last_offset_delta, h.record_count
        )));
    }
    Ok(())
}

//! Parses the fixed 61-byte v2 batch header (field offsets in [`super::layout`]).

use super::layout::{
    read_i16, read_i32, read_i64, ATTRIBUTES_AT, BASE_OFFSET_AT, BASE_SEQUENCE_AT,
    BASE_TIMESTAMP_AT, BATCH_HEADER_LEN, BATCH_LENGTH_AT, LAST_OFFSET_DELTA_AT, MAX_TIMESTAMP_AT,
    PARTITION_LEADER_EPOCH_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORD_COUNT_AT,
};
use super::{BatchHeader, RecordError};

/// Parses the 61-byte header. `batch` must start at baseOffset; its magic has already been
/// checked by the caller (magic decides whether this layout applies at all).
pub(crate) fn parse_header(batch: &[u8]) -> Result<BatchHeader, RecordError> {
    let short = || {
        RecordError::Truncated(format!(
            "batch header needs {BATCH_HEADER_LEN} bytes, have {}",
            batch.len()
        ))
    };
    let head = batch.get(..BATCH_HEADER_LEN).ok_or_else(short)?;
    let i64_at = |at| read_i64(head, at).ok_or_else(short);
    let i32_at = |at| read_i32(head, at).ok_or_else(short);
    let i16_at = |at| read_i16(head, at).ok_or_else(short);
    Ok(BatchHeader {
        base_offset: i64_at(BASE_OFFSET_AT)?,
        batch_length: i32_at(BATCH_LENGTH_AT)?,
        partition_leader_epoch: i32_at(PARTITION_LEADER_EPOCH_AT)?,
        attributes: i16_at(ATTRIBUTES_AT)?,
        last_offset_delta: i32_at(LAST_OFFSET_DELTA_AT)?,
        base_timestamp: i64_at(BASE_TIMESTAMP_AT)?,
        max_timestamp: i64_at(MAX_TIMESTAMP_AT)?,
        producer_id: i64_at(PRODUCER_ID_AT)?,
        producer_epoch: i16_at(PRODUCER_EPOCH_AT)?,
        base_sequence: i32_at(BASE_SEQUENCE_AT)?,
        record_count: i32_at(RECORD_COUNT_AT)?,
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

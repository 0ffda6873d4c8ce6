//! The few fields of a Kafka v2 record batch header that storage reads or rewrites. The layout
//! and the header parser are [`crate::records`]'s; this is storage's view of them.
//!
//! Everything here works on untrusted bytes (recovery and `verify` read files that may be
//! torn or tampered with), so every accessor is bounds-checked and returns `Option`.

use crate::records::layout::{
    self, read_i32, read_i64, BASE_OFFSET_AT, BATCH_LENGTH_AT, LAST_OFFSET_DELTA_AT, MAGIC_AT,
    MAGIC_V2, MIN_BATCH_LENGTH,
};
use crate::records::varint::Cursor;

pub use crate::records::layout::{
    BATCH_HEADER_LEN as HEADER_LEN, LOG_OVERHEAD, PEEK_LEN, TIMESTAMP_TYPE_BIT,
};

/// Framing of one batch: where it starts, how long it is and the offsets it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFrame {
    pub base_offset: i64,
    /// Total size on disk including the 12 framing bytes.
    pub size: usize,
    pub last_offset: i64,
}

impl BatchFrame {
    /// Parses the first [`PEEK_LEN`] bytes; `None` when they cannot start a valid batch.
    pub fn peek(buf: &[u8]) -> Option<Self> {
        let base_offset = read_i64(buf, BASE_OFFSET_AT)?;
        let batch_length = read_i32(buf, BATCH_LENGTH_AT)?;
        let magic = layout::read_i8(buf, MAGIC_AT)?;
        let delta = read_i32(buf, LAST_OFFSET_DELTA_AT)?;
        if magic != MAGIC_V2 || batch_length < MIN_BATCH_LENGTH || delta < 0 || base_offset < 0 {
            return None;
        }
        let size = usize::try_from(batch_length)
            .ok()?
            .checked_add(LOG_OVERHEAD)?;
        let last_offset = base_offset.checked_add(i64::from(delta))?;
        Some(Self {
            base_offset,
            size,
            last_offset,
        })
    }
}

/// The header fields storage uses of a stored batch whose framing is valid (see
/// [`BatchFrame::peek`]), read by the one header parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHeader {
    pub frame: BatchFrame,
    pub attributes: i16,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl StoredHeader {
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let frame = BatchFrame::peek(buf)?;
        let h = crate::records::header::parse_header(buf).ok()?;
        Some(Self {
            frame,
            attributes: h.attributes,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            record_count: h.record_count,
        })
    }
}

/// True when `batch` (exactly one whole batch) carries a correct CRC-32C.
pub fn crc_ok(batch: &[u8]) -> bool {
    crate::records::crc::verify(batch).is_ok()
}

/// Assigns the base offset; the CRC does not cover it, so nothing else changes.
pub fn set_base_offset(batch: &mut [u8], offset: i64) -> bool {
    match batch.get_mut(0..8) {
        Some(dst) => {
            dst.copy_from_slice(&offset.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Stamps a LogAppendTime batch: sets the timestamp-type bit and the max timestamp, and
/// recomputes the CRC because both fields are covered by it.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) -> bool {
    let Some(attributes) = layout::read_i16(batch, layout::ATTRIBUTES_AT) else {
        return false;
    };
    let attributes = attributes | TIMESTAMP_TYPE_BIT;
    layout::write_at(batch, layout::ATTRIBUTES_AT, &attributes.to_be_bytes())
        && layout::write_at(batch, layout::MAX_TIMESTAMP_AT, &timestamp.to_be_bytes())
        && layout::write_crc(batch)
}

/// For an uncompressed CreateTime batch, the first record at or after `min_offset` whose
/// timestamp is >= `target`, as (offset, timestamp). `None` when compressed, LogAppendTime, or
/// not parseable; the caller then falls back to batch granularity.
pub fn first_record_at_or_after(batch: &[u8], target: i64, min_offset: i64) -> Option<(i64, i64)> {
    let header = StoredHeader::parse(batch)?;
    if header.attributes & (layout::COMPRESSION_MASK | TIMESTAMP_TYPE_BIT) != 0 {
        return None;
    }
    let mut records = Cursor::new(batch.get(HEADER_LEN..)?);
    for _ in 0..header.record_count.max(0) {
        // Lengths and deltas are read as varlongs, as the on-disk scan always has: corrupt
        // values then fail the same way they did.
        let len = usize::try_from(records.varlong().ok()?).ok()?;
        let mut record = Cursor::new(records.rest());
        // Skip the record's attributes byte.
        record.i8()?;
        let timestamp_delta = record.varlong().ok()?;
        let offset_delta = record.varlong().ok()?;
        let timestamp = header.base_timestamp.checked_add(timestamp_delta)?;
        let offset = header.frame.base_offset.checked_add(offset_delta)?;
        if timestamp >= target && offset >= min_offset {
            return Some((offset, timestamp));
        }
        records.take(len)?;
    }
    None
}

//! The few fields of a Kafka v2 record batch header that storage reads or rewrites.
//!
//! Everything here works on untrusted bytes (recovery and `verify` read files that may be
//! torn or tampered with), so every accessor is bounds-checked and returns `Option`.

/// Bytes before the CRC-covered part that also frame the batch: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the complete v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Enough of the header to know where a batch starts, ends and which offsets it holds.
pub const PEEK_LEN: usize = 27;

const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

/// Attribute bit 3: the timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;

fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    array(buf, at).map(i64::from_be_bytes)
}

fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    array(buf, at).map(i32::from_be_bytes)
}

fn be_i16(buf: &[u8], at: usize) -> Option<i16> {
    array(buf, at).map(i16::from_be_bytes)
}

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
        let base_offset = be_i64(buf, 0)?;
        let batch_length = be_i32(buf, 8)?;
        let magic = *buf.get(MAGIC_AT)?;
        let delta = be_i32(buf, LAST_OFFSET_DELTA_AT)?;
        let min_len = i32::try_from(HEADER_LEN - LOG_OVERHEAD).ok()?;
        if magic != 2 || batch_length < min_len || delta < 0 || base_offset < 0 {
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

/// The full header of a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub frame: BatchFrame,
    pub crc: u32,
    pub attributes: i16,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let frame = BatchFrame::peek(buf)?;
        Some(Self {
            frame,
            crc: array(buf, CRC_AT).map(u32::from_be_bytes)?,
            attributes: be_i16(buf, ATTRIBUTES_AT)?,
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT)?,
            producer_id: be_i64(buf, PRODUCER_ID_AT)?,
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT)?,
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT)?,
            record_count: be_i32(buf, RECORD_COUNT_AT)?,
        })
    }
}

/// True when `batch` (exactly one whole batch) carries a correct CRC-32C.
pub fn crc_ok(batch: &[u8]) -> bool {
    match (
        array(batch, CRC_AT).map(u32::from_be_bytes),
        batch.get(ATTRIBUTES_AT..),
    ) {
        (Some(stored), Some(covered)) => crc32c::crc32c(covered) == stored,
        _ => false,
    }
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
    let Some(attributes) = be_i16(batch, ATTRIBUTES_AT) else {
        return false;
    };
    let attributes = attributes | TIMESTAMP_TYPE_BIT;
    let fields = [
        (ATTRIBUTES_AT, attributes.to_be_bytes().to_vec()),
        (MAX_TIMESTAMP_AT, timestamp.to_be_bytes().to_vec()),
    ];
    for (at, value) in fields {
        match batch.get_mut(at..at + value.len()) {
            Some(dst) => dst.copy_from_slice(&value),
            None => return false,
        }
    }
    let crc = match batch.get(ATTRIBUTES_AT..) {
        Some(covered) => crc32c::crc32c(covered),
        None => return false,
    };
    match batch.get_mut(CRC_AT..CRC_AT + 4) {
        Some(dst) => {
            dst.copy_from_slice(&crc.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Decodes a zigzag varint (Kafka's record fields); returns the value and its length.
fn read_varlong(buf: &[u8], at: usize) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = *buf.get(at.checked_add(i)?)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let decoded = i64::try_from(value >> 1).ok()? ^ -i64::try_from(value & 1).ok()?;
            return Some((decoded, i + 1));
        }
    }
    None
}

const BASE_TIMESTAMP_AT: usize = 27;
const COMPRESSION_MASK: i16 = 0x07;

/// For an uncompressed CreateTime batch, the first record at or after `min_offset` whose
/// timestamp is >= `target`, as (offset, timestamp). `None` when compressed, LogAppendTime, or not parseable; the
/// caller then falls back to batch granularity.
pub fn first_record_at_or_after(batch: &[u8], target: i64, min_offset: i64) -> Option<(i64, i64)> {
    let header = BatchHeader::parse(batch)?;
    if header.attributes & (COMPRESSION_MASK | TIMESTAMP_TYPE_BIT) != 0 {
        return None;
    }
    let base_timestamp = be_i64(batch, BASE_TIMESTAMP_AT)?;
    let mut pos = HEADER_LEN;
    for _ in 0..header.record_count.max(0) {
        let (len, n) = read_varlong(batch, pos)?;
        let body = pos.checked_add(n)?;
        let end = body.checked_add(usize::try_from(len).ok()?)?;
        // Skip the record's attributes byte.
        let (timestamp_delta, n) = read_varlong(batch, body.checked_add(1)?)?;
        let (offset_delta, _) = read_varlong(batch, body.checked_add(1 + n)?)?;
        let timestamp = base_timestamp.checked_add(timestamp_delta)?;
        let offset = header.frame.base_offset.checked_add(offset_delta)?;
        if timestamp >= target && offset >= min_offset {
            return Some((offset, timestamp));
        }
        if end > batch.len() {
            return None;
        }
        pos = end;
    }
    None
}

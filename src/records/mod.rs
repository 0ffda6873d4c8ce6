//! Record batches as they arrive in Produce requests: structural checks (magic 2, lengths,
//! CRC-32C), bounded decompression of every codec, and the header fields storage needs.
//!
//! Layout: [`layout`] says where each header field sits, [`header`] parses the fixed 61-byte
//! v2 header, [`crc`] checks CRC-32C,
//! [`decompress`] inflates the records section under a hard output cap, and [`record_walk`]
//! walks the records' varint framing without allocating.

use bytes::Bytes;

pub mod crc;
pub mod decompress;
pub mod header;
pub mod layout;
pub mod record_walk;
pub mod single;
pub(crate) mod varint;

#[cfg(test)]
mod tests;

pub use decompress::{
    COMPRESSION_GZIP, COMPRESSION_LZ4, COMPRESSION_NONE, COMPRESSION_SNAPPY, COMPRESSION_ZSTD,
};
pub use layout::{BATCH_HEADER_LEN, LOG_OVERHEAD, MIN_BATCH_LENGTH};
pub use record_walk::{visit_records, walk_records, RecordView, RecordsSummary};
pub use single::{single_batch, BatchRefusal};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record batch is truncated: {0}")]
    Truncated(String),
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("record batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch is malformed: {0}")]
    Malformed(String),
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(i16),
    #[error("decompressed batch exceeds the limit of {0} bytes")]
    DecompressionLimit(usize),
    #[error("corrupt compressed data: {0}")]
    Corrupt(String),
}

/// Header fields of one validated batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn compression(&self) -> i16 {
        self.attributes & layout::COMPRESSION_MASK
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & layout::TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & layout::CONTROL_BIT != 0
    }
    /// Bit 3: timestamps are broker append times rather than client create times.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & layout::TIMESTAMP_TYPE_BIT != 0
    }
    /// Offset of the batch's last record (`base_offset + last_offset_delta`), saturating
    /// because the base offset is client-supplied until the broker reassigns it.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
    /// Total size of the batch on the wire, length prefix included.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD.saturating_add(usize::try_from(self.batch_length).unwrap_or(0))
    }
}

/// One batch inside a produce request's records field.
#[derive(Debug, Clone)]
pub struct ValidatedBatch {
    pub header: BatchHeader,
    /// The exact bytes of this batch (length prefix included).
    pub bytes: Bytes,
}

/// Splits `records` into batches and validates each: magic 2, batch length consistent with the
/// buffer, CRC-32C over attributes..end, record count consistent with the (decompressed) records,
/// every record's varint framing. Decompression output is capped at `max_decompressed` bytes
/// per batch. Never panics on any input.
///
/// An empty buffer yields no batches. Control and transactional batches are returned like any
/// other; rejecting them is the caller's policy.
pub fn validate_batches(
    records: &Bytes,
    max_decompressed: usize,
) -> Result<Vec<ValidatedBatch>, RecordError> {
    let mut batches = Vec::new();
    // One scratch buffer for the whole request: at most `max_decompressed` bytes, reused by
    // every compressed batch.
    let mut scratch = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = records
            .get(pos..)
            .ok_or_else(|| RecordError::Truncated("batch offset past the buffer".to_owned()))?;
        let size = batch_size(rest)?;
        let end = pos
            .checked_add(size)
            .ok_or_else(|| RecordError::Malformed("batch length overflows".to_owned()))?;
        let batch = records
            .get(pos..end)
            .ok_or_else(|| RecordError::Truncated("batch extends past the buffer".to_owned()))?;
        let header = validate_batch(batch, max_decompressed, &mut scratch)?;
        // In range: `get(pos..end)` just succeeded on the same buffer.
        batches.push(ValidatedBatch {
            header,
            bytes: records.slice(pos..end),
        });
        pos = end;
    }
    Ok(batches)
}

/// Reads the framing of the batch at the front of `rest` and returns its total size (length
/// prefix included), checking it fits in `rest`. Magic is checked here, before the v2 minimum
/// length, because legacy message sets are legitimately shorter and deserve the precise error.
fn batch_size(rest: &[u8]) -> Result<usize, RecordError> {
    let prefix = rest.get(..LOG_OVERHEAD).ok_or_else(|| {
        RecordError::Truncated(format!(
            "{} trailing bytes, fewer than the {}-byte batch prefix",
            rest.len(),
            LOG_OVERHEAD
        ))
    })?;
    let batch_length = layout::read_i32(prefix, layout::BATCH_LENGTH_AT)
        .ok_or_else(|| RecordError::Truncated("batch length field".to_owned()))?;
    if batch_length < 0 {
        return Err(RecordError::Malformed(format!(
            "negative batch length {batch_length}"
        )));
    }
    let magic = layout::read_i8(rest, layout::MAGIC_AT)
        .ok_or_else(|| RecordError::Truncated("batch ends before its magic byte".to_owned()))?;
    if magic != layout::MAGIC_V2 {
        return Err(RecordError::UnsupportedMagic(magic));
    }
    if batch_length < MIN_BATCH_LENGTH {
        return Err(RecordError::Malformed(format!(
            "batch length {batch_length} is below the minimum {MIN_BATCH_LENGTH}"
        )));
    }
    let size = usize::try_from(batch_length)
        .ok()
        .and_then(|l| l.checked_add(LOG_OVERHEAD))
        .ok_or_else(|| RecordError::Malformed(format!("batch length {batch_length}")))?;
    if size > rest.len() {
        return Err(RecordError::Truncated(format!(
            "batch needs {size} bytes, {} remain",
            rest.len()
        )));
    }
    Ok(size)
}

/// Validates one complete batch (exactly `batch_size` bytes, magic already checked).
fn validate_batch(
    batch: &[u8],
    max_decompressed: usize,
    scratch: &mut Vec<u8>,
) -> Result<BatchHeader, RecordError> {
    let h = header::parse_header(batch)?;
    // CRC first: everything after it is only worth interpreting if it arrived intact.
    crc::verify(batch)?;
    header::check_counts(&h)?;
    let body = batch
        .get(BATCH_HEADER_LEN..)
        .ok_or_else(|| RecordError::Truncated("batch ends inside its header".to_owned()))?;
    let summary = match h.compression() {
        COMPRESSION_NONE => walk_records(body, h.record_count)?,
        codec => {
            decompress::decompress(codec, body, max_decompressed, scratch)?;
            walk_records(scratch, h.record_count)?
        }
    };
    check_max_timestamp(&h, &summary);
    Ok(h)
}

/// The header's maxTimestamp is authoritative (it is what Kafka serves and indexes), so a
/// disagreement with the records is only traced, not rejected: Kafka itself rewrites rather
/// than refuses it, and LogAppendTime batches legitimately differ.
fn check_max_timestamp(h: &BatchHeader, summary: &RecordsSummary) {
    if h.is_log_append_time() {
        return;
    }
    if let Some(delta) = summary.max_timestamp_delta {
        let computed = h.base_timestamp.saturating_add(delta);
        if computed != h.max_timestamp {
            tracing::debug!(
                header = h.max_timestamp,
                computed,
                "record batch max timestamp differs from its records"
            );
        }
    }
}

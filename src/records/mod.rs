//! Record batches as they arrive in Produce requests: structural checks (magic 2, lengths,
//! CRC-32C), bounded decompression of every codec, and the header fields storage needs.
//!
//! STUB: the API below is the contract the produce handler is written against.

use bytes::Bytes;

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
        self.attributes & 0x07
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
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
pub fn validate_batches(
    _records: &Bytes,
    _max_decompressed: usize,
) -> Result<Vec<ValidatedBatch>, RecordError> {
    todo!()
}

//! The one record batch a Produce partition carries: validated, with the Kafka error code a
//! client gets when it is not acceptable. Used where a batch must be read: in front of the
//! backend when the topic's plugins decode it, and by the local log before it appends.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{validate_batches, RecordError, ValidatedBatch};

/// Why a partition's records were refused, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRefusal {
    pub code: ResponseError,
    pub message: String,
}

/// Validates `records` (bounded decompression at `max_decompressed` bytes) and requires
/// exactly one batch, as Kafka does for Produce v3 and later.
pub fn single_batch(
    records: &Bytes,
    max_decompressed: usize,
) -> Result<ValidatedBatch, BatchRefusal> {
    let mut batches = validate_batches(records, max_decompressed).map_err(|e| BatchRefusal {
        code: code_of(&e),
        message: e.to_string(),
    })?;
    match (batches.pop(), batches.is_empty()) {
        (Some(b), true) => Ok(b),
        _ => Err(BatchRefusal {
            code: ResponseError::InvalidRecord,
            message: "a produce request must carry exactly one record batch per partition"
                .to_string(),
        }),
    }
}

/// The code Kafka gives each kind of unacceptable batch.
pub fn code_of(e: &RecordError) -> ResponseError {
    match e {
        RecordError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        RecordError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        RecordError::DecompressionLimit(_) => ResponseError::MessageTooLarge,
        RecordError::Malformed(_) => ResponseError::InvalidRecord,
        RecordError::Truncated(_) | RecordError::CrcMismatch { .. } | RecordError::Corrupt(_) => {
            ResponseError::CorruptMessage
        }
    }
}

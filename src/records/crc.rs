//! CRC-32C (Castagnoli) over attributes..end, as the v2 format specifies.

use super::header::ATTRIBUTES_OFFSET;
use super::RecordError;

/// Verifies `stored` against the CRC of `batch[ATTRIBUTES_OFFSET..]`. `batch` is one complete
/// batch starting at baseOffset.
pub(crate) fn verify(batch: &[u8], stored: u32) -> Result<(), RecordError> {
    let covered = batch
        .get(ATTRIBUTES_OFFSET..)
        .ok_or_else(|| RecordError::Truncated("batch ends before its attributes".to_owned()))?;
    let computed = crc32c::crc32c(covered);
    if computed != stored {
        return Err(RecordError::CrcMismatch { stored, computed });
    }
    Ok(())
}

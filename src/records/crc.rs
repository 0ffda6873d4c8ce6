//! CRC-32C (Castagnoli) over attributes..end, as the v2 format specifies: the one check, used
//! by produce validation and by storage when it reads batches back from disk.

use super::layout::{computed_crc, read_u32, CRC_AT};
use super::RecordError;

/// Verifies the CRC stored in `batch` (one complete batch starting at baseOffset).
pub fn verify(batch: &[u8]) -> Result<(), RecordError> {
    let stored = read_u32(batch, CRC_AT)
        .ok_or_else(|| RecordError::Truncated("batch ends inside its crc".to_owned()))?;
    let computed = computed_crc(batch)
        .ok_or_else(|| RecordError::Truncated("batch ends before its attributes".to_owned()))?;
    if computed != stored {
        return Err(RecordError::CrcMismatch { stored, computed });
    }
    Ok(())
}

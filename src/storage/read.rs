//! The read side of a partition: fetch reads and timestamp lookups. None of it takes the
//! writer lock; it works on a snapshot of the segment list and the published sizes.

use bytes::Bytes;

use super::fsutil::io_err;
use super::partition::Partition;
use super::{ReadResult, StorageError};

impl Partition {
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, StorageError> {
        self.check_usable()?;
        let log_start_offset = self.log_start_offset();
        let high_watermark = self.high_watermark();
        let empty = |hw| ReadResult {
            records: Bytes::new(),
            high_watermark: hw,
            log_start_offset,
        };
        if offset < log_start_offset || offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange(offset));
        }
        if offset == high_watermark {
            return Ok(empty(high_watermark));
        }
        let segments = self.snapshot();
        let first = segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for segment in segments.get(first..).unwrap_or_default() {
            let found = segment
                .read(offset, max_bytes)
                .map_err(io_err(segment.log_path()))?;
            if let Some(records) = found {
                // The segment may already hold batches appended after the high watermark was
                // read above; return only what the answer's high watermark covers.
                let records = below_high_watermark(records, high_watermark);
                if records.is_empty() {
                    return Ok(empty(high_watermark));
                }
                return Ok(ReadResult {
                    records,
                    high_watermark,
                    log_start_offset,
                });
            }
        }
        Ok(empty(high_watermark))
    }

    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        self.check_usable()?;
        let log_start = self.log_start_offset();
        // Records at or above the high watermark are not visible yet, as for fetches.
        let high_watermark = self.high_watermark();
        for segment in self.snapshot().iter() {
            let holds = segment
                .max_timestamp()
                .is_some_and(|(max, _)| max >= timestamp);
            if holds && segment.next_offset() > log_start {
                let found = segment
                    .find_timestamp(timestamp, log_start)
                    .map_err(io_err(segment.log_path()))?;
                if found.is_some() {
                    return Ok(found.filter(|&(offset, _)| offset < high_watermark));
                }
            }
        }
        Ok(None)
    }

    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let log_start = self.log_start_offset();
        let high_watermark = self.high_watermark();
        let mut best: Option<(i64, i64)> = None;
        for segment in self.snapshot().iter() {
            if let Some((ts, offset)) = segment.max_timestamp() {
                let visible = offset >= log_start && offset < high_watermark;
                if visible && best.is_none_or(|(b, _)| ts > b) {
                    best = Some((ts, offset));
                }
            }
        }
        best
    }
}

/// The leading whole batches of `records` whose offsets are all below `high_watermark`.
fn below_high_watermark(records: Bytes, high_watermark: i64) -> Bytes {
    let mut end = 0usize;
    while let Some(frame) = records.get(end..).and_then(super::batch::BatchFrame::peek) {
        let next = end.saturating_add(frame.size);
        if frame.last_offset >= high_watermark || next > records.len() {
            break;
        }
        end = next;
    }
    records.slice(..end)
}

//! Audit lines as Kafka record batches, the one shape both topic sinks write (the local log
//! and the upstream cluster): one record per line, the line as the value, no key, no
//! compression, at most [`MAX_BATCH_BYTES`] of lines per batch.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
};

use super::AuditError;

/// Largest run of lines put in one batch (well under a topic's default max.message.bytes).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Who a batch is written as: no producer (`NO_PRODUCER_ID`, sequence -1), or an idempotent
/// producer with the sequence number of the batch's first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

impl Producer {
    /// Not idempotent: the broker does not look for duplicates.
    pub const NONE: Producer = Producer {
        id: NO_PRODUCER_ID,
        epoch: NO_PRODUCER_EPOCH,
        base_sequence: -1,
    };
}

/// Splits `lines` into runs of at most `max_bytes` of line bytes (a longer line is a run of
/// its own), in order.
pub fn runs<T: AsRef<[u8]>>(lines: &[T], max_bytes: usize) -> Runs<'_, T> {
    Runs {
        rest: lines,
        max_bytes,
    }
}

pub struct Runs<'a, T> {
    rest: &'a [T],
    max_bytes: usize,
}

impl<'a, T: AsRef<[u8]>> Iterator for Runs<'a, T> {
    type Item = &'a [T];

    fn next(&mut self) -> Option<&'a [T]> {
        if self.rest.is_empty() {
            return None;
        }
        let mut end = 0;
        let mut size = 0usize;
        for line in self.rest {
            let len = line.as_ref().len();
            if end > 0 && size.saturating_add(len) > self.max_bytes {
                break;
            }
            size = size.saturating_add(len);
            end += 1;
        }
        let (run, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(run)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Encodes `lines` as one record batch (magic 2) written as `producer`, every record stamped
/// `timestamp`. The records' sequence numbers follow `producer.base_sequence` (all -1 without
/// a producer).
pub fn encode<T: AsRef<[u8]>>(
    lines: &[T],
    producer: Producer,
    timestamp: i64,
) -> Result<BytesMut, AuditError> {
    let records: Vec<Record> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.id,
                producer_epoch: producer.epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // The encoder keeps one batch while offset - sequence stays constant: without
                // a producer every record says -1 relative to offset 0 (base sequence -1).
                sequence: if producer.id == NO_PRODUCER_ID {
                    i - 1
                } else {
                    producer.base_sequence.wrapping_add(i)
                },
                timestamp,
                key: None,
                value: Some(Bytes::copy_from_slice(line.as_ref())),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| AuditError::Topic(format!("cannot encode audit batch: {e}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn runs_respect_the_size_and_keep_a_long_line_alone() {
        let lines = ["aaaa", "bb", "cccccccccc", "d", "e"];
        let got: Vec<&[&str]> = runs(&lines, 6).collect();
        assert_eq!(got, vec![&["aaaa", "bb"][..], &["cccccccccc"], &["d", "e"]]);
        assert_eq!(runs::<&str>(&[], 6).count(), 0);
    }

    #[test]
    fn a_batch_holds_the_lines_in_order_with_the_producers_sequence() {
        let lines = ["one", "two", "three"];
        let producer = Producer {
            id: 42,
            epoch: 3,
            base_sequence: 7,
        };
        let mut bytes = encode(&lines, producer, 1_000).unwrap().freeze();
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        let values: Vec<_> = set
            .records
            .iter()
            .map(|r| r.value.clone().unwrap())
            .collect();
        assert_eq!(
            values,
            ["one", "two", "three"].map(|s| Bytes::from_static(s.as_bytes()))
        );
        let first = &set.records[0];
        assert_eq!((first.producer_id, first.producer_epoch), (42, 3));
        assert_eq!(
            set.records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            [7, 8, 9]
        );
        assert!(bytes.is_empty(), "one batch");
        // Without a producer the batch's base sequence is -1, as Kafka expects.
        let mut bytes = encode(&lines, Producer::NONE, 1_000).unwrap().freeze();
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records[0].sequence, -1);
        assert_eq!(set.records[0].producer_id, NO_PRODUCER_ID);
        assert!(bytes.is_empty(), "one batch");
    }
}

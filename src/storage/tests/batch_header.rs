//! The storage view of a batch header agrees with the reading it replaced (fixed offsets of
//! its own) on random valid and damaged batches: the move to `records::layout` and the one
//! header parser changed no answer.

use proptest::prelude::*;

use crate::records::header::parse_header;
use crate::storage::batch::{self, BatchFrame, StoredHeader};
use crate::storage::test_util::{batch_bytes, Spec};

/// The storage reader as it was before it shared `records::layout`, kept as an oracle.
#[allow(dead_code)]
mod old {
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
    pub struct OldFrame {
        pub base_offset: i64,
        /// Total size on disk including the 12 framing bytes.
        pub size: usize,
        pub last_offset: i64,
    }

    impl OldFrame {
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
    pub struct OldHeader {
        pub frame: OldFrame,
        pub crc: u32,
        pub attributes: i16,
        pub max_timestamp: i64,
        pub producer_id: i64,
        pub producer_epoch: i16,
        pub base_sequence: i32,
        pub record_count: i32,
    }

    impl OldHeader {
        pub fn parse(buf: &[u8]) -> Option<Self> {
            let frame = OldFrame::peek(buf)?;
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
    pub fn first_record_at_or_after(
        batch: &[u8],
        target: i64,
        min_offset: i64,
    ) -> Option<(i64, i64)> {
        let header = OldHeader::parse(batch)?;
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
}

fn valid(records: i32, value_len: usize, ts_step: i64, producer: i64) -> Vec<u8> {
    batch_bytes(
        Spec::new(records, value_len)
            .ts_step(ts_step)
            .idem(producer, 1, 5),
    )
}

fn same_answers(bytes: &[u8], target: i64, min_offset: i64) {
    let new = StoredHeader::parse(bytes);
    let old = old::OldHeader::parse(bytes);
    assert_eq!(new.is_some(), old.is_some());
    if let (Some(n), Some(o)) = (new, old) {
        assert_eq!(n.frame.base_offset, o.frame.base_offset);
        assert_eq!(n.frame.size, o.frame.size);
        assert_eq!(n.frame.last_offset, o.frame.last_offset);
        assert_eq!(
            (
                n.attributes,
                n.max_timestamp,
                n.producer_id,
                n.producer_epoch
            ),
            (
                o.attributes,
                o.max_timestamp,
                o.producer_id,
                o.producer_epoch
            )
        );
        assert_eq!(
            (n.base_sequence, n.record_count),
            (o.base_sequence, o.record_count)
        );
        // The records layer reads the same header the same way.
        let r = parse_header(bytes).unwrap();
        assert_eq!(
            (r.base_offset, r.max_timestamp),
            (n.frame.base_offset, n.max_timestamp)
        );
        assert_eq!(r.last_offset(), n.frame.last_offset);
    }
    assert_eq!(
        BatchFrame::peek(bytes).map(|f| (f.base_offset, f.size, f.last_offset)),
        old::OldFrame::peek(bytes).map(|f| (f.base_offset, f.size, f.last_offset))
    );
    assert_eq!(batch::crc_ok(bytes), old::crc_ok(bytes));
    assert_eq!(
        batch::first_record_at_or_after(bytes, target, min_offset),
        old::first_record_at_or_after(bytes, target, min_offset)
    );
    let mut stamped_new = bytes.to_vec();
    let mut stamped_old = bytes.to_vec();
    assert_eq!(
        batch::set_log_append_time(&mut stamped_new, target),
        old::set_log_append_time(&mut stamped_old, target)
    );
    assert_eq!(stamped_new, stamped_old);
}

#[test]
fn valid_batches_read_the_same() {
    for records in [0, 1, 3, 40] {
        let bytes = valid(records, 7, 10, 42);
        // This builder writes lastOffsetDelta = records - 1, so its empty batch (-1) is one
        // storage refuses to frame; both readers must agree on that too.
        assert_eq!(StoredHeader::parse(&bytes).is_some(), records > 0);
        assert!(batch::crc_ok(&bytes));
        for target in [0, 1_700_000_000_000, 1_700_000_000_015, i64::MAX] {
            same_answers(&bytes, target, 1);
        }
    }
}

#[test]
fn a_damaged_crc_is_seen_by_both() {
    let mut bytes = valid(3, 4, 1, -1);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert!(!batch::crc_ok(&bytes));
    same_answers(&bytes, 0, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn damaged_batches_read_the_same(
        records in 0i32..6,
        value_len in 0usize..40,
        ts_step in -5i64..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        target in 1_699_999_999_990i64..1_700_000_000_030,
        min_offset in 0i64..6,
    ) {
        let mut bytes = valid(records, value_len, ts_step, 9);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        same_answers(&bytes, target, min_offset);
        bytes.truncate(cut.index(bytes.len() + 1));
        same_answers(&bytes, target, min_offset);
    }

    #[test]
    fn arbitrary_bytes_read_the_same(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        target in any::<i64>(),
        min_offset in any::<i64>(),
    ) {
        same_answers(&bytes, target, min_offset);
    }
}

//! Walks the records section of a v2 batch without allocating: every length is checked against
//! the bytes that remain, and the walk yields only what validation needs.

use super::varint::{Cursor, VarintError};
use super::RecordError;

/// What the walk learned about a batch's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    /// Number of records walked (equals the header's recordCount on success).
    pub count: i32,
    /// Largest timestampDelta seen, `None` for an empty batch.
    pub max_timestamp_delta: Option<i64>,
}

/// Walks exactly `record_count` records in `records` (the decompressed records section).
/// Fails if any record is malformed, if offset deltas are not `0..record_count` in order, or if
/// bytes remain afterwards. Every iteration consumes at least one byte, so a huge
/// `record_count` costs nothing beyond the input's own length.
pub fn walk_records(records: &[u8], record_count: i32) -> Result<RecordsSummary, RecordError> {
    let mut c = Cursor::new(records);
    let mut max_delta: Option<i64> = None;
    for index in 0..record_count {
        if c.is_empty() {
            return Err(RecordError::Malformed(format!(
                "batch declares {record_count} records but holds {index}"
            )));
        }
        let at = |what: &str| format!("record {index}: {what}");
        let len = varint(&mut c, || at("length"))?;
        let len = usize::try_from(len)
            .map_err(|_| RecordError::Malformed(at(&format!("negative length {len}"))))?;
        let body = c.take(len).ok_or_else(|| {
            RecordError::Malformed(at(&format!(
                "length {len} exceeds the {} bytes left",
                c.remaining()
            )))
        })?;
        let rec = walk_record(body).map_err(|what| RecordError::Malformed(at(&what)))?;
        // Kafka requires v2 client batches to number their records 0, 1, 2, ... in order
        // (INVALID_RECORD otherwise); the broker's offset assignment relies on it.
        if rec.offset_delta != index {
            return Err(RecordError::Malformed(at(&format!(
                "offset delta {} out of sequence",
                rec.offset_delta
            ))));
        }
        max_delta = Some(max_delta.map_or(rec.timestamp_delta, |m| m.max(rec.timestamp_delta)));
    }
    if !c.is_empty() {
        return Err(RecordError::Malformed(format!(
            "{} trailing bytes after {record_count} records",
            c.remaining()
        )));
    }
    Ok(RecordsSummary {
        count: record_count,
        max_timestamp_delta: max_delta,
    })
}

struct RecordFields {
    timestamp_delta: i64,
    offset_delta: i32,
}

/// Walks one record body (after its length prefix); the body must be consumed exactly, as
/// Kafka's `DefaultRecord.readFrom` requires.
fn walk_record(body: &[u8]) -> Result<RecordFields, String> {
    let mut c = Cursor::new(body);
    let _attributes = c.i8().ok_or("missing attributes")?;
    let timestamp_delta = c.varlong().map_err(|e| describe(e, "timestamp delta"))?;
    let offset_delta = c.varint().map_err(|e| describe(e, "offset delta"))?;
    bytes_field(&mut c, "key", true)?;
    bytes_field(&mut c, "value", true)?;
    let headers = c.varint().map_err(|e| describe(e, "header count"))?;
    if headers < 0 {
        return Err(format!("negative header count {headers}"));
    }
    for _ in 0..headers {
        // Kafka rejects null header keys; header values may be null.
        bytes_field(&mut c, "header key", false)?;
        bytes_field(&mut c, "header value", true)?;
    }
    if !c.is_empty() {
        return Err(format!(
            "{} bytes left over inside the record",
            c.remaining()
        ));
    }
    Ok(RecordFields {
        timestamp_delta,
        offset_delta,
    })
}

/// A varint length (-1 = null when `nullable`) followed by that many bytes.
fn bytes_field(c: &mut Cursor<'_>, what: &str, nullable: bool) -> Result<(), String> {
    let len = c.varint().map_err(|e| describe(e, what))?;
    if len == -1 && nullable {
        return Ok(());
    }
    let n = usize::try_from(len).map_err(|_| format!("invalid {what} length {len}"))?;
    c.take(n)
        .map(|_| ())
        .ok_or_else(|| format!("{what} length {n} exceeds the {} bytes left", c.remaining()))
}

fn describe(e: VarintError, what: &str) -> String {
    match e {
        VarintError::Truncated => format!("truncated varint in {what}"),
        VarintError::TooLong => format!("overlong varint in {what}"),
    }
}

fn varint(c: &mut Cursor<'_>, what: impl Fn() -> String) -> Result<i32, RecordError> {
    c.varint()
        .map_err(|e| RecordError::Malformed(describe(e, &what())))
}

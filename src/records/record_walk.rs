//! Walks the records section of a v2 batch without allocating: every length is checked against
//! the bytes that remain. Validation only needs a summary ([`walk_records`]); plugins see each
//! record's fields ([`visit_records`]).

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

/// One record of a batch, borrowed from its records section.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The headers, already checked by the walk.
    headers: &'a [u8],
    header_count: i32,
}

impl<'a> RecordView<'a> {
    /// The record's headers as (key, value) pairs; keys are never null.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
        let mut c = Cursor::new(self.headers);
        (0..self.header_count).map_while(move |_| {
            let key = bytes_field(&mut c, "header key", false).ok()??;
            let value = bytes_field(&mut c, "header value", true).ok()?;
            Some((key, value))
        })
    }
}

/// Walks exactly `record_count` records in `records` (the decompressed records section).
/// Fails if any record is malformed, if offset deltas are not `0..record_count` in order, or if
/// bytes remain afterwards. Every iteration consumes at least one byte, so a huge
/// `record_count` costs nothing beyond the input's own length.
pub fn walk_records(records: &[u8], record_count: i32) -> Result<RecordsSummary, RecordError> {
    walk(records, record_count, Deltas::InSequence, |_| Ok(()))
}

/// Like [`walk_records`], handing each record to `visit` once it has been checked (an error
/// from `visit` ends the walk), except that offset deltas are not required to be
/// `0..record_count`: a fetched batch of a compacted topic keeps its records' original deltas,
/// with gaps where records were removed.
pub fn visit_records<'a>(
    records: &'a [u8],
    record_count: i32,
    visit: impl FnMut(RecordView<'a>) -> Result<(), RecordError>,
) -> Result<RecordsSummary, RecordError> {
    walk(records, record_count, Deltas::AsStored, visit)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Deltas {
    /// As a producer must send them: 0, 1, 2, ...
    InSequence,
    AsStored,
}

fn walk<'a>(
    records: &'a [u8],
    record_count: i32,
    deltas: Deltas,
    mut visit: impl FnMut(RecordView<'a>) -> Result<(), RecordError>,
) -> Result<RecordsSummary, RecordError> {
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
        if deltas == Deltas::InSequence && rec.offset_delta != index {
            return Err(RecordError::Malformed(at(&format!(
                "offset delta {} out of sequence",
                rec.offset_delta
            ))));
        }
        max_delta = Some(max_delta.map_or(rec.timestamp_delta, |m| m.max(rec.timestamp_delta)));
        visit(rec)?;
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

/// Walks one record body (after its length prefix); the body must be consumed exactly, as
/// Kafka's `DefaultRecord.readFrom` requires.
fn walk_record(body: &[u8]) -> Result<RecordView<'_>, String> {
    let mut c = Cursor::new(body);
    let _attributes = c.i8().ok_or("missing attributes")?;
    let timestamp_delta = c.varlong().map_err(|e| describe(e, "timestamp delta"))?;
    let offset_delta = c.varint().map_err(|e| describe(e, "offset delta"))?;
    let key = bytes_field(&mut c, "key", true)?;
    let value = bytes_field(&mut c, "value", true)?;
    let header_count = c.varint().map_err(|e| describe(e, "header count"))?;
    if header_count < 0 {
        return Err(format!("negative header count {header_count}"));
    }
    let headers = c.rest();
    for _ in 0..header_count {
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
    Ok(RecordView {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
        header_count,
    })
}

/// A varint length (-1 = null when `nullable`) followed by that many bytes.
fn bytes_field<'a>(
    c: &mut Cursor<'a>,
    what: &str,
    nullable: bool,
) -> Result<Option<&'a [u8]>, String> {
    let len = c.varint().map_err(|e| describe(e, what))?;
    if len == -1 && nullable {
        return Ok(None);
    }
    let n = usize::try_from(len).map_err(|_| format!("invalid {what} length {len}"))?;
    c.take(n)
        .map(Some)
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

//! The record-list encoding of `wit/plugin.wit` (`types.record-list`): how the host hands a
//! batch's records to a plugin in one `list<u8>` and how a plugin hands replacements back.
//!
//! All integers are little-endian. Reading never panics and never allocates from a length it
//! has not checked against the bytes actually present.

use std::fmt;

/// A malformed record list (truncated, a negative length other than -1, bad UTF-8 name, or
/// trailing bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed record list: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// One header of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: Option<&'a [u8]>,
}

/// One record, borrowed from the list's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset_delta: u32,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u32,
}

impl<'a> Record<'a> {
    /// The record's headers in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.headers,
            left: self.header_count,
        }
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|h| h.name == name)
            .and_then(|h| h.value)
    }
}

/// Iterator over a record's headers (already validated when the record was read).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut reader = Reader { rest: self.rest };
        let header = reader.header().ok()?;
        self.rest = reader.rest;
        Some(header)
    }
}

/// A record list: validated once by [`RecordList::parse`], then iterated without copying.
#[derive(Debug, Clone)]
pub struct RecordList<'a> {
    body: &'a [u8],
    count: u32,
}

impl<'a> RecordList<'a> {
    /// Checks the whole encoding (every length, every name) and returns a view over it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { rest: bytes };
        let count = reader.u32()?;
        let body = reader.rest;
        for _ in 0..count {
            reader.record()?;
        }
        if !reader.rest.is_empty() {
            return Err(DecodeError("trailing bytes after the last record"));
        }
        Ok(RecordList { body, count })
    }

    /// How many records the list holds.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records in order.
    pub fn iter(&self) -> Records<'a> {
        Records {
            reader: Reader { rest: self.body },
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for &RecordList<'a> {
    type Item = Record<'a>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.iter()
    }
}

/// Iterator over the records of a parsed list.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    reader: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.reader.record().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

#[derive(Debug, Clone)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_le_bytes)
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError("negative length")),
            n => self.take(n as usize).map(Some),
        }
    }

    fn header(&mut self) -> Result<Header<'a>, DecodeError> {
        let len = self.u32()? as usize;
        let name = std::str::from_utf8(self.take(len)?)
            .map_err(|_| DecodeError("header name is not UTF-8"))?;
        let value = self.nullable_bytes()?;
        Ok(Header { name, value })
    }

    fn record(&mut self) -> Result<Record<'a>, DecodeError> {
        let offset_delta = self.u32()?;
        let timestamp = self.i64()?;
        let key = self.nullable_bytes()?;
        let value = self.nullable_bytes()?;
        let header_count = self.u32()?;
        let start = self.rest;
        for _ in 0..header_count {
            self.header()?;
        }
        let used = start.len() - self.rest.len();
        let headers = start.get(..used).ok_or(DecodeError("truncated"))?;
        Ok(Record {
            offset_delta,
            timestamp,
            key,
            value,
            headers,
            header_count,
        })
    }
}

/// An owned record for building lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRecord {
    pub offset_delta: u32,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl OwnedRecord {
    /// A copy of a borrowed record, to modify before writing it back.
    pub fn from_record(record: &Record<'_>) -> Self {
        OwnedRecord {
            offset_delta: record.offset_delta,
            timestamp: record.timestamp,
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers: record
                .headers()
                .map(|h| (h.name.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// Writes a record list. Lengths above `i32::MAX` cannot be represented; [`push`] refuses them.
///
/// [`push`]: RecordListBuilder::push
#[derive(Debug, Clone)]
pub struct RecordListBuilder {
    out: Vec<u8>,
    count: u32,
}

impl Default for RecordListBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordListBuilder {
    pub fn new() -> Self {
        RecordListBuilder {
            out: vec![0; 4],
            count: 0,
        }
    }

    /// Appends one record.
    pub fn push(
        &mut self,
        offset_delta: u32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Result<(), DecodeError> {
        let count = self
            .count
            .checked_add(1)
            .ok_or(DecodeError("too many records"))?;
        let header_count =
            u32::try_from(headers.len()).map_err(|_| DecodeError("too many headers"))?;
        let start = self.out.len();
        let written = (|| {
            self.out.extend_from_slice(&offset_delta.to_le_bytes());
            self.out.extend_from_slice(&timestamp.to_le_bytes());
            write_nullable(&mut self.out, key)?;
            write_nullable(&mut self.out, value)?;
            self.out.extend_from_slice(&header_count.to_le_bytes());
            for (name, value) in headers {
                let len =
                    u32::try_from(name.len()).map_err(|_| DecodeError("header name too long"))?;
                self.out.extend_from_slice(&len.to_le_bytes());
                self.out.extend_from_slice(name.as_bytes());
                write_nullable(&mut self.out, *value)?;
            }
            Ok(())
        })();
        if written.is_err() {
            // A half-written record would corrupt the list.
            self.out.truncate(start);
            return written;
        }
        self.count = count;
        Ok(())
    }

    /// Appends a borrowed record unchanged.
    pub fn push_record(&mut self, record: &Record<'_>) -> Result<(), DecodeError> {
        self.push_with_value(record, record.value)
    }

    /// Appends a borrowed record with `value` instead of its own; key, timestamp and headers
    /// are copied as they are (the common case of a plugin rewriting values).
    pub fn push_with_value(
        &mut self,
        record: &Record<'_>,
        value: Option<&[u8]>,
    ) -> Result<(), DecodeError> {
        let count = self
            .count
            .checked_add(1)
            .ok_or(DecodeError("too many records"))?;
        let start = self.out.len();
        self.out
            .extend_from_slice(&record.offset_delta.to_le_bytes());
        self.out.extend_from_slice(&record.timestamp.to_le_bytes());
        let written = write_nullable(&mut self.out, record.key)
            .and_then(|()| write_nullable(&mut self.out, value));
        if let Err(e) = written {
            self.out.truncate(start);
            return Err(e);
        }
        // The header bytes were validated when the record was read: copy them whole.
        self.out
            .extend_from_slice(&record.header_count.to_le_bytes());
        self.out.extend_from_slice(record.headers);
        self.count = count;
        Ok(())
    }

    /// Appends an owned record.
    pub fn push_owned(&mut self, record: &OwnedRecord) -> Result<(), DecodeError> {
        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect();
        self.push(
            record.offset_delta,
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        )
    }

    /// The encoded list.
    pub fn finish(mut self) -> Vec<u8> {
        let count = self.count.to_le_bytes();
        for (slot, byte) in self.out.iter_mut().zip(count) {
            *slot = byte;
        }
        self.out
    }
}

fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), DecodeError> {
    match bytes {
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(b) => {
            let len = i32::try_from(b.len()).map_err(|_| DecodeError("field too long"))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = RecordListBuilder::new();
        b.push(
            0,
            10,
            Some(b"k"),
            Some(b"{\"a\":1}"),
            &[("sig", Some(b"xy")), ("n", None)],
        )
        .unwrap();
        b.push(1, 11, None, None, &[]).unwrap();
        b.finish()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let list = RecordList::parse(&bytes).unwrap();
        assert_eq!(list.len(), 2);
        let records: Vec<_> = list.iter().collect();
        assert_eq!(records[0].key, Some(&b"k"[..]));
        assert_eq!(records[0].value, Some(&b"{\"a\":1}"[..]));
        assert_eq!(records[0].header("sig"), Some(&b"xy"[..]));
        assert_eq!(records[0].headers().count(), 2);
        assert_eq!(records[1].timestamp, 11);
        assert_eq!(records[1].key, None);
        let mut again = RecordListBuilder::new();
        for r in &list {
            again.push_owned(&OwnedRecord::from_record(&r)).unwrap();
        }
        assert_eq!(again.finish(), bytes);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(RecordList::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(RecordList::parse(&extra).is_err());
    }

    #[test]
    fn huge_counts_and_lengths_are_refused_without_allocating() {
        assert!(RecordList::parse(&u32::MAX.to_le_bytes()).is_err());
        let mut b = vec![1, 0, 0, 0];
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&i32::MAX.to_le_bytes());
        assert!(RecordList::parse(&b).is_err());
        let mut neg = vec![1, 0, 0, 0];
        neg.extend_from_slice(&0u32.to_le_bytes());
        neg.extend_from_slice(&0i64.to_le_bytes());
        neg.extend_from_slice(&(-2i32).to_le_bytes());
        assert!(RecordList::parse(&neg).is_err());
    }
}

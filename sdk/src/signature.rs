//! The canonical bytes a record signature covers, for plugins that verify signatures (the
//! `signature-verify` example) and for producers that make them. Pure encoding: no crypto, no
//! features, so the broker's tests and any client can build the same bytes.
//!
//! Layout (integers little-endian, as in the record list):
//!
//! ```text
//! "palisade-record-signature-v1" 0x00      domain separation (29 bytes)
//! i32 key-length   (-1 = null) + key bytes
//! i32 value-length (-1 = null) + value bytes
//! u32 header-count (headers other than the signature header)
//! per header, in record order:
//!   u32 name-length + UTF-8 name
//!   i32 value-length (-1 = null) + value bytes
//! ```
//!
//! Every field is length-prefixed, so no two different records encode to the same bytes. The
//! offset, timestamp, topic and partition are not covered (the broker assigns or may rewrite
//! them). Every header named like the signature header is left out.

use crate::records::Record;

/// The domain-separation prefix, NUL included.
pub const DOMAIN: &[u8] = b"palisade-record-signature-v1\0";

/// The bytes to sign for a record with this key, value and headers; headers named
/// `signature_header` are skipped. Lengths beyond `i32::MAX` saturate, which no Kafka record
/// reaches.
pub fn message<'h>(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    signature_header: &str,
) -> Vec<u8> {
    let headers: Vec<(&str, Option<&[u8]>)> = headers
        .into_iter()
        .filter(|(name, _)| *name != signature_header)
        .collect();
    let mut out = Vec::with_capacity(
        DOMAIN.len()
            + 12
            + key.map_or(0, <[u8]>::len)
            + value.map_or(0, <[u8]>::len)
            + headers
                .iter()
                .map(|(n, v)| 8 + n.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>(),
    );
    out.extend_from_slice(DOMAIN);
    nullable(&mut out, key);
    nullable(&mut out, value);
    out.extend_from_slice(&len_u32(headers.len()).to_le_bytes());
    for (name, value) in headers {
        out.extend_from_slice(&len_u32(name.len()).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        nullable(&mut out, value);
    }
    out
}

/// [`message`] for a record read from a record list.
pub fn record_message(record: &Record<'_>, signature_header: &str) -> Vec<u8> {
    message(
        record.key,
        record.value,
        record.headers().map(|h| (h.name, h.value)),
        signature_header,
    )
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(b) => {
            out.extend_from_slice(&i32::try_from(b.len()).unwrap_or(i32::MAX).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{RecordList, RecordListBuilder};

    #[test]
    fn layout_is_exactly_as_documented() {
        let m = message(
            Some(b"k"),
            None,
            [
                ("sig", Some(&b"x"[..])),
                ("h", Some(&b"vv"[..])),
                ("n", None),
            ],
            "sig",
        );
        let mut expected = DOMAIN.to_vec();
        expected.extend_from_slice(&[1, 0, 0, 0, b'k']);
        expected.extend_from_slice(&[0xff; 4]);
        expected.extend_from_slice(&[2, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0, b'h', 2, 0, 0, 0, b'v', b'v']);
        expected.extend_from_slice(&[1, 0, 0, 0, b'n', 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(m, expected);
    }

    #[test]
    fn null_empty_and_shifted_boundaries_differ() {
        let none: [(&str, Option<&[u8]>); 0] = [];
        assert_ne!(
            message(None, Some(b""), none, "s"),
            message(Some(b""), None, none, "s")
        );
        assert_ne!(
            message(Some(b"ab"), Some(b"c"), none, "s"),
            message(Some(b"a"), Some(b"bc"), none, "s")
        );
        assert_ne!(
            message(None, None, [("a", Some(&b"b"[..]))], "s"),
            message(None, None, [("ab", None)], "s")
        );
    }

    #[test]
    fn record_message_matches_message() {
        let mut b = RecordListBuilder::new();
        b.push(
            0,
            5,
            Some(b"k"),
            Some(b"v"),
            &[("a", Some(b"1")), ("sig", Some(b"z"))],
        )
        .unwrap();
        let bytes = b.finish();
        let list = RecordList::parse(&bytes).unwrap();
        let record = list.iter().next().unwrap();
        assert_eq!(
            record_message(&record, "sig"),
            message(Some(b"k"), Some(b"v"), [("a", Some(&b"1"[..]))], "sig")
        );
    }
}

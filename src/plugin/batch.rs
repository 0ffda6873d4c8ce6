//! v2 record batches <-> record lists (the plugins' view of a batch).
//!
//! [`decode`] inflates a batch (every codec, bounded like produce validation) into a record
//! list; [`encode`] builds a new batch from a plugin's replacement list, keeping everything the
//! header says about the batch (base offset, leader epoch, attributes and so the codec,
//! timestamps, producer id/epoch/base sequence) and each record's timestamp and offset delta;
//! only keys, values and headers come from the plugin. The CRC is recomputed.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use palisade_sdk::records::{RecordList, RecordListBuilder};

use crate::records::header::parse_header;
use crate::records::layout::{self, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};
use crate::records::varint::write_varlong;
use crate::records::{
    visit_records, BatchHeader, RecordError, COMPRESSION_GZIP, COMPRESSION_LZ4, COMPRESSION_NONE,
    COMPRESSION_SNAPPY, COMPRESSION_ZSTD,
};

/// A batch opened for plugins.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub header: BatchHeader,
    /// Each record's timestamp delta, kept on re-encoding.
    timestamp_deltas: Vec<i64>,
    /// The records as a record list.
    pub records: Vec<u8>,
}

fn malformed(what: impl std::fmt::Display) -> String {
    format!("record batch: {what}")
}

/// Opens one whole batch (`bytes` starts at baseOffset and holds exactly the batch). The
/// records are walked by the same code that validates produce requests.
pub fn decode(bytes: &[u8], max_decompressed: usize) -> Result<Decoded, String> {
    let header = parse_header(bytes).map_err(|e| e.to_string())?;
    let body = bytes
        .get(BATCH_HEADER_LEN..)
        .ok_or_else(|| malformed("truncated header"))?;
    let mut scratch = Vec::new();
    let section: &[u8] = match header.compression() {
        COMPRESSION_NONE => body,
        codec => {
            crate::records::decompress::decompress(codec, body, max_decompressed, &mut scratch)
                .map_err(|e| e.to_string())?;
            &scratch
        }
    };
    let count = usize::try_from(header.record_count).map_err(|_| malformed("record count"))?;
    let mut list = RecordListBuilder::new();
    let mut timestamp_deltas = Vec::with_capacity(count.min(section.len()));
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
    visit_records(section, header.record_count, |record| {
        let refuse = |what: String| RecordError::Malformed(what);
        headers.clear();
        for (name, value) in record.headers() {
            let name = std::str::from_utf8(name)
                .map_err(|_| refuse("header key is not UTF-8".to_owned()))?;
            headers.push((name, value));
        }
        let offset_delta = u32::try_from(record.offset_delta)
            .map_err(|_| refuse("negative offset delta".to_owned()))?;
        list.push(
            offset_delta,
            header.base_timestamp.saturating_add(record.timestamp_delta),
            record.key,
            record.value,
            &headers,
        )
        .map_err(|e| refuse(e.to_string()))?;
        timestamp_deltas.push(record.timestamp_delta);
        Ok(())
    })
    .map_err(malformed)?;
    Ok(Decoded {
        header,
        timestamp_deltas,
        records: list.finish(),
    })
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varlong(out, -1),
        Some(b) => {
            write_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn compress(codec: i16, data: &[u8]) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("compressing the replaced batch: {e}");
    match codec {
        COMPRESSION_NONE => Ok(data.to_vec()),
        COMPRESSION_GZIP => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(io)?;
            enc.finish().map_err(io)
        }
        // Raw snappy: Kafka's consumers (Java's xerial stream, librdkafka) read it as well as
        // the xerial framing.
        COMPRESSION_SNAPPY => snap::raw::Encoder::new()
            .compress_vec(data)
            .map_err(|e| format!("compressing the replaced batch: {e}")),
        COMPRESSION_LZ4 => {
            let mut enc = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(io)?;
            enc.write_all(data).map_err(io)?;
            let (out, res) = enc.finish();
            res.map_err(io)?;
            Ok(out)
        }
        COMPRESSION_ZSTD => zstd::bulk::compress(data, 3).map_err(io),
        other => Err(format!("unsupported compression codec {other}")),
    }
}

/// Builds the batch that replaces `original` with the records of `replacement` (already
/// checked to hold as many records).
pub fn encode(original: &Decoded, replacement: &RecordList<'_>) -> Result<Bytes, String> {
    if replacement.len() != original.timestamp_deltas.len() {
        return Err(format!(
            "plugin returned {} records for a batch of {}",
            replacement.len(),
            original.timestamp_deltas.len()
        ));
    }
    let mut section = Vec::new();
    let mut body = Vec::new();
    for (index, (record, ts_delta)) in replacement
        .iter()
        .zip(original.timestamp_deltas.iter())
        .enumerate()
    {
        body.clear();
        body.push(0); // record attributes: unused in v2
        write_varlong(&mut body, *ts_delta);
        write_varlong(&mut body, index as i64);
        put_nullable(&mut body, record.key);
        put_nullable(&mut body, record.value);
        let headers: Vec<_> = record.headers().collect();
        write_varlong(&mut body, headers.len() as i64);
        for h in headers {
            put_nullable(&mut body, Some(h.name.as_bytes()));
            put_nullable(&mut body, h.value);
        }
        write_varlong(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    let h = &original.header;
    let compressed = compress(h.compression(), &section)?;
    let total = BATCH_HEADER_LEN
        .checked_add(compressed.len())
        .filter(|&t| i32::try_from(t).is_ok())
        .ok_or_else(|| "replaced batch is too large".to_string())?;
    let mut out = BytesMut::with_capacity(total);
    out.put_i64(h.base_offset);
    out.put_i32(i32::try_from(total - LOG_OVERHEAD).map_err(|_| "replaced batch is too large")?);
    out.put_i32(h.partition_leader_epoch);
    out.put_i8(MAGIC_V2);
    out.put_u32(0); // CRC, filled in below
    out.put_i16(h.attributes);
    out.put_i32(h.last_offset_delta);
    out.put_i64(h.base_timestamp);
    out.put_i64(h.max_timestamp);
    out.put_i64(h.producer_id);
    out.put_i16(h.producer_epoch);
    out.put_i32(h.base_sequence);
    out.put_i32(h.record_count);
    out.put_slice(&compressed);
    debug_assert_eq!(out.len(), total);
    if !layout::write_crc(&mut out) {
        return Err("replaced batch is shorter than its header".to_owned());
    }
    Ok(out.freeze())
}

/// Splits a fetch response's records into whole v2 batches; a partial batch at the end (the
/// log may cut one at the size limit) is left out.
pub fn split_batches(records: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(len) = pos
        .checked_add(layout::BATCH_LENGTH_AT)
        .and_then(|at| layout::read_i32(records, at))
    {
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| (pos + LOG_OVERHEAD).checked_add(l))
            .filter(|&end| end <= records.len())
        else {
            break;
        };
        out.push(pos..end);
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use palisade_sdk::records::OwnedRecord;

    fn kafka_batch(compression: Compression, n: i32) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 7,
                producer_id: 42,
                producer_epoch: 3,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: 100 + i,
                timestamp: 1_700_000_000_000 + i64::from(i) * 5,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("{{\"n\":{i}}}"))),
                headers: [(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn decode_then_encode_is_valid_and_keeps_the_header_for_every_codec() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let original = kafka_batch(compression, 5);
            let decoded = decode(&original, 1 << 20).unwrap();
            let list = RecordList::parse(&decoded.records).unwrap();
            assert_eq!(list.len(), 5);
            let first = list.iter().next().unwrap();
            assert_eq!(first.value, Some(&b"{\"n\":0}"[..]));
            assert_eq!(first.header("h"), Some(&b"v"[..]));
            // Replace every value; the result must pass produce validation.
            let mut b = RecordListBuilder::new();
            for r in &list {
                let mut o = OwnedRecord::from_record(&r);
                o.value = Some(b"replaced".to_vec());
                b.push_owned(&o).unwrap();
            }
            let replacement = b.finish();
            let encoded = encode(&decoded, &RecordList::parse(&replacement).unwrap()).unwrap();
            let validated = crate::records::validate_batches(&encoded, 1 << 20).unwrap();
            assert_eq!(validated.len(), 1);
            let h = &validated[0].header;
            assert_eq!(h, &decoded.header_with_length(h.batch_length));
            let again = decode(&encoded, 1 << 20).unwrap();
            let again_list = RecordList::parse(&again.records).unwrap();
            for (i, r) in again_list.iter().enumerate() {
                assert_eq!(r.value, Some(&b"replaced"[..]));
                assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64 * 5);
                assert_eq!(r.key, Some(format!("k{i}").as_bytes()));
            }
            assert_eq!(again.header.partition_leader_epoch, 7);
        }
    }

    #[test]
    fn a_wrong_record_count_is_refused() {
        let decoded = decode(&kafka_batch(Compression::None, 3), 1 << 20).unwrap();
        let one = {
            let mut b = RecordListBuilder::new();
            b.push(0, 0, None, None, &[]).unwrap();
            b.finish()
        };
        assert!(encode(&decoded, &RecordList::parse(&one).unwrap()).is_err());
    }

    #[test]
    fn split_drops_a_partial_tail() {
        let a = kafka_batch(Compression::None, 2);
        let mut both = a.to_vec();
        both.extend_from_slice(&a[..20]);
        assert_eq!(split_batches(&both), vec![0..a.len()]);
    }

    impl Decoded {
        fn header_with_length(&self, batch_length: i32) -> BatchHeader {
            BatchHeader {
                batch_length,
                ..self.header.clone()
            }
        }
    }
}

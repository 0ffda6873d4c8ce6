//! Tests for batch validation: batches built by `kafka_protocol`'s encoder (the same wire format
//! real clients send), then damaged in targeted ways.

use std::io::Write;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;

use super::*;

const MIB: usize = 1024 * 1024;

fn record(i: i64, value_len: usize) -> Record {
    let mut headers = IndexMap::new();
    headers.insert(
        StrBytes::from_static_str("h"),
        Some(Bytes::from_static(b"v")),
    );
    headers.insert(StrBytes::from_static_str("null"), None);
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 7,
        producer_id: 1234,
        producer_epoch: 3,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: 100 + i as i32,
        timestamp: 1_700_000_000_000 + i * 10,
        key: if i % 2 == 0 {
            Some(Bytes::from(format!("key-{i}")))
        } else {
            None
        },
        value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; value_len])),
        headers,
    }
}

fn encode(records: &[Record], compression: Compression) -> BytesMut {
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).unwrap();
    buf
}

fn batch(n: i64, compression: Compression) -> BytesMut {
    let recs: Vec<Record> = (0..n).map(|i| record(i, 100)).collect();
    encode(&recs, compression)
}

/// Recomputes the CRC of the single batch at the front of `b` after a deliberate edit.
fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Replaces a batch's records section with `body` under `codec`, fixing length and CRC: how
/// batches in formats the encoder cannot produce (raw snappy, bombs) are built.
fn rebuild(header_from: &[u8], codec: i16, body: &[u8]) -> Bytes {
    let mut b = header_from[..61].to_vec();
    b.extend_from_slice(body);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let attrs = (i16::from_be_bytes([b[21], b[22]]) & !7) | codec;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    fix_crc(&mut b);
    Bytes::from(b)
}

fn set_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn expect_header(h: &BatchHeader, n: i32, codec: i16) {
    assert_eq!(h.base_offset, 0);
    assert_eq!(h.record_count, n);
    assert_eq!(h.last_offset_delta, n - 1);
    assert_eq!(h.base_timestamp, 1_700_000_000_000);
    assert_eq!(h.max_timestamp, 1_700_000_000_000 + i64::from(n - 1) * 10);
    assert_eq!(h.producer_id, 1234);
    assert_eq!(h.producer_epoch, 3);
    assert_eq!(h.base_sequence, 100);
    assert_eq!(h.compression(), codec);
    assert!(!h.is_transactional());
    assert!(!h.is_control());
}

#[test]
fn every_codec_validates() {
    for (c, code) in [
        (Compression::None, 0),
        (Compression::Gzip, 1),
        (Compression::Snappy, 2),
        (Compression::Lz4, 3),
        (Compression::Zstd, 4),
    ] {
        let b = batch(5, c).freeze();
        let out = validate_batches(&b, MIB).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert_eq!(out.len(), 1, "{c:?}");
        expect_header(&out[0].header, 5, code);
        assert_eq!(out[0].bytes, b);
        assert_eq!(out[0].header.total_size(), b.len());
        assert_eq!(out[0].header.last_offset(), 4);
    }
}

#[test]
fn raw_snappy_validates() {
    let plain = batch(5, Compression::None);
    let body = snap::raw::Encoder::new()
        .compress_vec(&plain[61..])
        .unwrap();
    let b = rebuild(&plain, 2, &body);
    let out = validate_batches(&b, MIB).unwrap();
    expect_header(&out[0].header, 5, 2);
}

#[test]
fn xerial_snappy_multi_block_and_concatenated_streams() {
    let plain = batch(50, Compression::None);
    let records = &plain[61..];
    let (a, z) = records.split_at(records.len() / 3);
    let mut body = Vec::new();
    for part in [a, z] {
        // Each part gets its own stream header, as when snappy-java streams are joined.
        body.extend_from_slice(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
        for block in part.chunks(1000) {
            let c = snap::raw::Encoder::new().compress_vec(block).unwrap();
            body.extend_from_slice(&(c.len() as i32).to_be_bytes());
            body.extend_from_slice(&c);
        }
    }
    let b = rebuild(&plain, 2, &body);
    validate_batches(&b, MIB).unwrap();
    // A cut-off block inside the framing is corrupt, not silently short.
    let cut = rebuild(&plain, 2, &body[..body.len() - 3]);
    assert!(matches!(
        validate_batches(&cut, MIB),
        Err(RecordError::Corrupt(_))
    ));
}

#[test]
fn empty_buffer_yields_nothing() {
    assert_eq!(validate_batches(&Bytes::new(), MIB).unwrap().len(), 0);
}

#[test]
fn two_concatenated_batches() {
    let mut buf = batch(3, Compression::None);
    let mut second = batch(4, Compression::Lz4);
    // Give the second batch its own base offset, as a client appending to the request would.
    second[..8].copy_from_slice(&3i64.to_be_bytes());
    buf.extend_from_slice(&second);
    let buf = buf.freeze();
    let out = validate_batches(&buf, MIB).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].header.record_count, 3);
    assert_eq!(out[1].header.record_count, 4);
    assert_eq!(out[1].header.base_offset, 3);
    assert_eq!(out[0].bytes.len() + out[1].bytes.len(), buf.len());
    assert_eq!(out[1].bytes, second.freeze());
}

#[test]
fn flipped_crc_byte() {
    let mut b = batch(3, Compression::None);
    b[18] ^= 0x01;
    assert!(matches!(
        validate_batches(&b.freeze(), MIB),
        Err(RecordError::CrcMismatch { .. })
    ));
    // Damage to covered bytes is caught the same way.
    let mut b = batch(3, Compression::Zstd);
    let last = b.len() - 1;
    b[last] ^= 0x80;
    assert!(matches!(
        validate_batches(&b.freeze(), MIB),
        Err(RecordError::CrcMismatch { .. })
    ));
}

#[test]
fn truncated_batches() {
    let full = batch(3, Compression::None).freeze();
    for cut in [1, 11, 12, 16, 17, 60, 61, full.len() - 1] {
        let b = full.slice(..cut);
        assert!(
            matches!(validate_batches(&b, MIB), Err(RecordError::Truncated(_))),
            "cut at {cut}: {:?}",
            validate_batches(&b, MIB)
        );
    }
    // A complete batch followed by a partial one is rejected as a whole.
    let mut two = BytesMut::from(&full[..]);
    two.extend_from_slice(&full[..30]);
    assert!(matches!(
        validate_batches(&two.freeze(), MIB),
        Err(RecordError::Truncated(_))
    ));
}

#[test]
fn legacy_magic_rejected() {
    for magic in [0u8, 1, 3, 0xff] {
        let mut b = batch(3, Compression::None);
        b[16] = magic;
        assert_eq!(
            validate_batches(&b.freeze(), MIB).unwrap_err(),
            RecordError::UnsupportedMagic(magic as i8)
        );
    }
    // A short legacy message (v0 overhead is 14 bytes) still gets the magic error.
    let mut v0 = vec![0u8; 12 + 14];
    set_i32(&mut v0, 8, 14);
    v0[16] = 0;
    assert_eq!(
        validate_batches(&Bytes::from(v0), MIB).unwrap_err(),
        RecordError::UnsupportedMagic(0)
    );
}

#[test]
fn bad_batch_lengths() {
    for (len, want_truncated) in [
        (-1, false),
        (i32::MIN, false),
        (48, false),
        (0, false),
        (i32::MAX, true),
    ] {
        let mut b = batch(3, Compression::None);
        set_i32(&mut b, 8, len);
        let err = validate_batches(&b.freeze(), MIB).unwrap_err();
        if want_truncated {
            assert!(matches!(err, RecordError::Truncated(_)), "{len}: {err}");
        } else {
            assert!(matches!(err, RecordError::Malformed(_)), "{len}: {err}");
        }
    }
    // Shorter than the real batch: the rest is read as a (bogus) next batch or the CRC fails.
    let mut b = batch(3, Compression::None);
    let real = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    set_i32(&mut b, 8, real - 10);
    assert!(validate_batches(&b.freeze(), MIB).is_err());
}

#[test]
fn unsupported_codec() {
    for codec in [5i16, 6, 7] {
        let plain = batch(2, Compression::None);
        let b = rebuild(&plain, codec, &plain[61..]);
        assert_eq!(
            validate_batches(&b, MIB).unwrap_err(),
            RecordError::UnsupportedCompression(codec)
        );
    }
}

#[test]
fn record_count_mismatch() {
    for (count, last_delta) in [(4, 3), (2, 1), (0, 2)] {
        for c in [Compression::None, Compression::Gzip] {
            let mut b = batch(3, c);
            set_i32(&mut b, 57, count);
            set_i32(&mut b, 23, last_delta);
            fix_crc(&mut b);
            let err = validate_batches(&b.freeze(), MIB).unwrap_err();
            assert!(
                matches!(err, RecordError::Malformed(_)),
                "{count} {c:?}: {err}"
            );
        }
    }
    // Count and last offset delta disagree.
    let mut b = batch(3, Compression::None);
    set_i32(&mut b, 23, 5);
    fix_crc(&mut b);
    assert!(matches!(
        validate_batches(&b.freeze(), MIB),
        Err(RecordError::Malformed(_))
    ));
    // Negative count.
    let mut b = batch(3, Compression::None);
    set_i32(&mut b, 57, -1);
    fix_crc(&mut b);
    assert!(matches!(
        validate_batches(&b.freeze(), MIB),
        Err(RecordError::Malformed(_))
    ));
}

#[test]
fn empty_batch_is_structurally_valid() {
    let plain = batch(1, Compression::None);
    let mut b = rebuild(&plain, 0, &[]).to_vec();
    set_i32(&mut b, 57, 0);
    fix_crc(&mut b);
    let out = validate_batches(&Bytes::from(b), MIB).unwrap();
    assert_eq!(out[0].header.record_count, 0);
}

#[test]
fn corrupted_varint() {
    // The first record's length varint becomes an endless continuation run.
    let mut b = batch(3, Compression::None);
    for i in 61..67 {
        b[i] = 0xff;
    }
    fix_crc(&mut b);
    let err = validate_batches(&b.freeze(), MIB).unwrap_err();
    assert!(
        matches!(err, RecordError::Malformed(ref m) if m.contains("varint")),
        "{err}"
    );

    // A record length pointing past the end.
    let mut b = batch(1, Compression::None);
    b[61] = 0x7e; // zigzag 63, more than is left
    fix_crc(&mut b);
    assert!(matches!(
        validate_batches(&b.freeze(), MIB),
        Err(RecordError::Malformed(_))
    ));
}

#[test]
fn offset_delta_out_of_order() {
    // Encode records with offsets 0 and 1 swapped: valid framing, wrong deltas.
    let mut recs: Vec<Record> = (0..3).map(|i| record(i, 10)).collect();
    recs.swap(0, 1);
    let b = encode(&recs, Compression::None);
    let err = validate_batches(&b.freeze(), MIB).unwrap_err();
    assert!(
        matches!(err, RecordError::Malformed(ref m) if m.contains("offset delta")),
        "{err}"
    );
}

#[test]
fn trailing_bytes_in_records() {
    let plain = batch(2, Compression::None);
    let mut body = plain[61..].to_vec();
    body.push(0);
    let b = rebuild(&plain, 0, &body);
    assert!(matches!(
        validate_batches(&b, MIB),
        Err(RecordError::Malformed(_))
    ));
    let z = zstd::encode_all(&body[..], 1).unwrap();
    let b = rebuild(&plain, 4, &z);
    assert!(matches!(
        validate_batches(&b, MIB),
        Err(RecordError::Malformed(_))
    ));
}

#[test]
fn transactional_and_control_batches_are_returned() {
    let mut recs: Vec<Record> = (0..2).map(|i| record(i, 10)).collect();
    for r in &mut recs {
        r.transactional = true;
    }
    let out = validate_batches(&encode(&recs, Compression::None).freeze(), MIB).unwrap();
    assert!(out[0].header.is_transactional());
    for r in &mut recs {
        r.control = true;
    }
    let out = validate_batches(&encode(&recs, Compression::None).freeze(), MIB).unwrap();
    assert!(out[0].header.is_control());
}

#[test]
fn decompression_limit_exact_boundary() {
    let plain = batch(5, Compression::None);
    let records_len = plain.len() - 61;
    let b = batch(5, Compression::Zstd).freeze();
    validate_batches(&b, records_len).unwrap();
    assert_eq!(
        validate_batches(&b, records_len - 1).unwrap_err(),
        RecordError::DecompressionLimit(records_len - 1)
    );
    let b = batch(5, Compression::Snappy).freeze();
    validate_batches(&b, records_len).unwrap();
    assert!(matches!(
        validate_batches(&b, records_len - 1),
        Err(RecordError::DecompressionLimit(_))
    ));
}

/// Streams `total` zero bytes through `w` without materialising them.
fn write_zeros(w: &mut impl Write, total: usize) {
    let zeros = vec![0u8; MIB];
    for _ in 0..total / MIB {
        w.write_all(&zeros).unwrap();
    }
}

/// A bomb fails at the cap. That it stops there rather than after inflating everything is
/// what [`assert_output_capped`] shows (a bound on memory, not on time: a busy machine is slow,
/// not wrong).
fn assert_bomb_rejected(b: &Bytes) {
    assert_eq!(
        validate_batches(b, 16 * MIB).unwrap_err(),
        RecordError::DecompressionLimit(16 * MIB)
    );
}

/// The output buffer never grows past the cap, whatever the stream expands to.
fn assert_output_capped(codec: i16, body: &[u8]) {
    let mut out = Vec::new();
    let err = decompress::decompress(codec, body, 16 * MIB, &mut out).unwrap_err();
    assert_eq!(err, RecordError::DecompressionLimit(16 * MIB));
    assert!(out.capacity() <= 16 * MIB, "capacity {}", out.capacity());
}

#[test]
fn zstd_bomb() {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    write_zeros(&mut enc, 64 * MIB);
    let body = enc.finish().unwrap();
    assert!(body.len() < MIB, "bomb is {} bytes", body.len());
    assert_bomb_rejected(&rebuild(&batch(1, Compression::None), 4, &body));
    assert_output_capped(COMPRESSION_ZSTD, &body);
}

#[test]
fn gzip_bomb() {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    write_zeros(&mut enc, 64 * MIB);
    let body = enc.finish().unwrap();
    assert!(body.len() < MIB, "bomb is {} bytes", body.len());
    assert_bomb_rejected(&rebuild(&batch(1, Compression::None), 1, &body));
    assert_output_capped(COMPRESSION_GZIP, &body);
}

#[test]
fn lz4_bomb() {
    let mut enc = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
    write_zeros(&mut enc, 32 * MIB);
    let (body, res) = enc.finish();
    res.unwrap();
    assert_bomb_rejected(&rebuild(&batch(1, Compression::None), 3, &body));
    assert_output_capped(COMPRESSION_LZ4, &body);
}

#[test]
fn snappy_claimed_length_checked_before_allocation() {
    // A raw block header claiming 1 GiB in five bytes: rejected without reserving it.
    let mut body = Vec::new();
    let mut n: u32 = 1 << 30;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    body.push(0);
    let b = rebuild(&batch(1, Compression::None), 2, &body);
    assert!(matches!(
        validate_batches(&b, usize::MAX),
        Err(RecordError::Corrupt(_))
    ));
    assert!(matches!(
        validate_batches(&b, 16 * MIB),
        Err(RecordError::Corrupt(_) | RecordError::DecompressionLimit(_))
    ));
}

#[test]
fn zstd_window_too_large_is_rejected() {
    // A frame whose declared window exceeds what the cap allows is refused by the decoder
    // instead of allocating the window.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(27))
        .unwrap();
    enc.write_all(&[1u8; 100]).unwrap();
    let body = enc.finish().unwrap();
    let b = rebuild(&batch(1, Compression::None), 4, &body);
    assert!(matches!(
        validate_batches(&b, MIB),
        Err(RecordError::Corrupt(_))
    ));
}

#[test]
fn truncated_compressed_streams_are_corrupt() {
    for c in [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        let full = batch(20, c);
        let b = rebuild(&full, c as i16, &full[61..full.len() - 5]);
        let err = validate_batches(&b, MIB).unwrap_err();
        assert!(
            matches!(err, RecordError::Corrupt(_) | RecordError::Malformed(_)),
            "{c:?}: {err}"
        );
    }
}

#[test]
fn window_log_bounds() {
    assert_eq!(decompress::zstd_window_log_max(0), 23);
    assert_eq!(decompress::zstd_window_log_max(MIB), 23);
    assert_eq!(decompress::zstd_window_log_max(16 * MIB), 24);
    assert_eq!(decompress::zstd_window_log_max(16 * MIB + 1), 25);
    assert_eq!(decompress::zstd_window_log_max(usize::MAX), 27);
}

fn valid_seeds() -> Vec<Vec<u8>> {
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .map(|c| batch(4, c).to_vec())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate_batches(&Bytes::from(data), 64 * 1024);
    }

    /// Mutations of valid batches; with `recrc` the CRC is recomputed so the damage reaches
    /// the decompressors and the record walk instead of stopping at the checksum.
    #[test]
    fn mutated_batches_never_panic(
        seed in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        recrc in any::<bool>(),
    ) {
        let mut b = valid_seeds().swap_remove(seed);
        for (at, v) in &edits {
            let i = at.index(b.len());
            b[i] = *v;
        }
        if recrc && b.len() >= 61 {
            fix_crc(&mut b);
        }
        if truncate {
            b.truncate(cut.index(b.len() + 1));
        }
        let _ = validate_batches(&Bytes::from(b), 64 * 1024);
    }
}

#[test]
fn huge_record_count_fails_without_work() {
    // recordCount is attacker-controlled; it must not drive allocation or a long loop.
    for c in [Compression::None, Compression::Lz4] {
        let mut b = batch(2, c);
        set_i32(&mut b, 57, i32::MAX);
        set_i32(&mut b, 23, i32::MAX - 1);
        fix_crc(&mut b);
        let err = validate_batches(&b.freeze(), MIB).unwrap_err();
        assert!(
            matches!(err, RecordError::Malformed(ref m) if m.contains("holds 2")),
            "{err}"
        );
    }
}

#[test]
fn negative_lengths_inside_records() {
    // Key length -2 (zigzag 3) is neither null nor a size.
    let r = [
        0x0e, // record length 7
        0x00, // attributes
        0x00, // timestamp delta
        0x00, // offset delta
        0x03, // key length -2
        0x01, // value null
        0x00, // no headers
        0x00, // padding so the length matches
    ];
    let err = walk_records(&r, 1).unwrap_err();
    assert!(
        matches!(err, RecordError::Malformed(ref m) if m.contains("key length")),
        "{err}"
    );
    // Null header key (-1) is rejected; a null header value is fine.
    let ok = [0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00, 0x01];
    assert_eq!(walk_records(&ok, 1).unwrap().count, 1);
    let null_key = [0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01, 0x01];
    assert!(walk_records(&null_key, 1).is_err());
    // Bytes left inside a record body are an error, as in Kafka's DefaultRecord.readFrom.
    let slack = [0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00];
    let err = walk_records(&slack, 1).unwrap_err();
    assert!(
        matches!(err, RecordError::Malformed(ref m) if m.contains("left over")),
        "{err}"
    );
}

#[test]
fn max_timestamp_from_header_is_authoritative() {
    let mut b = batch(3, Compression::None);
    b[35..43].copy_from_slice(&42i64.to_be_bytes());
    fix_crc(&mut b);
    let out = validate_batches(&b.freeze(), MIB).unwrap();
    assert_eq!(out[0].header.max_timestamp, 42);
}

#[test]
fn snappy_expansion_bound_admits_maximal_real_ratio() {
    // Zeros are the best case for snappy (64-byte copies from 3 bytes); they must still pass
    // the claimed-length plausibility check.
    let zeros = vec![0u8; 4 * MIB];
    let block = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
    let mut out = Vec::new();
    decompress::decompress(COMPRESSION_SNAPPY, &block, 4 * MIB, &mut out).unwrap();
    assert_eq!(out.len(), 4 * MIB);
    assert!(out.capacity() <= 4 * MIB);
    assert_eq!(
        decompress::decompress(COMPRESSION_SNAPPY, &block, 4 * MIB - 1, &mut out).unwrap_err(),
        RecordError::DecompressionLimit(4 * MIB - 1)
    );
}

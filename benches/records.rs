//! Throughput of `validate_batches` on a produce-sized batch: 16 records of 1 KiB, uncompressed
//! and lz4 (the codec most Kafka deployments pick for speed).

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use palisade::records::validate_batches;

const RECORDS: usize = 16;
const VALUE_LEN: usize = 1024;
const CAP: usize = 16 * 1024 * 1024;

/// Printable pseudo-random values: compressible roughly like text, so lz4 does real work
/// instead of collapsing runs.
fn value(seed: u64) -> Bytes {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v = Vec::with_capacity(VALUE_LEN);
    for _ in 0..VALUE_LEN {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = usize::try_from(x >> 58).unwrap_or(0) % ALPHABET.len();
        v.push(ALPHABET.get(i).copied().unwrap_or(b'a'));
    }
    Bytes::from(v)
}

fn batch(compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..RECORDS)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(value(i as u64)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression,
    };
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, records.iter(), &opts) {
        eprintln!("encoding the bench batch failed: {e}");
        std::process::exit(1);
    }
    buf.freeze()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_batches");
    for (name, compression) in [("none", Compression::None), ("lz4", Compression::Lz4)] {
        let b = batch(compression);
        if let Err(e) = validate_batches(&b, CAP) {
            eprintln!("bench batch {name} does not validate: {e}");
            std::process::exit(1);
        }
        // Throughput in uncompressed record bytes, so the two codecs compare like for like.
        group.throughput(Throughput::Bytes((RECORDS * VALUE_LEN) as u64));
        group.bench_function(name, |bench| bench.iter(|| validate_batches(&b, CAP)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

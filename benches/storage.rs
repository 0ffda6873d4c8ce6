//! Batch append: 16 KiB batches (16 x 1 KiB records) appended to one partition, page cache
//! only (Durability::Written), and acks=all style (Durability::Durable) with 64 concurrent
//! appenders sharing group commits. Read: 1 MiB reads walking a 64 MiB partition from the
//! start (what a consumer catching up costs the broker).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::Compression;
use palisade::storage::{
    AppendBatch, Durability, FlushPolicy, LogManager, ProducerInfo, StorageConfig, TopicConfig,
};

fn batch() -> Bytes {
    let value = vec![b'x'; 1024];
    common::batch(&[&value[..]; 16], Compression::None, None)
}

fn append_batch(bytes: &Bytes) -> AppendBatch {
    AppendBatch {
        bytes: BytesMut::from(&bytes[..]),
        record_count: 16,
        max_timestamp: 1_700_000_000_000,
        producer: ProducerInfo {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: 16,
        },
    }
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogManager::open(StorageConfig {
        flush: FlushPolicy::GroupCommit,
        flush_interval_ms: 1000,
        retention_check_interval_ms: 3_600_000,
        ..StorageConfig::new(dir.path())
    })
    .unwrap();
    let topic = logs
        .create_topic("bench", 1, TopicConfig::default())
        .unwrap();
    let partition = topic.partition(0).unwrap();
    let bytes = batch();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("batch_append");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("16KiB_page_cache", |b| {
        b.iter(|| {
            rt.block_on(partition.append(append_batch(&bytes), Durability::Written))
                .unwrap()
        })
    });
    group.throughput(Throughput::Bytes(bytes.len() as u64 * 64));
    group.sample_size(20);
    group.bench_function("64x16KiB_group_commit", |b| {
        b.iter(|| {
            rt.block_on(async {
                let appends =
                    (0..64).map(|_| partition.append(append_batch(&bytes), Durability::Durable));
                for r in futures::future::join_all(appends).await {
                    r.unwrap();
                }
            })
        })
    });
    group.finish();
    // Reads: fill the partition with 4,000 batches (64 MiB), then walk it in 1 MiB reads.
    for _ in 0..4000 {
        rt.block_on(partition.append(append_batch(&bytes), Durability::Written))
            .unwrap();
    }
    let end = partition.high_watermark();
    let start = end - 4000 * 16;
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(bytes.len() as u64 * 4000));
    group.sample_size(10);
    group.bench_function("64MiB_in_1MiB_reads", |b| {
        b.iter(|| {
            let mut offset = start;
            while offset < end {
                let read = partition.read(offset, 1 << 20).unwrap();
                let batches = read.records.len() / bytes.len();
                assert!(batches > 0, "no progress at offset {offset}");
                offset += batches as i64 * 16;
            }
        })
    });
    group.finish();
    logs.shutdown().unwrap();
}

criterion_group!(benches, append);
criterion_main!(benches);

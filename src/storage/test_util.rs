//! Test helpers: hand-rolled valid v2 record batches and a manager in a tempdir.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;

use super::batch::StoredHeader;
use super::{AppendBatch, FlushPolicy, LogManager, ProducerInfo, StorageConfig};

use crate::records::varint::write_varlong as varint;

/// Parameters of a test batch.
#[derive(Clone, Copy)]
pub struct Spec {
    pub records: i32,
    pub value_len: usize,
    pub timestamp: i64,
    pub producer_id: i64,
    pub epoch: i16,
    pub sequence: i32,
    /// Byte used to fill values, so batches differ.
    pub fill: u8,
    /// Record i has timestamp `timestamp + i * ts_step`.
    pub ts_step: i64,
}

impl Spec {
    pub fn new(records: i32, value_len: usize) -> Self {
        Self {
            records,
            value_len,
            timestamp: 1_700_000_000_000,
            producer_id: -1,
            epoch: -1,
            sequence: -1,
            fill: b'v',
            ts_step: 0,
        }
    }
    pub fn ts(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
    pub fn idem(mut self, producer_id: i64, epoch: i16, sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.epoch = epoch;
        self.sequence = sequence;
        self
    }
    pub fn ts_step(mut self, step: i64) -> Self {
        self.ts_step = step;
        self
    }
    pub fn fill(mut self, fill: u8) -> Self {
        self.fill = fill;
        self
    }
}

/// A valid, uncompressed v2 batch with base offset 0.
pub fn batch_bytes(spec: Spec) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..spec.records {
        let mut body = vec![0u8]; // attributes
        varint(&mut body, i64::from(i) * spec.ts_step); // timestamp delta
        varint(&mut body, i64::from(i)); // offset delta
        varint(&mut body, -1); // null key
        varint(&mut body, spec.value_len as i64);
        body.extend(std::iter::repeat_n(spec.fill, spec.value_len));
        varint(&mut body, 0); // headers
        varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut covered = Vec::new(); // attributes .. end: what the CRC covers
    covered.extend_from_slice(&0i16.to_be_bytes());
    covered.extend_from_slice(&(spec.records - 1).to_be_bytes());
    covered.extend_from_slice(&spec.timestamp.to_be_bytes());
    let max_ts = spec.timestamp + i64::from(spec.records - 1) * spec.ts_step;
    covered.extend_from_slice(&max_ts.to_be_bytes());
    covered.extend_from_slice(&spec.producer_id.to_be_bytes());
    covered.extend_from_slice(&spec.epoch.to_be_bytes());
    covered.extend_from_slice(&spec.sequence.to_be_bytes());
    covered.extend_from_slice(&spec.records.to_be_bytes());
    covered.extend_from_slice(&records);
    let mut out = Vec::new();
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((4 + 1 + 4 + covered.len()) as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&crc32c::crc32c(&covered).to_be_bytes());
    out.extend_from_slice(&covered);
    out
}

pub fn append_batch(bytes: &[u8]) -> AppendBatch {
    let header = StoredHeader::parse(bytes).unwrap();
    AppendBatch {
        bytes: BytesMut::from(bytes),
        record_count: header.record_count,
        max_timestamp: header.max_timestamp,
        producer: ProducerInfo {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            record_count: header.record_count,
        },
    }
}

pub fn batch(spec: Spec) -> AppendBatch {
    append_batch(&batch_bytes(spec))
}

pub fn config(dir: &Path) -> StorageConfig {
    StorageConfig {
        flush: FlushPolicy::GroupCommit,
        flush_interval_ms: 200,
        retention_check_interval_ms: 3_600_000,
        ..StorageConfig::new(dir)
    }
}

pub fn open(dir: &Path) -> Arc<LogManager> {
    LogManager::open(config(dir)).unwrap()
}

/// Splits concatenated batches into (base offset, last offset, bytes).
pub fn split(records: &[u8]) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let frame = super::batch::BatchFrame::peek(rest).unwrap();
        out.push((
            frame.base_offset,
            frame.last_offset,
            rest[..frame.size].to_vec(),
        ));
        rest = &rest[frame.size..];
    }
    out
}

/// Every batch from the log start to the high watermark.
pub fn read_all(partition: &super::Partition) -> Vec<(i64, i64, Vec<u8>)> {
    let mut offset = partition.log_start_offset();
    let mut all = Vec::new();
    loop {
        let result = partition.read(offset, 64 * 1024).unwrap();
        if result.records.is_empty() {
            return all;
        }
        let batches = split(&result.records);
        offset = batches.last().unwrap().1 + 1;
        all.extend(batches);
    }
}

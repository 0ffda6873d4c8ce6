//! Frame decode: a Produce request carrying one 16 KiB batch (16 x 1 KiB records), from raw
//! frame bytes to a typed request, the way the connection loop does it.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use palisade::protocol::codec;

fn frame() -> Bytes {
    let value = vec![b'x'; 1024];
    let batch = common::batch(&[&value[..]; 16], Compression::None, None);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, ApiKey::Produce.request_header_version(9))
        .unwrap();
    req.encode(&mut buf, 9).unwrap();
    buf.freeze()
}

fn decode(c: &mut Criterion) {
    let frame = frame();
    let mut group = c.benchmark_group("frame_decode");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("produce_v9_16KiB", |b| {
        b.iter(|| {
            let prefix = codec::peek_header(&frame).unwrap();
            codec::decode_request(ApiKey::Produce, prefix.api_version, frame.clone()).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);

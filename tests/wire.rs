//! Protocol behaviour checked byte-for-byte with hand-built requests: acks=0, long-poll fetch,
//! fetch size limits, idempotent sequence checks, and auto-creation switched off.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::Raw;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn fetch(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max)])])
}

async fn produce(
    raw: &mut Raw,
    topic: &str,
    values: &[&[u8]],
    producer: Option<(i64, i16, i32)>,
) -> (i16, i64) {
    let resp: ProduceResponse = raw
        .request(
            ApiKey::Produce,
            9,
            &common::produce_request(
                topic,
                0,
                -1,
                common::batch(values, Compression::None, producer),
            ),
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test]
async fn acks_zero_gets_no_response_and_the_next_request_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "t", 1, &[]).await;
    // Send acks=0 by hand (no response is due), then a Metadata request on the same connection:
    // the first frame back must be the Metadata answer.
    use kafka_protocol::protocol::Encodable;
    let mut buf = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(1000)
        .encode(&mut buf, ApiKey::Produce.request_header_version(9))
        .unwrap();
    common::produce_request(
        "t",
        0,
        0,
        common::batch(&[b"fire and forget"], Compression::None, None),
    )
    .encode(&mut buf, 9)
    .unwrap();
    raw.send_frame(&buf).await;
    let meta: MetadataResponse = raw
        .request(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    // Besides the internal audit topic.
    assert_eq!(meta.topics.iter().filter(|t| !t.is_internal).count(), 1);
    // With group commit an acks=0 batch becomes visible once its fsync round is done.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut high_watermark = 0;
    while high_watermark != 1 && tokio::time::Instant::now() < deadline {
        let resp: FetchResponse = raw
            .request(ApiKey::Fetch, 11, &fetch("t", 0, 0, 100, 1 << 20, 1 << 20))
            .await;
        high_watermark = resp.responses[0].partitions[0].high_watermark;
    }
    assert_eq!(high_watermark, 1, "acks=0 batch not stored");
    broker.shutdown().await;
}

#[tokio::test]
async fn long_poll_fetch_wakes_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "t", 1, &[]).await;
    let addr = broker.addresses[0];
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut p = Raw::connect(addr).await;
        produce(&mut p, "t", &[b"wake up"], None).await
    });
    // max_wait is the broker's cap (30 s), and Raw reads a response with a 10 s deadline: an
    // answer at all is a wake-up on data, however slow the machine (no bound on how soon).
    let started = Instant::now();
    let request = fetch("t", 0, 0, i32::MAX, 1 << 20, 1 << 20);
    let correlation = raw.send_request(ApiKey::Fetch, 11, &request).await;
    assert_eq!(producer.await.unwrap(), (0, 0));
    let resp: FetchResponse = raw
        .read_response(ApiKey::Fetch, 11, correlation)
        .await
        .unwrap();
    let waited = started.elapsed();
    let records = resp.responses[0].partitions[0].records.clone().unwrap();
    assert!(!records.is_empty(), "fetch returned without the record");
    assert!(
        waited >= Duration::from_millis(250),
        "fetch did not wait: {waited:?}"
    );

    // With no data, the fetch waits max_wait_ms and returns empty.
    let started = Instant::now();
    let resp: FetchResponse = raw
        .request(ApiKey::Fetch, 11, &fetch("t", 0, 1, 400, 1 << 20, 1 << 20))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert!(resp.responses[0].partitions[0]
        .records
        .as_ref()
        .is_none_or(|r| r.is_empty()));
    broker.shutdown().await;
}

#[tokio::test]
async fn fetch_respects_partition_and_response_limits_but_returns_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "t", 1, &[]).await;
    let value = vec![b'v'; 1000];
    for _ in 0..10 {
        assert_eq!(produce(&mut raw, "t", &[&value], None).await.0, 0);
    }
    let size_of = |resp: &FetchResponse| {
        resp.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |r| r.len())
    };
    let all: FetchResponse = raw
        .request(ApiKey::Fetch, 11, &fetch("t", 0, 0, 0, 1 << 20, 1 << 20))
        .await;
    let batch = size_of(&all) / 10;
    assert!(batch > 1000);
    // A partition limit of 3.5 batches returns 3 whole batches.
    let three: FetchResponse = raw
        .request(
            ApiKey::Fetch,
            11,
            &fetch("t", 0, 0, 0, 1 << 20, (batch * 7 / 2) as i32),
        )
        .await;
    assert_eq!(size_of(&three), batch * 3);
    // A limit smaller than one batch still returns that batch, so consumers never stall.
    let one: FetchResponse = raw
        .request(ApiKey::Fetch, 11, &fetch("t", 0, 0, 0, 10, 10))
        .await;
    assert_eq!(size_of(&one), batch);
    // Fetching past the end is OFFSET_OUT_OF_RANGE.
    let past: FetchResponse = raw
        .request(ApiKey::Fetch, 11, &fetch("t", 0, 11, 0, 1 << 20, 1 << 20))
        .await;
    assert_eq!(past.responses[0].partitions[0].error_code, 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn idempotent_sequences_dedupe_retries_and_reject_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "t", 1, &[]).await;
    let init: InitProducerIdResponse = raw
        .request(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let epoch = init.producer_epoch;
    assert_eq!(
        produce(&mut raw, "t", &[b"a", b"b"], Some((pid, epoch, 0))).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut raw, "t", &[b"c"], Some((pid, epoch, 2))).await,
        (0, 2)
    );
    // A retry of the first batch is acknowledged with its original offset and not stored again.
    assert_eq!(
        produce(&mut raw, "t", &[b"a", b"b"], Some((pid, epoch, 0))).await,
        (0, 0)
    );
    // A gap in the sequence is OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert_eq!(
        produce(&mut raw, "t", &[b"e"], Some((pid, epoch, 9)))
            .await
            .0,
        45
    );
    // An older epoch is fenced.
    let bumped: InitProducerIdResponse = raw
        .request(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
        )
        .await;
    assert_eq!(
        (bumped.producer_id.0, bumped.producer_epoch),
        (pid, epoch + 1)
    );
    assert_eq!(
        produce(&mut raw, "t", &[b"n"], Some((pid, epoch + 1, 0))).await,
        (0, 3)
    );
    assert_ne!(
        produce(&mut raw, "t", &[b"old"], Some((pid, epoch, 3)))
            .await
            .0,
        0
    );
    let resp: FetchResponse = raw
        .request(ApiKey::Fetch, 11, &fetch("t", 0, 0, 0, 1 << 20, 1 << 20))
        .await;
    assert_eq!(
        resp.responses[0].partitions[0].high_watermark, 4,
        "duplicate or rejected batch was stored"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn auto_creation_off_means_unknown_topics_stay_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(
        dir.path(),
        &[("auto_create_topics = true", "auto_create_topics = false")],
    )
    .await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let meta: MetadataResponse = raw
        .request(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str("nope"))))])),
        )
        .await;
    assert_eq!(
        meta.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION expected"
    );
    assert_eq!(produce(&mut raw, "nope", &[b"x"], None).await.0, 3);
    let all: MetadataResponse = raw
        .request(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    assert!(
        all.topics.iter().all(|t| t.is_internal),
        "topic was created anyway"
    );
    broker.shutdown().await;

    // With it on (the dev default), the same Metadata request creates the topic.
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let meta: MetadataResponse = raw
        .request(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str("yes"))))])),
        )
        .await;
    assert_eq!(
        (meta.topics[0].error_code, meta.topics[0].partitions.len()),
        (0, 1)
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn metadata_v0_empty_list_means_all_topics_and_v1_empty_means_none() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "a", 2, &[]).await;
    common::create_topic(&mut raw, "b", 1, &[]).await;
    let v0: MetadataResponse = raw
        .request(
            ApiKey::Metadata,
            0,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await;
    // Besides the internal audit topic.
    assert_eq!(
        v0.topics
            .iter()
            .filter(|t| t
                .name
                .as_ref()
                .is_some_and(|n| n.0.as_str() != "__palisade_audit"))
            .count(),
        2
    );
    let v1: MetadataResponse = raw
        .request(
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await;
    assert!(v1.topics.is_empty());
    let v1_all: MetadataResponse = raw
        .request(
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(v1_all.topics.iter().filter(|t| !t.is_internal).count(), 2);
    assert_eq!(v1_all.brokers[0].port, broker.addresses[0].port() as i32);
    broker.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_applied_and_answered_in_order() {
    use kafka_protocol::protocol::{Decodable, Encodable};
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    common::create_topic(&mut raw, "t", 1, &[]).await;
    // Ten acks=all produces and a Metadata request, written back to back before reading.
    for i in 0..11i32 {
        let mut buf = bytes::BytesMut::new();
        let key = if i < 10 {
            ApiKey::Produce
        } else {
            ApiKey::Metadata
        };
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(9)
            .with_correlation_id(100 + i)
            .encode(&mut buf, key.request_header_version(9))
            .unwrap();
        if i < 10 {
            let value = format!("v{i}");
            common::produce_request(
                "t",
                0,
                -1,
                common::batch(&[value.as_bytes()], Compression::None, None),
            )
            .encode(&mut buf, 9)
            .unwrap();
        } else {
            MetadataRequest::default()
                .with_topics(None)
                .encode(&mut buf, 9)
                .unwrap();
        }
        raw.send_frame(&buf).await;
    }
    for i in 0..11i32 {
        let mut frame = raw.read_frame().await.unwrap();
        let key = if i < 10 {
            ApiKey::Produce
        } else {
            ApiKey::Metadata
        };
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(9)).unwrap();
        assert_eq!(header.correlation_id, 100 + i, "responses out of order");
        if i < 10 {
            let resp = ProduceResponse::decode(&mut frame, 9).unwrap();
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(
                (p.error_code, p.base_offset),
                (0, i as i64),
                "appends out of order"
            );
        }
    }
    broker.shutdown().await;
}

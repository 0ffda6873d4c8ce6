//! Partitions against the broker's resources: descriptors stay bounded however many partitions
//! exist, creations beyond the partition limit are refused before anything is created, a
//! failed creation and a deletion leave no directory behind, one Metadata request auto-creates
//! a bounded number of topics, and a large creation does not stop other clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Raw;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;

/// The descriptor count is process-wide: the tests of this binary run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_request(topic: &str, partitions: i32) -> CreateTopicsRequest {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    CreateTopicsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
}

/// A request whose answer may take longer than `Raw::request` waits (thousands of partitions
/// on a busy machine).
async fn slow_request<Req: Encodable, Resp: Decodable>(
    raw: &mut Raw,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    use bytes::Buf;
    use tokio::io::AsyncReadExt;
    let correlation = raw.send_request(key, version, req).await;
    let read = async {
        let len = raw.stream.read_i32().await.unwrap();
        let mut frame = vec![0u8; usize::try_from(len).unwrap()];
        raw.stream.read_exact(&mut frame).await.unwrap();
        bytes::Bytes::from(frame)
    };
    let mut frame = tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .expect("no answer within 10 minutes");
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation);
    let resp = Resp::decode(&mut frame, version).unwrap();
    assert_eq!(frame.remaining(), 0);
    resp
}

async fn create(raw: &mut Raw, topic: &str, partitions: i32) -> CreateTopicsResponse {
    slow_request(
        raw,
        ApiKey::CreateTopics,
        7,
        &create_request(topic, partitions),
    )
    .await
}

async fn add_partitions(raw: &mut Raw, topic: &str, count: i32) -> CreatePartitionsResponse {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name(topic))
            .with_count(count)
            .with_assignments(None)]);
    slow_request(raw, ApiKey::CreatePartitions, 3, &req).await
}

async fn produce_one(raw: &mut Raw, topic: &str, partition: i32) -> i16 {
    let batch = common::batch(&[b"v"], Compression::None, None);
    let req = common::produce_request(topic, partition, 1, batch);
    let resp: ProduceResponse = raw.request(ApiKey::Produce, 9, &req).await;
    resp.responses[0].partition_responses[0].error_code
}

/// Directories of `topic`'s partitions (`<topic>-<n>`) in `data`.
fn partition_dirs(data: &Path, topic: &str) -> Vec<String> {
    let prefix = format!("{topic}-");
    std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
                && data.join(n).is_dir()
        })
        .collect()
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test]
async fn thousands_of_partitions_hold_a_bounded_number_of_descriptors() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_with(
        dir.path(),
        &[("max_open_files = 1024", "max_open_files = 64")],
    )
    .await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let before = open_descriptors();
    let started = Instant::now();
    let resp = create(&mut raw, "many", 1_500).await;
    eprintln!("1,500 partitions created in {:?}", started.elapsed());
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
    for p in [0, 700, 1_499] {
        assert_eq!(produce_one(&mut raw, "many", p).await, 0);
    }
    let resp = add_partitions(&mut raw, "many", 2_000).await;
    assert_eq!(
        resp.results[0].error_code, 0,
        "{:?}",
        resp.results[0].error_message
    );
    assert_eq!(produce_one(&mut raw, "many", 1_999).await, 0);
    let after = open_descriptors();
    // 2,000 partitions held 8,000 descriptors before; now at most the cache's 64, plus slack
    // for the test's own sockets.
    assert!(
        after <= before + 64 + 32,
        "{before} descriptors before, {after} after creating 2,000 partitions"
    );
    assert!(broker.broker.logs.open_segment_files() <= 64);
    // New clients can still connect and are served.
    let mut other = Raw::connect(broker.addresses[0]).await;
    assert_eq!(produce_one(&mut other, "many", 1_000).await, 0);
}

#[tokio::test]
async fn the_partition_limit_refuses_before_creating_anything() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let broker = common::start_with(
        dir.path(),
        &[("max_partitions = 10000", "max_partitions = 100")],
    )
    .await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    assert_eq!(create(&mut raw, "a", 60).await.topics[0].error_code, 0);

    let refused = create(&mut raw, "b", 41).await;
    assert_eq!(
        refused.topics[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    assert!(refused.topics[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("limit of 100")));
    assert!(partition_dirs(&data, "b").is_empty());

    let refused = add_partitions(&mut raw, "a", 101).await;
    assert_eq!(
        refused.results[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    assert_eq!(partition_dirs(&data, "a").len(), 60);

    // Validation alone reports the same refusal.
    let mut validate = create_request("c", 41);
    validate.validate_only = true;
    let resp: CreateTopicsResponse = raw.request(ApiKey::CreateTopics, 7, &validate).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    // Up to the limit is fine (the audit topic has the 100th partition).
    assert_eq!(create(&mut raw, "b", 39).await.topics[0].error_code, 0);
}

#[tokio::test]
async fn delete_topics_removes_every_directory_of_the_topic() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    assert_eq!(create(&mut raw, "t", 3).await.topics[0].error_code, 0);
    // What a creation cut short by a crash leaves: directories the metadata does not list.
    std::fs::create_dir(data.join("t-3")).unwrap();
    std::fs::create_dir(data.join("t-40")).unwrap();

    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(vec![DeleteTopicState::default().with_name(Some(name("t")))]);
    let resp: DeleteTopicsResponse = slow_request(&mut raw, ApiKey::DeleteTopics, 6, &req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(partition_dirs(&data, "t"), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_creation_leaves_no_directory() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    // A file where partition 150's directory goes makes the creation fail half way.
    std::fs::write(data.join("half-150"), b"in the way").unwrap();
    let resp = create(&mut raw, "half", 300).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::KafkaStorageError.code()
    );
    assert_eq!(partition_dirs(&data, "half"), Vec::<String>::new());
    // The same request succeeds once the obstacle is gone.
    std::fs::remove_file(data.join("half-150")).unwrap();
    assert_eq!(create(&mut raw, "half", 300).await.topics[0].error_code, 0);
    assert_eq!(partition_dirs(&data, "half").len(), 300);
}

#[tokio::test]
async fn one_metadata_request_auto_creates_a_bounded_number_of_topics() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut raw = Raw::connect(broker.addresses[0]).await;
    let topics = (0..200)
        .map(|i| MetadataRequestTopic::default().with_name(Some(name(&format!("auto-{i}")))))
        .collect();
    let req = MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = raw.request(ApiKey::Metadata, 9, &req).await;
    let created = resp.topics.iter().filter(|t| t.error_code == 0).count();
    let unknown = resp
        .topics
        .iter()
        .filter(|t| t.error_code == ResponseError::UnknownTopicOrPartition.code())
        .count();
    // The documented default of `max_auto_create_per_request`.
    assert_eq!((created, unknown), (10, 190));
    let auto_created = broker
        .broker
        .logs
        .topics()
        .iter()
        .filter(|t| t.name().starts_with("auto-"))
        .count();
    assert_eq!(auto_created, 10);
}

/// A client producing to an existing topic is served while another creates thousands of
/// partitions. The broker runs on this test's single-threaded runtime: creation work done on
/// the connection's task would hold every other client until it ends.
#[tokio::test]
async fn a_large_creation_does_not_stop_other_clients() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let broker = common::start(dir.path()).await;
    let addr = broker.addresses[0];
    let mut producer = Raw::connect(addr).await;
    assert_eq!(
        create(&mut producer, "busy", 1).await.topics[0].error_code,
        0
    );

    let mut admin = Raw::connect(addr).await;
    let creating = tokio::spawn(async move {
        let resp = create(&mut admin, "big", 3_000).await;
        resp.topics[0].error_code
    });
    // Wait until the creation has visibly started.
    let deadline = Instant::now() + Duration::from_secs(120);
    while partition_dirs(&data, "big").is_empty() {
        assert!(Instant::now() < deadline, "the creation never started");
        assert!(
            !creating.is_finished(),
            "the creation ended before it started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Produces answered while the creation is still in progress.
    let mut served_meanwhile = 0;
    while !creating.is_finished() {
        assert_eq!(produce_one(&mut producer, "busy", 0).await, 0);
        if !creating.is_finished() && broker.broker.logs.topic("big").is_none() {
            served_meanwhile += 1;
        }
    }
    assert_eq!(creating.await.unwrap(), 0);
    assert!(
        served_meanwhile > 0,
        "no produce was served while 3,000 partitions were created"
    );
}

//! Produces to topics with plugins are pipelined: their plugin chains run off the connection's
//! task while it reads on. Seen from outside nothing may change: appends in request order
//! (idempotent producers included), every later request of the connection sees the earlier
//! ones' records, refused batches are not stored and do not disturb the next ones, acks=0 too,
//! and a shutdown with produces in the pipeline loses nothing acknowledged. Real plugins, a real
//! broker, librdkafka and the raw protocol (to pipeline requests without reading responses).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::plugins::install;
use common::{BackgroundBroker, Raw};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

/// json-schema on `orders*`: valid orders are stored as produced, anything else refused.
const SCHEMA_MANIFEST: &str = r#"
topics = ["orders*"]
hooks = ["produce"]
[config.schema]
type = "object"
required = ["id", "amount"]
properties = { id = { type = "string" }, amount = { type = "number" } }
"#;

/// hostile on `refused*`: every produced record is refused.
const HOSTILE_MANIFEST: &str = r#"
topics = ["refused*"]
hooks = ["produce"]
[config]
produce = "reject"
"#;

/// Fields drop in order: the broker stops before its directory goes.
struct Fixture {
    broker: BackgroundBroker,
    /// The config replacements the broker was started with, for a restart on the same data.
    extra: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

fn broker() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    install(&folder, "json-schema", "json-schema", SCHEMA_MANIFEST);
    install(&folder, "hostile", "hostile", HOSTILE_MANIFEST);
    let extra = vec![
        // These tests check the order in which a connection's requests take effect. Under
        // group commit a batch only becomes visible once fsynced, which a request pipelined
        // right behind its produce may precede; with `page-cache` it is visible at the write.
        (
            "flush = \"group-commit\"".to_string(),
            "flush = \"page-cache\"".to_string(),
        ),
        (
            "dir = \"plugins\"".to_string(),
            format!("dir = {:?}", folder.display().to_string()),
        ),
        (
            "keyring = \"keyring.json\"".to_string(),
            format!(
                "keyring = {:?}",
                dir.path().join("keyring.json").display().to_string()
            ),
        ),
    ];
    let pairs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let broker = BackgroundBroker::start(&data_dir(&dir), &pairs);
    Fixture {
        broker,
        extra,
        _dir: dir,
    }
}

fn data_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

fn order(i: usize) -> String {
    format!(r#"{{"id":"order-{i}","amount":{i}}}"#)
}

/// One batch of valid orders `from..from + n`.
fn orders(from: usize, n: usize) -> Bytes {
    let values: Vec<String> = (from..from + n).map(order).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    common::batch(&refs, Compression::None, None)
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn list_offsets(topics: &[&str]) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    ListOffsetsTopic::default()
                        .with_name(name(t))
                        .with_partitions(vec![ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1)])
                })
                .collect(),
        )
}

/// The latest offset of partition 0 of each topic, in request order.
fn latest(resp: &ListOffsetsResponse) -> Vec<i64> {
    resp.topics
        .iter()
        .map(|t| {
            assert_eq!(t.partitions[0].error_code, 0);
            t.partitions[0].offset
        })
        .collect()
}

/// (offset, value) of every record in a Fetch response's partition.
fn fetched(resp: &FetchResponse) -> Vec<(i64, String)> {
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut bytes = p.records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            (r.offset, value)
        })
        .collect()
}

fn produce_result(resp: &ProduceResponse) -> (i16, i64, usize) {
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, p.record_errors.len())
}

// ---------------------------------------------------------------------------------------------

/// librdkafka, idempotent, several requests in flight, small batches: numbered records to one
/// partition of a plugin topic and of a plain topic, interleaved. Every delivery succeeds at the
/// offset its number says, and both partitions read back in exact order, without gaps or
/// duplicates. (An append out of request order fails the broker's sequence check, and the
/// producer's retry may hide that; the non-idempotent test below has no such safety net.)
#[test]
fn an_idempotent_producer_keeps_exact_order_through_a_plugin_topic_and_a_plain_one() {
    let fx = broker();
    produce_in_order(
        &fx.broker,
        &[("enable.idempotence", "true"), ("acks", "all")],
        ["orders-idempotent", "plain-idempotent"],
    );
}

/// The same without idempotence (acks=1): nothing but the broker's append order keeps the
/// records of consecutive in-flight requests in order.
#[test]
fn a_plain_producer_with_requests_in_flight_keeps_exact_order_through_a_plugin_topic() {
    let fx = broker();
    produce_in_order(
        &fx.broker,
        &[("enable.idempotence", "false"), ("acks", "1")],
        ["orders-in-flight", "plain-in-flight"],
    );
}

/// Sends N numbered records to partition 0 of each of `topics`, interleaved, with five requests
/// in flight; checks every delivery report and reads both partitions back.
fn produce_in_order(b: &BackgroundBroker, settings: &[(&str, &str)], topics: [&str; 2]) {
    const N: usize = 20_000;
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        for topic in topics {
            common::create_topic(&mut raw, topic, 1, &[]).await;
        }
    });
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", b.bootstrap())
        .set("max.in.flight.requests.per.connection", "5")
        // Many small requests of uneven size: the plugin jobs of consecutive requests overlap
        // and can finish out of order.
        .set("linger.ms", "0")
        .set("batch.size", "8000")
        .set("message.timeout.ms", "120000");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let producer: FutureProducer = config.create().unwrap();
    let mut deliveries = Vec::with_capacity(2 * N);
    for i in 0..N {
        // Uneven records: every 7th is padded, so batches differ in plugin work.
        let value = if i % 7 == 0 {
            format!(
                r#"{{"id":"order-{i}","amount":{i},"pad":"{}"}}"#,
                "p".repeat(i % 3000)
            )
        } else {
            order(i)
        };
        for topic in topics {
            let mut record = FutureRecord::<(), _>::to(topic)
                .partition(0)
                .payload(&value);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push((topic, i, delivery));
                        break;
                    }
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
    }
    b.rt.block_on(async {
        for (topic, i, delivery) in deliveries {
            let delivery = delivery
                .await
                .expect("delivery report")
                .unwrap_or_else(|(e, _)| panic!("record {i} to `{topic}` failed: {e}"));
            assert_eq!(delivery.offset, i as i64, "record {i} of `{topic}`");
        }
    });
    for topic in topics {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", b.bootstrap())
            .set("group.id", format!("read-{topic}"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut next = 0usize;
        while next < N {
            assert!(
                Instant::now() < deadline,
                "`{topic}`: only {next} of {N} read"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.unwrap();
            assert_eq!(message.offset(), next as i64, "`{topic}`");
            let payload = std::str::from_utf8(message.payload().unwrap()).unwrap();
            assert!(
                payload.starts_with(&format!(r#"{{"id":"order-{next}","#)),
                "`{topic}` at offset {next}: {payload}"
            );
            next += 1;
        }
        // Nothing after the last one: no duplicates.
        let end = b.rt.block_on(async {
            let mut raw = Raw::connect(addr).await;
            let resp: ListOffsetsResponse = raw
                .request(ApiKey::ListOffsets, 7, &list_offsets(&[topic]))
                .await;
            latest(&resp)[0]
        });
        assert_eq!(end, N as i64, "`{topic}`");
    }
}

/// On one connection, a ListOffsets or a Fetch sent right behind a Produce to a plugin topic,
/// without waiting for the produce's response, already sees its records.
#[test]
fn a_request_sent_right_behind_a_pipelined_produce_sees_its_records() {
    const PER_BATCH: usize = 500;
    let fx = broker();
    let b = &fx.broker;
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        common::create_topic(&mut raw, "orders-ryw", 1, &[]).await;
        let mut end = 0usize;
        for round in 0..20 {
            let produce = common::produce_request("orders-ryw", 0, 1, orders(end, PER_BATCH));
            let produced = raw.send_request(ApiKey::Produce, 9, &produce).await;
            let reading_offsets = round % 2 == 0;
            let next = if reading_offsets {
                let req = list_offsets(&["orders-ryw"]);
                raw.send_request(ApiKey::ListOffsets, 7, &req).await
            } else {
                let req = common::fetch_now("orders-ryw", end as i64);
                raw.send_request(ApiKey::Fetch, 11, &req).await
            };
            let resp: ProduceResponse = raw
                .read_response(ApiKey::Produce, 9, produced)
                .await
                .unwrap();
            assert_eq!(produce_result(&resp), (0, end as i64, 0), "round {round}");
            if reading_offsets {
                let resp: ListOffsetsResponse = raw
                    .read_response(ApiKey::ListOffsets, 7, next)
                    .await
                    .unwrap();
                assert_eq!(latest(&resp), [(end + PER_BATCH) as i64], "round {round}");
            } else {
                let resp: FetchResponse = raw.read_response(ApiKey::Fetch, 11, next).await.unwrap();
                let records = fetched(&resp);
                assert_eq!(records.len(), PER_BATCH, "round {round}");
                for (k, (offset, value)) in records.iter().enumerate() {
                    assert_eq!(*offset, (end + k) as i64);
                    assert_eq!(*value, order(end + k));
                }
            }
            end += PER_BATCH;
        }
    });
}

/// Pipelined on one connection: a batch a plugin refuses (hostile), a valid batch, one the
/// schema refuses, a valid one, and an acks=0 one. The refused ones get INVALID_RECORD with
/// per-record errors and are not stored; the others are stored in request order with
/// contiguous offsets; the acks=0 produce gets no response but is stored before the
/// ListOffsets behind it is answered.
#[test]
fn refused_batches_are_not_stored_and_the_batches_after_them_append_in_order() {
    const N: usize = 10;
    let fx = broker();
    let b = &fx.broker;
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        common::create_topic(&mut raw, "orders-mixed", 1, &[]).await;
        common::create_topic(&mut raw, "refused-mixed", 1, &[]).await;
        let bad = common::batch(&[b"{\"id\":\"x\"", b"{}"], Compression::None, None);
        let requests = [
            ("refused-mixed", 1, orders(0, N)),
            ("orders-mixed", 1, orders(0, N)),
            ("orders-mixed", -1, bad),
            ("orders-mixed", -1, orders(N, N)),
            ("orders-mixed", 0, orders(2 * N, N)),
        ];
        let mut sent = Vec::new();
        for (topic, acks, records) in requests {
            let req = common::produce_request(topic, 0, acks, records);
            let correlation = raw.send_request(ApiKey::Produce, 9, &req).await;
            if acks != 0 {
                sent.push(correlation);
            }
        }
        let listed = raw
            .send_request(
                ApiKey::ListOffsets,
                7,
                &list_offsets(&["orders-mixed", "refused-mixed"]),
            )
            .await;
        let mut results = Vec::new();
        for correlation in sent {
            let resp: ProduceResponse = raw
                .read_response(ApiKey::Produce, 9, correlation)
                .await
                .unwrap();
            results.push(produce_result(&resp));
        }
        assert_eq!(results[0].0, 87, "INVALID_RECORD from hostile");
        assert!(results[0].2 > 0, "per-record errors");
        assert_eq!(results[1], (0, 0, 0));
        assert_eq!(results[2].0, 87, "INVALID_RECORD from json-schema");
        assert_eq!(results[2].2, 2, "both records refused");
        assert_eq!(results[3], (0, N as i64, 0));
        let resp: ListOffsetsResponse = raw
            .read_response(ApiKey::ListOffsets, 7, listed)
            .await
            .unwrap();
        assert_eq!(latest(&resp), [3 * N as i64, 0]);
        let resp: FetchResponse = raw
            .request(ApiKey::Fetch, 11, &common::fetch_now("orders-mixed", 0))
            .await;
        let expected: Vec<(i64, String)> = (0..3 * N).map(|i| (i as i64, order(i))).collect();
        assert_eq!(fetched(&resp), expected);
    });
}

/// A large batch and a one-record batch behind it, pipelined to the same partition: the small
/// one's plugins finish first, but it is appended second.
#[test]
fn a_small_batch_behind_a_large_one_is_appended_after_it() {
    const LARGE: usize = 8_000;
    let fx = broker();
    let b = &fx.broker;
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        common::create_topic(&mut raw, "orders-sizes", 1, &[]).await;
        for round in 0..5 {
            let from = round * (LARGE + 1);
            let large = common::produce_request("orders-sizes", 0, -1, orders(from, LARGE));
            let small = common::produce_request("orders-sizes", 0, -1, orders(from + LARGE, 1));
            let first = raw.send_request(ApiKey::Produce, 9, &large).await;
            let second = raw.send_request(ApiKey::Produce, 9, &small).await;
            for (correlation, base) in [(first, from), (second, from + LARGE)] {
                let resp: ProduceResponse = raw
                    .read_response(ApiKey::Produce, 9, correlation)
                    .await
                    .unwrap();
                assert_eq!(produce_result(&resp), (0, base as i64, 0), "round {round}");
            }
        }
    });
}

/// Produces in the pipeline when the broker shuts down: every produce acknowledged before the
/// connection closed is stored and readable after a restart on the same data, in order.
#[test]
fn a_shutdown_with_pipelined_produces_loses_nothing_acknowledged() {
    const PER_BATCH: usize = 200;
    const BATCHES: usize = 30;
    let mut fx = broker();
    let addr = fx.broker.running.as_ref().unwrap().addresses[0];
    fx.broker.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        common::create_topic(&mut raw, "orders-shutdown", 1, &[]).await;
    });
    let running = fx.broker.running.take().unwrap();
    let acked = fx.broker.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        let mut sent = Vec::new();
        for k in 0..BATCHES {
            let req =
                common::produce_request("orders-shutdown", 0, -1, orders(k * PER_BATCH, PER_BATCH));
            sent.push(raw.send_request(ApiKey::Produce, 9, &req).await);
        }
        // The first answer before the shutdown, so at least one acknowledgement is checked; the
        // others are still in the pipeline when it starts.
        let first: ProduceResponse = raw
            .read_response(ApiKey::Produce, 9, sent[0])
            .await
            .unwrap();
        assert_eq!(produce_result(&first), (0, 0, 0));
        let stopping = tokio::spawn(running.shutdown());
        let mut acked = 1usize;
        for correlation in sent.into_iter().skip(1) {
            let Some(resp) = raw
                .read_response::<ProduceResponse>(ApiKey::Produce, 9, correlation)
                .await
            else {
                break;
            };
            let (code, base, _) = produce_result(&resp);
            if code != 0 {
                break;
            }
            assert_eq!(base, (acked * PER_BATCH) as i64);
            acked += 1;
        }
        tokio::time::timeout(Duration::from_secs(30), stopping)
            .await
            .expect("shutdown finishes")
            .unwrap();
        acked
    });
    let pairs: Vec<(&str, &str)> = fx
        .extra
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = data_dir(&fx._dir);
    let running = fx.broker.rt.block_on(common::start_with(&dir, &pairs));
    let addr = running.addresses[0];
    fx.broker.running = Some(running);
    let records = fx.broker.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        let resp: FetchResponse = raw
            .request(ApiKey::Fetch, 11, &common::fetch_now("orders-shutdown", 0))
            .await;
        fetched(&resp)
    });
    assert!(
        records.len() >= acked * PER_BATCH,
        "{} records stored, {acked} batches of {PER_BATCH} acknowledged",
        records.len()
    );
    for (i, (offset, value)) in records.iter().enumerate() {
        assert_eq!((*offset, value.as_str()), (i as i64, order(i).as_str()));
    }
}

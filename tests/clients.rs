//! The broker driven by a real Kafka client: librdkafka through the `rdkafka` crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::BackgroundBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn admin(b: &BackgroundBroker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .unwrap()
}

fn create_topic(b: &BackgroundBroker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(b);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results =
        b.rt.block_on(admin.create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(5))),
        ))
        .unwrap();
    for r in results {
        r.unwrap();
    }
}

fn producer(b: &BackgroundBroker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

fn consumer(b: &BackgroundBroker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

/// Produces `count` messages `"<i>"` to `topic`, message i to partition i % partitions;
/// waits for every acknowledgement.
fn produce_numbered(
    b: &BackgroundBroker,
    p: &FutureProducer,
    topic: &str,
    partitions: i32,
    count: usize,
) {
    b.rt.block_on(async {
        let mut pending = Vec::with_capacity(count);
        for i in 0..count {
            let payload = i.to_string();
            let key = format!("k{i}");
            let mut record = FutureRecord::to(topic)
                .partition((i % partitions as usize) as i32)
                .key(&key)
                .payload(&payload);
            loop {
                match p.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    // Local queue full: wait for acknowledgements to drain it.
                    Err((_, returned)) => {
                        record = returned;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }
        for f in pending {
            f.await.unwrap().unwrap();
        }
    });
}

/// Polls until `stop` returns true or the deadline passes; returns (partition, offset, value).
fn drain(
    c: &BaseConsumer,
    deadline: Duration,
    mut stop: impl FnMut(usize) -> bool,
) -> Vec<(i32, i64, String)> {
    let mut out = Vec::new();
    let until = Instant::now() + deadline;
    while Instant::now() < until && !stop(out.len()) {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            out.push((
                m.partition(),
                m.offset(),
                String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn group_of_two_consumes_100k_in_order_across_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    // Kafka's initial rebalance delay lets both members into the first generation.
    let b = BackgroundBroker::start(
        dir.path(),
        &[(
            "initial_rebalance_delay_ms = 0",
            "initial_rebalance_delay_ms = 3000",
        )],
    );
    create_topic(&b, "orders", 3, &[]);
    let p = producer(&b, &[]);
    const N: usize = 100_000;
    produce_numbered(&b, &p, "orders", 3, N);

    // (member, partition, offset, value) for every delivery.
    type Deliveries = Arc<Mutex<Vec<(usize, i32, i64, String)>>>;
    let seen: Deliveries = Arc::default();
    // Distinct messages seen by the group; redeliveries after the rebalance do not count.
    let total: Arc<Mutex<HashSet<String>>> = Arc::default();
    let bootstrap = b.bootstrap();
    let spawn_member = |id: usize, leaves: bool| {
        let (seen, total) = (seen.clone(), total.clone());
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "readers")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "300")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            c.subscribe(&["orders"]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(240);
            let mut assigned_partitions = HashSet::new();
            let mut mine = 0usize;
            while Instant::now() < deadline && total.lock().unwrap().len() < N {
                // The second member leaves after its share of the first 20k messages.
                if leaves && mine >= 10_000 {
                    break;
                }
                if let Some(m) = c.poll(Duration::from_millis(100)) {
                    let m = m.unwrap();
                    assigned_partitions.insert(m.partition());
                    let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                    total.lock().unwrap().insert(v.clone());
                    seen.lock()
                        .unwrap()
                        .push((id, m.partition(), m.offset(), v));
                    c.store_offset(m.topic(), m.partition(), m.offset()).ok();
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset() + 1),
                    )
                    .unwrap();
                    if m.offset() % 1000 == 999 {
                        c.commit(&tpl, CommitMode::Sync).unwrap();
                    }
                    mine += 1;
                }
            }
            // Commit what we have before leaving so the survivor resumes there.
            if let Ok(position) = c.position() {
                let _ = c.commit(&position, CommitMode::Sync);
            }
            c.unsubscribe();
            assigned_partitions
        })
    };
    let a = spawn_member(0, false);
    let b_member = spawn_member(1, true);
    let b_parts = b_member.join().unwrap();
    let a_parts = a.join().unwrap();

    let seen = seen.lock().unwrap();
    // Both members got work before the rebalance; the survivor ended up with every partition.
    assert!(!b_parts.is_empty(), "second member never got a partition");
    assert_eq!(
        a_parts.len(),
        3,
        "survivor did not take over all partitions: {a_parts:?}"
    );
    // Every message arrived; per member and partition, offsets strictly increase.
    let distinct: HashSet<&String> = seen.iter().map(|(_, _, _, v)| v).collect();
    assert_eq!(distinct.len(), N, "lost messages");
    let mut last: BTreeMap<(usize, i32), i64> = BTreeMap::new();
    for (member, partition, offset, value) in seen.iter() {
        let v: usize = value.parse().unwrap();
        assert_eq!(v % 3, *partition as usize, "message {v} in wrong partition");
        assert_eq!((v / 3) as i64, *offset, "message {v} at wrong offset");
        if let Some(prev) = last.insert((*member, *partition), *offset) {
            assert!(
                *offset > prev || *member == 0,
                "out of order for member {member} partition {partition}"
            );
        }
    }
    // At-least-once across the rebalance, but redelivery is bounded by the commit interval.
    assert!(
        seen.len() - N <= 3 * 1000,
        "{} redeliveries",
        seen.len() - N
    );
}

#[test]
fn committed_offsets_resume_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = BackgroundBroker::start(dir.path(), &[]);
    create_topic(&b, "resume", 1, &[]);
    let p = producer(&b, &[]);
    produce_numbered(&b, &p, "resume", 1, 100);
    drop(p);
    {
        let c = consumer(&b, "g", &[("enable.auto.commit", "false")]);
        c.subscribe(&["resume"]).unwrap();
        let got = drain(&c, Duration::from_secs(30), |n| n >= 50);
        assert_eq!(got.len(), 50);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("resume", 0, Offset::Offset(50))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    b.restart();
    let c = consumer(&b, "g", &[("enable.auto.commit", "false")]);
    c.subscribe(&["resume"]).unwrap();
    let got = drain(&c, Duration::from_secs(30), |n| n >= 50);
    assert_eq!(
        got.first().map(|m| m.1),
        Some(50),
        "did not resume at the committed offset"
    );
    assert_eq!(got.len(), 50);
    assert_eq!(got.last().unwrap().2, "99");
}

#[test]
fn idempotent_producer_writes_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = BackgroundBroker::start(dir.path(), &[]);
    create_topic(&b, "idem", 2, &[]);
    let p = producer(
        &b,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    produce_numbered(&b, &p, "idem", 2, 5000);
    let c = consumer(&b, "idem-reader", &[]);
    c.subscribe(&["idem"]).unwrap();
    let got = drain(&c, Duration::from_secs(60), |n| n >= 5000);
    let distinct: HashSet<&String> = got.iter().map(|m| &m.2).collect();
    assert_eq!((got.len(), distinct.len()), (5000, 5000));
    // Nothing more arrives: no duplicates were appended.
    assert!(drain(&c, Duration::from_secs(2), |_| false).is_empty());
}

#[test]
fn every_compression_codec_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let b = BackgroundBroker::start(dir.path(), &[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&b, &topic, 1, &[]);
        let p = producer(&b, &[("compression.type", codec), ("linger.ms", "50")]);
        produce_numbered(&b, &p, &topic, 1, 2000);
        let c = consumer(&b, &format!("g-{codec}"), &[]);
        c.subscribe(&[&topic]).unwrap();
        let got = drain(&c, Duration::from_secs(60), |n| n >= 2000);
        assert_eq!(got.len(), 2000, "{codec}");
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.2, i.to_string(), "{codec}: message {i}");
        }
    }
}

#[test]
fn list_offsets_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let b = BackgroundBroker::start(dir.path(), &[]);
    create_topic(&b, "times", 1, &[]);
    let p = producer(&b, &[("linger.ms", "0")]);
    let t0 = 1_700_000_000_000i64;
    b.rt.block_on(async {
        for i in 0..10i64 {
            let payload = i.to_string();
            p.send(
                FutureRecord::<(), _>::to("times")
                    .partition(0)
                    .payload(&payload)
                    .timestamp(t0 + i * 1000),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        }
    });
    let c = consumer(&b, "times-g", &[]);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, Offset::Offset(t0 + 4500))
        .unwrap();
    let found = c.offsets_for_times(query, Duration::from_secs(10)).unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        Offset::Offset(5)
    );
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, Offset::Offset(t0 + 60_000))
        .unwrap();
    let found = c.offsets_for_times(query, Duration::from_secs(10)).unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        Offset::End
    );
    let (low, high) = c
        .fetch_watermarks("times", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 10));
}

#[test]
fn delete_records_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let b = BackgroundBroker::start(dir.path(), &[]);
    create_topic(&b, "gdpr", 1, &[]);
    let p = producer(&b, &[("linger.ms", "0"), ("batch.num.messages", "1")]);
    produce_numbered(&b, &p, "gdpr", 1, 100);
    let admin = admin(&b);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("gdpr", 0, Offset::Offset(60))
        .unwrap();
    let result =
        b.rt.block_on(admin.delete_records(&tpl, &AdminOptions::new()))
            .unwrap();
    assert_eq!(result.find_partition("gdpr", 0).unwrap().error(), Ok(()));
    let c = consumer(&b, "gdpr-g", &[]);
    let (low, high) = c
        .fetch_watermarks("gdpr", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (60, 100));
    c.subscribe(&["gdpr"]).unwrap();
    let got = drain(&c, Duration::from_secs(30), |n| n >= 40);
    assert_eq!(got.first().map(|m| m.2.as_str()), Some("60"));
    assert_eq!(got.len(), 40);
}

#[test]
fn retention_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let b = BackgroundBroker::start(
        dir.path(),
        &[(
            "retention_check_interval_ms = 60000",
            "retention_check_interval_ms = 200",
        )],
    );
    create_topic(
        &b,
        "short",
        1,
        &[("segment.bytes", "4096"), ("retention.bytes", "8192")],
    );
    let p = producer(&b, &[("linger.ms", "0"), ("batch.num.messages", "1")]);
    produce_numbered(&b, &p, "short", 1, 500);
    let c = consumer(&b, "short-g", &[]);
    let partition_dir = dir.path().join("short-0");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (low, high) = c
            .fetch_watermarks("short", 0, Duration::from_secs(10))
            .unwrap();
        let segments = std::fs::read_dir(&partition_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count();
        if low > 0 && segments <= 4 {
            assert_eq!(high, 500);
            // Consumers start at the new log start.
            c.subscribe(&["short"]).unwrap();
            let got = drain(&c, Duration::from_secs(20), |n| n >= 1);
            assert_eq!(got[0].1, low);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention never deleted a segment ({segments} segments)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

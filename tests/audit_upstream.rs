//! Gateway mode's audit topic on a real Apache Kafka broker (KRaft, one node,
//! `common::kafka_cluster`): the gateway's audit sink creates `__palisade_audit` there and
//! writes every line as its service account; the topic is read back directly from Kafka with
//! librdkafka and compared with the hash-chained file, line for line. The broker is then killed
//! and restarted: what was recorded meanwhile arrives once, and a backlog past its bound keeps
//! its newest lines and counts the dropped ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::kafka_cluster::KafkaCluster;
use common::wait::wait_for;
use palisade::audit::chain::{hash_line, GENESIS};
use palisade::audit::upstream_topic::{Pending, UpstreamTopic};
use palisade::audit::upstream_topic_setup::Wanted;
use palisade::audit::{Audit, AuditSection, Event, EventType, Outcome};
use palisade::metrics::Metrics;
use palisade::upstream::{ConnectOptions, UpstreamCluster};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

const AUDIT_TOPIC: &str = "__palisade_audit";
/// How long anything here may take on a busy two-core machine (a deadline, never asserted).
const LIMIT: Duration = Duration::from_secs(120);
/// `audit.topic_retention_ms` of every sink here (one week).
const RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// One single-node cluster for this binary; its node dies with the test process.
fn cluster() -> &'static KafkaCluster {
    static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
    // The sink's warnings and retries, for a failing run's output (RUST_LOG to see more).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "palisade=info".into()))
        .with_test_writer()
        .try_init();
    CLUSTER.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("kafka-cluster")
            .join("audit_upstream");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        KafkaCluster::start(&dir, 1)
    })
}

/// An audit trail as the gateway starts it: the file in `dir/audit`, the topic on the
/// upstream at `bootstrap` (PLAINTEXT, no SASL: the cluster helper has no SASL listener).
fn start_audit(
    dir: &Path,
    bootstrap: &str,
    tweak: impl FnOnce(&mut AuditSection),
) -> (Audit, Arc<Metrics>) {
    let mut settings = AuditSection {
        dir: dir.join("audit"),
        topic_retention_ms: RETENTION_MS,
        upstream_flush_ms: 30_000,
        ..AuditSection::default()
    };
    tweak(&mut settings);
    settings.validate().unwrap();
    let upstream = Arc::new(UpstreamCluster::new(
        vec![bootstrap.to_string()],
        ConnectOptions::plaintext(),
        Duration::from_secs(30),
    ));
    let metrics = Arc::new(Metrics::new());
    let audit = Audit::start_gateway(&settings, dir, upstream, metrics.clone()).unwrap();
    (audit, metrics)
}

/// Event `i` of test run `run` (the run's name in `reason` tells the runs apart in the
/// shared topic).
fn event(run: &str, i: usize) -> Event {
    Event::new(EventType::TopicCreated, Outcome::Success)
        .resource(format!("topic:{run}-{i}"))
        .reason(run.to_string())
}

/// Every record of the audit topic from its beginning to its end now, in offset order, read
/// with librdkafka; `None` while the topic or the broker is not there.
fn read_topic(bootstrap: &str) -> Option<Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "audit-upstream-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(AUDIT_TOPIC, 0, Duration::from_secs(5))
        .ok()?;
    let mut values = Vec::new();
    if high <= low {
        return Some(values);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(AUDIT_TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            if m.offset() >= high - 1 {
                return Some(values);
            }
        }
    }
    None
}

/// The lines of run `run`, in order.
fn lines_of(all: &[String], run: &str) -> Vec<String> {
    all.iter()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["reason"] == run)
        .cloned()
        .collect()
}

/// Waits until the topic holds at least `n` lines of `run`; those lines.
fn wait_for_lines(bootstrap: &str, run: &str, n: usize) -> Vec<String> {
    wait_for(LIMIT, || {
        read_topic(bootstrap)
            .map(|all| lines_of(&all, run))
            .filter(|lines| lines.len() >= n)
    })
    .unwrap_or_else(|| {
        let have = read_topic(bootstrap).map(|all| lines_of(&all, run).len());
        panic!("the upstream audit topic did not get {n} lines of `{run}` (has {have:?})")
    })
}

/// The audit file's lines, in order.
fn file_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `lines` form one chain from its genesis: seq 1, 2, 3 ... each `prev` the hash of the line
/// before.
fn assert_whole_chain(lines: &[String]) {
    let mut prev = GENESIS.to_string();
    for (i, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seq"], i as u64 + 1, "line {i}: {line}");
        assert_eq!(v["prev"], prev.as_str(), "line {i}: {line}");
        prev = hash_line(line.as_bytes());
    }
}

fn counter(family: &palisade::metrics::Family<palisade::metrics::Counter>, labels: &[&str]) -> u64 {
    family.with(labels).get()
}

#[test]
fn audit_lines_reach_the_upstream_topic_in_order_once_each() {
    let cluster = cluster();
    let _calm = cluster.calm();
    let bootstrap = cluster.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let (audit, metrics) = start_audit(dir.path(), &bootstrap, |_| {});
    for i in 0..300 {
        audit.record(event("steady", i));
    }
    // They arrive while the trail runs, as the file's first 300 lines.
    let seen = wait_for_lines(&bootstrap, "steady", 300);
    assert_eq!(seen, file_lines(dir.path())[..300]);
    // Lines recorded right before a clean shutdown are written by it.
    for i in 300..400 {
        audit.record(event("steady", i));
    }
    audit.close();

    // The topic holds exactly the file's lines, seq and prev included, in the same order,
    // each once.
    let file = file_lines(dir.path());
    assert_eq!(file.len(), 400);
    assert_whole_chain(&file);
    assert_eq!(lines_of(&read_topic(&bootstrap).unwrap(), "steady"), file);
    assert_eq!(counter(&metrics.audit_events, &["topic"]), 400);
    assert_eq!(counter(&metrics.audit_topic_dropped, &[]), 0);

    // The gateway created the topic as broker mode does locally: one partition (one total
    // order), deletion by retention only, the configured retention.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let metadata = admin
        .inner()
        .fetch_metadata(Some(AUDIT_TOPIC), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 1);
    let configs = futures::executor::block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(AUDIT_TOPIC)],
        &AdminOptions::new(),
    ))
    .unwrap();
    let topic = configs[0].as_ref().unwrap();
    let value = |name: &str| topic.get(name).and_then(|e| e.value.clone());
    assert_eq!(value("cleanup.policy").as_deref(), Some("delete"));
    assert_eq!(value("retention.ms"), Some(RETENTION_MS.to_string()));
}

#[test]
fn lines_recorded_while_the_upstream_is_down_arrive_once_and_a_full_backlog_drops_the_oldest() {
    let cluster = cluster();
    let _alone = cluster.disrupt();
    let bootstrap = cluster.bootstrap();
    let outage_dir = tempfile::tempdir().unwrap();
    let (outage, outage_metrics) = start_audit(outage_dir.path(), &bootstrap, |_| {});
    for i in 0..50 {
        outage.record(event("outage", i));
    }
    wait_for(LIMIT, || {
        (counter(&outage_metrics.audit_events, &["topic"]) == 50).then_some(())
    })
    .expect("the upstream acknowledged the first 50 lines");

    cluster.kill(1);
    // A second trail starts while the upstream is down, with room for 10 lines: of its 30,
    // the 20 oldest are dropped from the topic's copy and counted; its file keeps them all.
    let bounded_dir = tempfile::tempdir().unwrap();
    let (bounded, bounded_metrics) = start_audit(bounded_dir.path(), &bootstrap, |s| {
        s.upstream_backlog_events = 10;
    });
    for i in 0..30 {
        bounded.record(event("bounded", i));
    }
    for i in 50..100 {
        outage.record(event("outage", i));
    }
    wait_for(LIMIT, || {
        (counter(&bounded_metrics.audit_topic_dropped, &[]) == 20).then_some(())
    })
    .expect("the bounded backlog counted 20 dropped lines");
    // Recording never waited for the upstream: both files already hold every line.
    wait_for(LIMIT, || {
        (file_lines(outage_dir.path()).len() == 100 && file_lines(bounded_dir.path()).len() == 30)
            .then_some(())
    })
    .expect("the files hold every line while the upstream is down");

    cluster.restart(1);
    let arrived = wait_for_lines(&bootstrap, "outage", 100);
    let bounded_arrived = wait_for_lines(&bootstrap, "bounded", 10);
    outage.close();
    bounded.close();

    // Everything recorded during the outage arrived, in order, once (the batch in flight when
    // the broker died was retried as the same producer and sequence).
    let outage_file = file_lines(outage_dir.path());
    assert_whole_chain(&outage_file);
    assert_eq!(arrived, outage_file);
    let all = read_topic(&bootstrap).unwrap();
    assert_eq!(lines_of(&all, "outage"), outage_file);
    assert_eq!(counter(&outage_metrics.audit_events, &["topic"]), 100);
    assert_eq!(counter(&outage_metrics.audit_topic_dropped, &[]), 0);

    // The bounded trail: its newest 10 lines on the upstream, all 30 in its file.
    let bounded_file = file_lines(bounded_dir.path());
    assert_eq!(bounded_file.len(), 30);
    assert_whole_chain(&bounded_file);
    assert_eq!(bounded_arrived, bounded_file[20..]);
    assert_eq!(lines_of(&all, "bounded"), bounded_file[20..]);
    assert_eq!(counter(&bounded_metrics.audit_topic_dropped, &[]), 20);
    assert_eq!(counter(&bounded_metrics.audit_events, &["topic"]), 10);
}

/// A batch sent again after its answer was lost (the retry after a dropped connection) is
/// written once: the resend carries the same producer id and sequence numbers, and the broker
/// recognises it. Also after reconnecting and finding the leader again.
#[test]
fn a_batch_sent_again_is_written_once() {
    let cluster = cluster();
    let _calm = cluster.calm();
    let bootstrap = cluster.bootstrap();
    let upstream = Arc::new(UpstreamCluster::new(
        vec![bootstrap.clone()],
        ConnectOptions::plaintext(),
        Duration::from_secs(30),
    ));
    let mut topic = UpstreamTopic::new(
        upstream,
        Wanted {
            replication_factor: 0,
            retention_ms: RETENTION_MS,
        },
    );
    let lines: Vec<String> = (0..3)
        .map(|i| format!(r#"{{"reason":"resent","n":{i}}}"#))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The topic may still be getting its leader when this test runs first.
        let deadline = Instant::now() + LIMIT;
        while let Err(e) = topic.prepare().await {
            assert!(
                Instant::now() < deadline,
                "the audit topic never became writable: {e:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut batch = Pending::new(lines.iter().cloned().map(Into::into).collect());
        topic.produce(&mut batch).await.unwrap();
        topic.produce(&mut batch).await.unwrap();
        topic.reset();
        topic.prepare().await.unwrap();
        topic.produce(&mut batch).await.unwrap();
        // The next batch follows on: the producer's sequence moved past the first one.
        let mut next = Pending::new(vec![r#"{"reason":"resent","n":3}"#.into()]);
        topic.produce(&mut next).await.unwrap();
    });
    let mut expected = lines;
    expected.push(r#"{"reason":"resent","n":3}"#.to_string());
    assert_eq!(wait_for_lines(&bootstrap, "resent", 4), expected);
    assert_eq!(
        lines_of(&read_topic(&bootstrap).unwrap(), "resent"),
        expected
    );
}

//! The real Apache Kafka cluster the gateway tests run against (three KRaft nodes on loopback,
//! `common::kafka_cluster`), checked with librdkafka: replicated topics, acks=all, a node killed
//! and restarted with nothing acknowledged lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::clients::runtime;
use common::kafka_cluster::KafkaCluster;
use common::wait::wait_for;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// How long anything in these tests may take on a busy two-core machine.
const LIMIT: Duration = Duration::from_secs(120);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Creates `topic`, one partition on three replicas.
fn create_replicated_topic(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str) {
    let topic = NewTopic::new(topic, 1, TopicReplication::Fixed(3));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in rt
        .block_on(admin(bootstrap).create_topics([&topic], &options))
        .unwrap()
    {
        result.unwrap();
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "90000")
        .create()
        .unwrap()
}

/// Produces `values` to partition 0 of `topic`; the values the cluster acknowledged.
fn produce(
    rt: &tokio::runtime::Runtime,
    p: &FutureProducer,
    topic: &str,
    values: impl Iterator<Item = String>,
) -> Vec<Result<String, KafkaError>> {
    let sent: Vec<_> = values
        .map(|v| {
            let delivery = p
                .send_result(FutureRecord::<(), _>::to(topic).partition(0).payload(&v))
                .map_err(|(e, _)| e)
                .unwrap();
            (v, delivery)
        })
        .collect();
    rt.block_on(async {
        let mut acked = Vec::new();
        for (v, delivery) in sent {
            acked.push(delivery.await.unwrap().map(|_| v).map_err(|(e, _)| e));
        }
        acked
    })
}

/// Reads partition 0 of `topic` from the beginning until `count` records came back (or the
/// deadline); their values in offset order.
fn read_all(bootstrap: &str, topic: &str, count: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "smoke-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while values.len() < count && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    values
}

/// The leader and in-sync replicas of partition 0 of `topic`, as the cluster reports them.
fn leader_and_isr(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let partition = metadata.topics().first()?.partitions().first()?;
    (partition.error().is_none() && partition.leader() >= 0)
        .then(|| (partition.leader(), partition.isr().to_vec()))
}

#[test]
fn every_node_lists_three_brokers() {
    let cluster = KafkaCluster::shared();
    let _calm = cluster.calm();
    for id in 1..=3 {
        let brokers: BTreeSet<i32> = cluster
            .brokers_seen_by(id)
            .expect("node answers Metadata")
            .into_iter()
            .collect();
        assert_eq!(brokers, BTreeSet::from([1, 2, 3]), "as seen by node {id}");
    }
}

#[test]
fn acknowledged_records_survive_killing_the_leader() {
    let cluster = KafkaCluster::shared();
    let _alone = cluster.disrupt();
    let rt = runtime();
    let bootstrap = cluster.bootstrap();
    create_replicated_topic(&rt, &bootstrap, "survives-kill");
    let (_, isr) = wait_for(LIMIT, || {
        leader_and_isr(&bootstrap, "survives-kill").filter(|(_, isr)| isr.len() == 3)
    })
    .expect("the new topic has three in-sync replicas");
    assert_eq!(
        isr.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3])
    );

    let p = producer(&bootstrap);
    let before: Vec<String> = produce(&rt, &p, "survives-kill", (0..100).map(|i| format!("a{i}")))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(read_all(&bootstrap, "survives-kill", 100), before);

    // The leader dies hard; the two survivors still make min.insync.replicas (2).
    let (leader, _) = leader_and_isr(&bootstrap, "survives-kill").unwrap();
    cluster.kill(leader);
    let survivors: Vec<String> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| cluster.node_address(id))
        .collect();
    let survivors = survivors.join(",");
    let after = produce(&rt, &p, "survives-kill", (0..100).map(|i| format!("b{i}")));
    let after: Vec<String> = after
        .into_iter()
        .map(|r| r.expect("acks=all produce after losing one of three replicas"))
        .collect();
    let moved = wait_for(LIMIT, || {
        leader_and_isr(&survivors, "survives-kill")
            .filter(|(new_leader, isr)| *new_leader != leader && !isr.contains(&leader))
    });
    assert!(
        moved.is_some(),
        "leadership and the ISR moved off the killed node {leader}"
    );

    // Everything acknowledged, once, in order.
    let expected: Vec<String> = before.iter().chain(&after).cloned().collect();
    assert_eq!(read_all(&survivors, "survives-kill", 200), expected);

    // Back on its old ports and data, it rejoins the ISR.
    cluster.restart(leader);
    let rejoined = wait_for(LIMIT, || {
        leader_and_isr(&bootstrap, "survives-kill").filter(|(_, isr)| isr.contains(&leader))
    });
    assert!(
        rejoined.is_some(),
        "node {leader} did not rejoin the ISR:\n{}",
        cluster.log_tail(leader)
    );
    assert_eq!(read_all(&bootstrap, "survives-kill", 200), expected);
}

#[test]
fn topics_are_not_created_by_producing() {
    let cluster = KafkaCluster::shared();
    let _calm = cluster.calm();
    let rt = runtime();
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("message.timeout.ms", "5000")
        .create()
        .unwrap();
    let sent = produce(&rt, &p, "never-created", std::iter::once("x".to_string()));
    match &sent[0] {
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::MessageTimedOut,
        )) => {}
        other => panic!("produce to a missing topic: {other:?}"),
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .unwrap();
    let metadata = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    assert!(
        metadata
            .topics()
            .iter()
            .all(|t| t.name() != "never-created"),
        "auto-create is off"
    );
}

//! Gateway mode seen from outside: a real Apache Kafka cluster (three KRaft nodes,
//! `common::kafka_cluster`), a Palisade gateway in front of it, and real clients (librdkafka
//! through `rdkafka`) on both sides: through the gateway, and directly on the cluster to see
//! what the upstream really holds.
//!
//! `clients` runs the Python clients and kcat through the gateway the same way.
//!
//! `tests/gateway-against.sh HOST:PORT` runs these tests against any cluster instead (its
//! topics get a unique suffix; the tests that kill brokers are skipped there).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../common/mod.rs"]
mod common;

mod clients;
mod encrypt;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::clients::runtime;
use common::gateway_harness::Gateway;
use common::kafka_cluster::KafkaCluster;
use common::plugins::install;
use common::wait::wait_for;
use common::BackgroundBroker;
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

/// The cluster behind the gateway: the shared three-node cluster this binary starts, or the
/// one `PALISADE_UPSTREAM` names, which these tests never disrupt.
enum Upstream {
    Ours(&'static KafkaCluster),
    Theirs(String),
}

fn upstream() -> Upstream {
    match std::env::var("PALISADE_UPSTREAM") {
        Ok(bootstrap) if !bootstrap.is_empty() => Upstream::Theirs(bootstrap),
        _ => Upstream::Ours(KafkaCluster::shared()),
    }
}

impl Upstream {
    fn bootstrap(&self) -> String {
        match self {
            Upstream::Ours(c) => c.bootstrap(),
            Upstream::Theirs(b) => b.clone(),
        }
    }

    /// Held by tests that do not disrupt the cluster (others may run meanwhile).
    fn calm(&self) -> Option<std::sync::RwLockReadGuard<'static, ()>> {
        match self {
            Upstream::Ours(c) => Some(c.calm()),
            Upstream::Theirs(_) => None,
        }
    }

    /// The cluster, for a test that kills its brokers: only ours.
    fn ours(&self) -> &'static KafkaCluster {
        match self {
            Upstream::Ours(c) => c,
            Upstream::Theirs(b) => panic!(
                "this test kills brokers and runs only against the cluster it starts, not {b}"
            ),
        }
    }
}

/// `name`, unique to this run (a cluster of someone else's may hold topics of earlier runs).
fn unique(name: &str) -> String {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{}-{nanos}", std::process::id())
    });
    format!("{name}-{run}")
}

/// A gateway in front of `cluster`, its data in `dir`, `extra` replacements applied on top.
fn gateway(upstream: &Upstream, dir: &Path, extra: &[(&str, &str)]) -> BackgroundBroker {
    gateway_with_node_ports(upstream, dir, extra).0
}

/// [`gateway`], and the port of node 0 on its first (PLAINTEXT) listener: node `N` is on
/// that port + `N`.
fn gateway_with_node_ports(
    upstream: &Upstream,
    dir: &Path,
    extra: &[(&str, &str)],
) -> (BackgroundBroker, u16) {
    // Node ids 0..=15 get ports: the clusters these tests meet number their nodes from 0 or 1.
    let gw = Gateway::start(&upstream.bootstrap(), 0, dir, extra);
    (gw.broker, gw.port_base)
}

/// Creates `topic` on the cluster itself (one partition, three replicas).
fn create_upstream_topic(bootstrap: &str, topic: &str) {
    common::clients::create_topic(bootstrap, topic, 1, 3);
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap()
}

/// Sends one record; the offset, or the error the client got.
fn send(p: &FutureProducer, topic: &str, value: &[u8]) -> Result<i64, KafkaError> {
    runtime()
        .block_on(p.send(
            FutureRecord::<(), [u8]>::to(topic).payload(value),
            Duration::from_secs(30),
        ))
        .map(|delivery| delivery.offset)
        .map_err(|(e, _)| e)
}

/// Every value of partition 0 of `topic`, read from offset 0 until `expected` arrived (or
/// the deadline passed: then what arrived).
fn read_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<Vec<u8>> {
    let consumer = reader(bootstrap, topic, &[]);
    poll_values(&consumer, |values| values.len() >= expected)
}

/// A consumer of partition 0 of `topic` from its beginning, with `settings` on top.
fn reader(bootstrap: &str, topic: &str, settings: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", std::process::id()))
        .set("enable.auto.commit", "false");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    consumer
}

/// The values `c` receives, in order, polled until `done` says so or the deadline passes
/// (then what arrived).
fn poll_values(c: &BaseConsumer, done: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + LIMIT;
    while !done(&values) && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            values.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    values
}

/// The high watermark of partition 0 of `topic` on the cluster itself.
fn upstream_end(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    wait_for(LIMIT, || {
        consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(5))
            .ok()
            .map(|(_, high)| high)
    })
    .expect("the upstream's watermarks")
}

#[test]
fn clients_produce_and_consume_in_a_group_through_the_gateway_and_never_see_upstream_addresses() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&cluster, &dir.path().join("data"), &[]);
    let through = gw.bootstrap();

    // Metadata through the gateway: the upstream's brokers, one to one, each at a gateway
    // port, none at its own address.
    let direct: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .unwrap();
    let upstream_brokers = direct
        .fetch_metadata(None, Duration::from_secs(30))
        .unwrap();
    let upstream_ids: BTreeSet<i32> = upstream_brokers.brokers().iter().map(|b| b.id()).collect();
    let upstream_ports: BTreeSet<i32> = upstream_brokers
        .brokers()
        .iter()
        .map(|b| b.port())
        .collect();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &through)
        .create()
        .unwrap();
    let metadata = wait_for(LIMIT, || {
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .ok()
            .filter(|m| m.brokers().len() == upstream_ids.len())
    })
    .expect("metadata through the gateway lists every upstream broker");
    let ids: BTreeSet<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
    assert_eq!(ids, upstream_ids);
    for b in metadata.brokers() {
        assert_eq!(b.host(), "127.0.0.1");
        assert!(
            !upstream_ports.contains(&b.port()),
            "broker {} advertised at its upstream port {}",
            b.id(),
            b.port()
        );
    }

    // Produce through the gateway (auto-created by the gateway's front), acks=all.
    let topic = &unique("gw-orders");
    let p = producer(&through);
    for i in 0..50 {
        send(&p, topic, format!("order-{i}").as_bytes()).unwrap();
    }
    // The upstream holds them (read directly), and a group reads them through the gateway.
    assert_eq!(upstream_end(&cluster.bootstrap(), topic), 50);
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &through)
        .set("group.id", unique("gw-group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    group.subscribe(&[topic]).unwrap();
    let distinct = |values: &[Vec<u8>]| values.iter().cloned().collect::<BTreeSet<_>>();
    let seen = distinct(&poll_values(&group, |v| distinct(v).len() >= 50));
    assert_eq!(seen.len(), 50, "the group read {seen:?}");
    group
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    // The group's offset is on the upstream: its own coordinator answers for it.
    let committed = group
        .committed(Duration::from_secs(30))
        .unwrap()
        .find_partition(topic, 0)
        .unwrap()
        .offset();
    assert_eq!(committed, Offset::Offset(50));
}

#[test]
fn a_produce_cedar_denies_never_reaches_the_upstream_and_both_audit_trails_hold_the_denial() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let policies = editable_policies(dir.path());
    let (secret, open) = (unique("gw-secret"), unique("gw-open"));
    forbid(&policies, "no-secret-writes", "Write", &secret);
    let policy_line = common::policy_dir_line(&policies);
    let gw = gateway(
        &cluster,
        &dir.path().join("data"),
        &[(&common::allow_all_policy_dir(), &policy_line)],
    );
    create_upstream_topic(&cluster.bootstrap(), &secret);
    create_upstream_topic(&cluster.bootstrap(), &open);
    let p = producer(&gw.bootstrap());
    let refused = send(&p, &secret, b"leak").unwrap_err();
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{refused:?}"
    );
    // The same client writes the topic it may write: the gateway and upstream work...
    send(&p, &open, b"fine").unwrap();
    assert_eq!(upstream_end(&cluster.bootstrap(), &open), 1);
    // ...and the denied record never reached the cluster.
    assert_eq!(upstream_end(&cluster.bootstrap(), &secret), 0);
    // The gateway's audit trail holds its decision, naming the policy that made it.
    let denial = wait_for(LIMIT, || {
        audit_events(&dir.path().join("data"))
            .into_iter()
            .find(|e| {
                e["operation"] == "Write"
                    && e["result"] == "deny"
                    && e["resource"].as_str().is_some_and(|r| r.contains(&secret))
            })
    })
    .expect("the gateway audited the denial");
    assert!(
        denial.to_string().contains("no-secret-writes"),
        "the audited denial names no policy: {denial}"
    );

    // Allow-all policies, yet no client writes the audit topic through the gateway.
    let forged = send(&p, "__palisade_audit", b"{\"forged\":true}").unwrap_err();
    assert_eq!(
        forged.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{forged:?}"
    );
    // The audit topic on the upstream, read directly: the gateway's denial, never the forged
    // line.
    let audit = reader(&cluster.bootstrap(), "__palisade_audit", &[]);
    let lines: Vec<String> = poll_values(&audit, |lines| {
        lines
            .iter()
            .any(|l| String::from_utf8_lossy(l).contains("no-secret-writes"))
    })
    .iter()
    .map(|l| String::from_utf8_lossy(l).into_owned())
    .collect();
    let upstream_denial = lines
        .iter()
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .find(|e| {
            e["result"] == "deny"
                && e["operation"] == "Write"
                && e["resource"].as_str().is_some_and(|r| r.contains(&secret))
        });
    assert!(
        upstream_denial.is_some(),
        "the upstream audit topic lacks the denial: {lines:?}"
    );
    assert!(
        !lines.iter().any(|t| t.contains("forged")),
        "a client's line reached the audit topic"
    );

    // The gateway's metrics count what it served.
    let page = common::metrics_page::scrape(gw.running.as_ref().unwrap().metrics_address.unwrap());
    let produce = common::metrics_page::metric(&page, "palisade_requests_total{api=\"Produce\"}");
    assert!(produce >= 2.0, "Produce requests not counted: {page}");
}

const SCHEMA_MANIFEST: &str = r#"
topics = ["gw-schema-*"]
hooks = ["produce"]
[config.schema]
type = "object"
required = ["id"]
properties = { id = { type = "string" } }
"#;

#[test]
fn json_schema_rejects_at_the_gateway_and_the_upstream_only_holds_valid_records() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    install(&folder, "json-schema", "json-schema", SCHEMA_MANIFEST);
    let folder_line = format!("dir = {:?}", folder.display().to_string());
    let keyring_line = format!(
        "keyring = {:?}",
        dir.path().join("keyring.json").display().to_string()
    );
    let gw = gateway(
        &cluster,
        &dir.path().join("data"),
        &[
            ("dir = \"plugins\"", &folder_line),
            ("keyring = \"keyring.json\"", &keyring_line),
        ],
    );
    let topic = &unique("gw-schema-orders");
    create_upstream_topic(&cluster.bootstrap(), topic);
    let p = producer(&gw.bootstrap());
    send(&p, topic, br#"{"id":"a"}"#).unwrap();
    let refused = send(&p, topic, b"{not json").unwrap_err();
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InvalidRecord),
        "{refused:?}"
    );
    send(&p, topic, br#"{"id":"b"}"#).unwrap();
    // The cluster holds exactly the two valid records, read directly.
    let upstream = read_all(&cluster.bootstrap(), topic, 2);
    assert_eq!(
        upstream,
        vec![br#"{"id":"a"}"#.to_vec(), br#"{"id":"b"}"#.to_vec()]
    );
    assert_eq!(upstream_end(&cluster.bootstrap(), topic), 2);
}

/// The leader and in-sync replicas of partition 0 of `topic`, as the cluster reports them.
/// Partition 0 of `topic` as `bootstrap` describes it: its leader, replicas and in-sync
/// replicas, once it has a leader.
struct PartitionState {
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

fn partition_state(bootstrap: &str, topic: &str) -> Option<PartitionState> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let partition = metadata.topics().first()?.partitions().first()?;
    (partition.error().is_none() && partition.leader() >= 0).then(|| PartitionState {
        leader: partition.leader(),
        replicas: partition.replicas().to_vec(),
        isr: partition.isr().to_vec(),
    })
}

/// An idempotent producer that waits for every in-sync replica (acks=all) and retries for
/// two minutes: what a client that must lose nothing runs.
fn idempotent_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap()
}

/// Produces `values` through `p` to partition 0 of `topic`, all in flight at once; each
/// value with what the client was told.
fn produce_all(p: &FutureProducer, topic: &str, values: &[String]) -> Vec<Result<(), KafkaError>> {
    let rt = runtime();
    let sent: Vec<_> = values
        .iter()
        .map(|v| {
            p.send_result(FutureRecord::<(), _>::to(topic).partition(0).payload(v))
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    rt.block_on(async {
        let mut acked = Vec::new();
        for delivery in sent {
            acked.push(delivery.await.unwrap().map(|_| ()).map_err(|(e, _)| e));
        }
        acked
    })
}

#[test]
fn nothing_acknowledged_through_the_gateway_is_lost_when_the_leader_is_killed_and_restarted() {
    let up = upstream();
    let cluster = up.ours();
    let _alone = cluster.disrupt();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up, &dir.path().join("data"), &[]);
    let topic = &unique("gw-survives-kill");
    create_upstream_topic(&cluster.bootstrap(), topic);
    wait_for(LIMIT, || {
        partition_state(&cluster.bootstrap(), topic).filter(|s| s.isr.len() == 3)
    })
    .expect("the new topic has three in-sync replicas");
    let p = idempotent_producer(&gw.bootstrap());
    let before: Vec<String> = (0..100).map(|i| format!("a{i}")).collect();
    for r in produce_all(&p, topic, &before) {
        r.unwrap();
    }

    // The leader dies hard while the client keeps producing through the gateway: the
    // gateway answers retriable errors for the dead node, the client finds the new leader in
    // the gateway's Metadata and goes on.
    let leader = partition_state(&cluster.bootstrap(), topic).unwrap().leader;
    cluster.kill(leader);
    let after: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    let results = produce_all(&p, topic, &after);
    let acked_after: Vec<String> = after
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(v, _)| v.clone())
        .collect();
    // Back before any assertion, so a failure here leaves the shared cluster whole.
    cluster.restart(leader);
    assert_eq!(
        acked_after.len(),
        100,
        "two of three replicas stay in sync: every record is acknowledged ({:?})",
        results.iter().find(|r| r.is_err())
    );
    wait_for(LIMIT, || {
        partition_state(&cluster.bootstrap(), topic).filter(|s| s.isr.contains(&leader))
    })
    .unwrap_or_else(|| {
        panic!(
            "node {leader} did not rejoin:\n{}",
            cluster.log_tail(leader)
        )
    });

    // Read directly from the cluster: everything acknowledged, once, in order.
    let expected: Vec<Vec<u8>> = before
        .iter()
        .chain(&acked_after)
        .map(|v| v.as_bytes().to_vec())
        .collect();
    assert_eq!(read_all(&cluster.bootstrap(), topic, 200), expected);
    // And through the gateway, after the restart, the same.
    assert_eq!(read_all(&gw.bootstrap(), topic, 200), expected);
}

#[test]
fn a_transaction_committed_and_one_aborted_pass_through_and_read_committed_sees_only_the_first() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&cluster, &dir.path().join("data"), &[]);
    let topic = &unique("gw-txn");
    create_upstream_topic(&cluster.bootstrap(), topic);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", gw.bootstrap())
        .set("transactional.id", unique("gw-txn-producer"))
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(60);
    p.init_transactions(timeout).unwrap();
    // Begins a transaction and sends `values` in it.
    let send_in_transaction = |values: Vec<String>| {
        p.begin_transaction().unwrap();
        for v in &values {
            p.send(BaseRecord::<(), str>::to(topic).partition(0).payload(v))
                .unwrap();
        }
    };
    send_in_transaction((0..5).map(|i| format!("kept-{i}")).collect());
    p.commit_transaction(timeout).unwrap();
    send_in_transaction((0..5).map(|i| format!("aborted-{i}")).collect());
    p.flush(timeout).unwrap();
    p.abort_transaction(timeout).unwrap();
    send_in_transaction(vec!["last".to_string()]);
    p.commit_transaction(timeout).unwrap();

    // read_committed, through the gateway: the committed records, none of the aborted ones.
    let c = reader(
        &gw.bootstrap(),
        topic,
        &[("isolation.level", "read_committed")],
    );
    let values = poll_values(&c, |v| v.iter().any(|v| v == b"last"));
    let mut expected: Vec<Vec<u8>> = (0..5).map(|i| format!("kept-{i}").into_bytes()).collect();
    expected.push(b"last".to_vec());
    assert_eq!(values, expected);
}

#[test]
fn a_palisade_broker_serves_as_the_upstream_too() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_broker = BackgroundBroker::start(&dir.path().join("upstream"), &[]);
    let up = Upstream::Theirs(upstream_broker.bootstrap());
    let gw = gateway(&up, &dir.path().join("gateway"), &[]);
    let topic = &unique("gw-on-palisade");
    let p = producer(&gw.bootstrap());
    for i in 0..20 {
        send(&p, topic, format!("r{i}").as_bytes()).unwrap();
    }
    let expected: Vec<Vec<u8>> = (0..20).map(|i| format!("r{i}").into_bytes()).collect();
    assert_eq!(read_all(&upstream_broker.bootstrap(), topic, 20), expected);
    assert_eq!(read_all(&gw.bootstrap(), topic, 20), expected);
}

/// Adds to `policies` a policy `id` forbidding `action` on `topic` to everyone.
fn forbid(policies: &Path, id: &str, action: &str, topic: &str) {
    std::fs::write(
        policies.join(format!("{id}.cedar")),
        format!("@id({id:?})\nforbid(principal, action == Palisade::Action::{action:?}, resource is Palisade::Topic) when {{ resource.name == {topic:?} }};\n"),
    )
    .unwrap();
}

/// A copy of the allow-all policies in `dir`, which a test then edits.
fn editable_policies(dir: &Path) -> std::path::PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all");
    for f in ["allow-all.cedar", "schema.cedarschema"] {
        std::fs::copy(fixture.join(f), policies.join(f)).unwrap();
    }
    policies
}

#[test]
fn a_policy_change_stops_a_consumer_in_the_middle_of_its_fetches() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let policies = editable_policies(dir.path());
    let policy_line = common::policy_dir_line(&policies);
    let gw = gateway(
        &cluster,
        &dir.path().join("data"),
        &[(&common::allow_all_policy_dir(), &policy_line)],
    );
    let (closing, open) = (unique("gw-closing"), unique("gw-still-open"));
    create_upstream_topic(&cluster.bootstrap(), &closing);
    create_upstream_topic(&cluster.bootstrap(), &open);
    let direct = producer(&cluster.bootstrap());
    send(&direct, &closing, b"before").unwrap();

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", gw.bootstrap())
        .set("group.id", unique("gw-policy-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&closing, 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset(&open, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let first = wait_for(LIMIT, || match c.poll(Duration::from_millis(200)) {
        Some(Ok(m)) => Some(m.payload().unwrap().to_vec()),
        _ => None,
    });
    assert_eq!(first.as_deref(), Some(&b"before"[..]));

    // The policy changes while the consumer keeps fetching: its next fetches of the topic are
    // refused at the gateway.
    forbid(&policies, "no-more-reading", "Read", &closing);
    let refused = wait_for(LIMIT, || match c.poll(Duration::from_millis(200)) {
        Some(Err(e))
            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAuthorizationFailed) =>
        {
            Some(())
        }
        _ => None,
    });
    assert!(refused.is_some(), "the consumer was never refused");
    // Written upstream after the refusal: the closed topic's record never comes through, the
    // open topic's (written after it) does, so fetching went on meanwhile.
    send(&direct, &closing, b"after").unwrap();
    send(&direct, &open, b"control").unwrap();
    let got = poll_values(&c, |v| v.iter().any(|v| v == b"control"));
    assert!(
        got.iter().any(|v| v == b"control"),
        "the open topic stopped too: {got:?}"
    );
    assert!(
        !got.iter().any(|v| v == b"after"),
        "a refused topic was read: {got:?}"
    );
}

/// Host names resolved to loopback through `/etc/hosts` while this lives (needs root, as CI
/// runs; the lines are removed on drop).
struct HostsEntries {
    marker: String,
}

impl HostsEntries {
    fn add(names: &[String]) -> HostsEntries {
        let marker = format!("# palisade-test {}", unique("sni"));
        let current = std::fs::read_to_string("/etc/hosts").unwrap();
        let line = format!("127.0.0.1 {} {marker}\n", names.join(" "));
        std::fs::write("/etc/hosts", format!("{current}{line}")).unwrap_or_else(|e| {
            panic!(
                "the SNI test resolves broker names through /etc/hosts and must run as root: {e}"
            )
        });
        HostsEntries { marker }
    }
}

impl Drop for HostsEntries {
    fn drop(&mut self) {
        if let Ok(current) = std::fs::read_to_string("/etc/hosts") {
            let kept: String = current
                .lines()
                .filter(|l| !l.contains(&self.marker))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write("/etc/hosts", kept);
        }
    }
}

/// Runs kcat with `args`; its exit status, standard output and standard error.
fn kcat(args: &[&str], input: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("kcat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed (.ci/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sni_addressing_serves_every_node_on_one_tls_port_to_kcat() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let domain = "gw.palisade.test";
    // A wildcard certificate for the domain, from a CA kcat trusts.
    let ca = palisade::tls::DevCa::generate("sni test CA").unwrap();
    let wildcard = format!("*.{domain}");
    let server = ca
        .issue_server(&format!("bootstrap.{domain}"), &[wildcard.as_str()])
        .unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca_file = certs.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    std::fs::write(
        certs.join("server.pem"),
        format!("{}{}", server.cert_pem, ca.cert_pem()),
    )
    .unwrap();
    std::fs::write(certs.join("server-key.pem"), &server.key_pem).unwrap();
    let mut names: Vec<String> = (0..16).map(|id| format!("broker-{id}.{domain}")).collect();
    names.push(format!("bootstrap.{domain}"));
    let _hosts = HostsEntries::add(&names);

    // The one listener is TLS, on a port known before it is bound (it is advertised).
    let port = common::gateway_harness::free_port_block(1);
    let bind = format!("bind = \"127.0.0.1:{port}\"");
    let ssl = format!(
        "protocol = \"SSL\"\n[listeners.tls]\ncert = {:?}\nkey = {:?}\nclient_auth = \"none\"\n",
        certs.join("server.pem").display().to_string(),
        certs.join("server-key.pem").display().to_string()
    );
    let sni_domain = format!("sni_domain = {domain:?}");
    let gw = gateway(
        &cluster,
        &dir.path().join("data"),
        &[
            ("bind = \"127.0.0.1:0\"", &bind),
            ("protocol = \"PLAINTEXT\"\n", &ssl),
            ("addressing = \"port\"", "addressing = \"sni\""),
            ("# sni_domain = \"kafka.example.com\"", &sni_domain),
        ],
    );
    let _ = gw.bootstrap();
    let bootstrap = format!("bootstrap.{domain}:{port}");
    let ca_path = ca_file.display().to_string();
    let tls = ["-X", "security.protocol=ssl", "-X"];
    let ca_location = format!("ssl.ca.location={ca_path}");
    let with_tls = |rest: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["-b".into(), bootstrap.clone()];
        args.extend(tls.iter().map(|s| s.to_string()));
        args.push(ca_location.clone());
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };
    let run = |rest: &[&str], input: Option<&str>| {
        let args = with_tls(rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kcat(&args, input)
    };

    // Metadata names every node by its SNI name on the one port.
    let (ok, listing, err) = run(&["-L", "-m", "30"], None);
    assert!(ok, "{listing}{err}");
    assert!(
        listing.contains(&format!("broker-1.{domain}:{port}")),
        "{listing}"
    );
    assert!(
        !listing.contains(&cluster.bootstrap().split(',').next().unwrap().to_string()),
        "{listing}"
    );

    // Produce and consume through the names.
    let topic = unique("gw-sni");
    create_upstream_topic(&cluster.bootstrap(), &topic);
    let lines: Vec<String> = (0..10).map(|i| format!("sni-{i}")).collect();
    let (ok, out, err) = run(
        &["-P", "-t", &topic, "-p", "0"],
        Some(&(lines.join("\n") + "\n")),
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(
        &[
            "-C",
            "-t",
            &topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-m",
            "60",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), lines);

    // No name (an IP address) or a name the gateway does not serve: refused in the handshake.
    let by_ip = format!("127.0.0.1:{port}");
    let (ok, out, err) = kcat(
        &[
            "-b",
            &by_ip,
            "-X",
            "security.protocol=ssl",
            "-X",
            &ca_location,
            "-X",
            "ssl.endpoint.identification.algorithm=none",
            "-L",
            "-m",
            "10",
        ],
        None,
    );
    assert!(
        !ok,
        "a connection without a server name was served: {out}{err}"
    );
}

/// SCRAM users in `data`'s credentials file, each with the password `<user>-password`.
fn scram_users(data: &Path, users: &[&str]) {
    std::fs::create_dir_all(data).unwrap();
    let file = data.join("credentials.json");
    let mut store = palisade::sasl::CredentialStore::load_or_create(&file).unwrap();
    for user in users {
        store
            .add_user(
                user,
                &palisade::sasl::Mechanism::ALL,
                4096,
                format!("{user}-password").as_bytes(),
            )
            .unwrap();
    }
    store.save(&file).unwrap();
}

/// A 0600 file holding `text`.
fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Every line of the audit trail in `data`.
fn audit_events(data: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(data.join("audit"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The principals the audit trail in `data` shows writing a topic whose name holds `topic`.
fn audited_writers(data: &Path, topic: &str) -> BTreeSet<String> {
    audit_events(data)
        .iter()
        .filter(|e| e["operation"] == "Write" && e["result"] == "allow")
        .filter(|e| e["resource"].as_str().is_some_and(|r| r.contains(topic)))
        .filter_map(|e| e["principal"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_mapped_client_reaches_an_upstream_palisade_as_itself_and_others_as_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let sasl = "protocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"SCRAM-SHA-256\"]";
    // The upstream: a Palisade broker that knows alice's upstream identity and the gateway's
    // service account, and audits who asks.
    let up_data = dir.path().join("upstream");
    scram_users(&up_data, &["alice-up", "gateway-svc"]);
    let upstream_broker = BackgroundBroker::start(&up_data, &[("protocol = \"PLAINTEXT\"", sasl)]);
    // The gateway: alice and bob log in to it; alice is mapped, bob is not.
    let gw_data = dir.path().join("gateway");
    scram_users(&gw_data, &["alice", "bob"]);
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    private_file(&secrets.join("svc.pw"), "gateway-svc-password\n");
    private_file(&secrets.join("alice.pw"), "alice-up-password\n");
    private_file(
        &secrets.join("identities.toml"),
        &format!(
            "[principals.alice]\nusername = \"alice-up\"\npassword_file = {:?}\n",
            secrets.join("alice.pw").display().to_string()
        ),
    );
    let map_line = format!(
        "identity_map_file = {:?}",
        secrets.join("identities.toml").display().to_string()
    );
    let password_line = format!(
        "password_file = {:?}",
        secrets.join("svc.pw").display().to_string()
    );
    let up = Upstream::Theirs(upstream_broker.bootstrap());
    let mut settings = vec![
        ("protocol = \"PLAINTEXT\"", sasl),
        (
            "# identity_map_file = \"/etc/palisade/upstream-identities.toml\"",
            &map_line,
        ),
        (
            "# mechanism = \"SCRAM-SHA-512\"",
            "mechanism = \"SCRAM-SHA-256\"",
        ),
        (
            "# username = \"palisade-gateway\"",
            "username = \"gateway-svc\"",
        ),
        (
            "# password_file = \"/etc/palisade/upstream-password\"",
            &password_line,
        ),
    ];
    let gw = gateway(&up, &gw_data, &settings);
    let as_user = |gw: &BackgroundBroker, user: &str| -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", gw.bootstrap())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "SCRAM-SHA-256")
            .set("sasl.username", user)
            .set("sasl.password", format!("{user}-password"))
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()
            .unwrap()
    };
    let (alices, bobs) = (unique("gw-alice"), unique("gw-bob"));
    send(&as_user(&gw, "alice"), &alices, b"from alice").unwrap();
    send(&as_user(&gw, "bob"), &bobs, b"from bob").unwrap();

    // The upstream's own audit trail: alice's writes as alice-up, bob's as the service
    // account; never the other way round.
    let writers_of = |topic: &str| audited_writers(&up_data, topic);
    let found = wait_for(LIMIT, || {
        let (a, b) = (writers_of(&alices), writers_of(&bobs));
        (!a.is_empty() && !b.is_empty()).then_some((a, b))
    });
    let (alice_writers, bob_writers) = found.expect("the upstream audited both writes");
    assert_eq!(alice_writers, BTreeSet::from(["User:alice-up".to_string()]));
    assert_eq!(
        bob_writers,
        BTreeSet::from(["User:gateway-svc".to_string()])
    );

    // With `unmapped = "refuse"`, bob (unmapped) is refused at the gateway and nothing of his
    // reaches the upstream, while alice still writes as herself.
    drop(gw);
    settings.push(("unmapped = \"service-account\"", "unmapped = \"refuse\""));
    let strict = gateway(&up, &gw_data, &settings);
    let refused_topic = unique("gw-bob-refused");
    // (Metadata says TOPIC_AUTHORIZATION_FAILED, which clients take as final.)
    let refused = send(&as_user(&strict, "bob"), &refused_topic, b"refused").unwrap_err();
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{refused:?}"
    );
    let alices_again = unique("gw-alice-again");
    send(&as_user(&strict, "alice"), &alices_again, b"again").unwrap();
    wait_for(LIMIT, || {
        (!writers_of(&alices_again).is_empty()).then_some(())
    })
    .expect("the upstream audited alice's write");
    assert_eq!(
        writers_of(&alices_again),
        BTreeSet::from(["User:alice-up".to_string()])
    );
    assert!(
        audit_events(&up_data)
            .iter()
            .all(|e| !e.to_string().contains(&refused_topic)),
        "the upstream saw bob's refused request"
    );
}

#[test]
fn a_leader_moved_by_reassignment_is_followed_by_clients_of_the_gateway() {
    use common::kafka_java::{run_java, REASSIGN_PARTITIONS};
    let up = upstream();
    let cluster = up.ours();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up, &dir.path().join("data"), &[]);
    let topic = &unique("gw-moving");
    // Replicas on nodes 1 and 2, node 1 leading.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .unwrap();
    let new = NewTopic::new(topic, 1, TopicReplication::Variable(&[&[1, 2]]));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in runtime()
        .block_on(admin.create_topics([&new], &options))
        .unwrap()
    {
        r.unwrap();
    }
    wait_for(LIMIT, || {
        partition_state(&gw.bootstrap(), topic).filter(|s| s.leader == 1)
    })
    .expect("node 1 leads the new topic, as the gateway's metadata says");
    let p = idempotent_producer(&gw.bootstrap());
    let before: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    for r in produce_all(&p, topic, &before) {
        r.unwrap();
    }

    // The partition moves to nodes 3 and 2 with Kafka's own tool, on the cluster directly:
    // node 1 leaves, so leadership moves off it.
    let plan = dir.path().join("reassign.json");
    std::fs::write(
        &plan,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":{topic:?},"partition":0,"replicas":[3,2]}}]}}"#
        ),
    )
    .unwrap();
    let run = run_java(
        REASSIGN_PARTITIONS,
        &[
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--reassignment-json-file",
            plan.to_str().unwrap(),
            "--execute",
        ],
    );
    assert!(run.success(), "{}", run.output());
    let moved = wait_for(LIMIT, || {
        partition_state(&cluster.bootstrap(), topic)
            .filter(|s| s.leader != 1 && !s.replicas.contains(&1))
    })
    .expect("the reassignment completes");
    assert!(moved.replicas.contains(&3), "{:?}", moved.replicas);
    let moved_to = moved.leader;
    // Clients of the gateway see the move in its rewritten metadata...
    wait_for(LIMIT, || {
        partition_state(&gw.bootstrap(), topic).filter(|s| s.leader == moved_to)
    })
    .expect("the gateway's metadata names the new leader");
    // ...and the producer connected to the old leader's port follows it: every record is
    // acknowledged and stored once, in order.
    let after: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
    for r in produce_all(&p, topic, &after) {
        r.unwrap();
    }
    let expected: Vec<Vec<u8>> = before
        .iter()
        .chain(&after)
        .map(|v| v.as_bytes().to_vec())
        .collect();
    assert_eq!(read_all(&gw.bootstrap(), topic, 100), expected);
    assert_eq!(read_all(&cluster.bootstrap(), topic, 100), expected);
}

/// Errors librdkafka reports through its error callback, with their codes.
#[derive(Clone, Default)]
struct ClientErrors(std::sync::Arc<std::sync::Mutex<Vec<ClientError>>>);

/// One error: its code and librdkafka's reason.
type ClientError = (Option<RDKafkaErrorCode>, String);

impl rdkafka::client::ClientContext for ClientErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0
            .lock()
            .unwrap()
            .push((error.rdkafka_error_code(), reason.to_string()));
    }
}

impl rdkafka::consumer::ConsumerContext for ClientErrors {}

impl ClientErrors {
    fn authentication(&self) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|(code, _)| *code == Some(RDKafkaErrorCode::Authentication))
    }
}

#[test]
fn removing_a_user_cuts_off_its_consumer_in_the_middle_of_its_fetches() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    scram_users(&data, &["bob", "carol"]);
    let sasl = "protocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"SCRAM-SHA-256\"]";
    let gw = gateway(&cluster, &data, &[("protocol = \"PLAINTEXT\"", sasl)]);
    let topic = unique("gw-removal");
    create_upstream_topic(&cluster.bootstrap(), &topic);
    let direct = producer(&cluster.bootstrap());
    send(&direct, &topic, b"before").unwrap();
    let consumer_as = |user: &str| -> (BaseConsumer<ClientErrors>, ClientErrors) {
        let errors = ClientErrors::default();
        let c: BaseConsumer<ClientErrors> = ClientConfig::new()
            .set("bootstrap.servers", gw.bootstrap())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "SCRAM-SHA-256")
            .set("sasl.username", user)
            .set("sasl.password", format!("{user}-password"))
            .set("group.id", unique(&format!("gw-removal-{user}")))
            .set("enable.auto.commit", "false")
            .create_with_context(errors.clone())
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        (c, errors)
    };
    let next_value = |c: &BaseConsumer<ClientErrors>| {
        wait_for(LIMIT, || match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => Some(m.payload().unwrap_or_default().to_vec()),
            _ => None,
        })
    };
    let (bob, bob_errors) = consumer_as("bob");
    let (carol, _) = consumer_as("carol");
    assert_eq!(next_value(&bob).as_deref(), Some(&b"before"[..]));
    assert_eq!(next_value(&carol).as_deref(), Some(&b"before"[..]));

    // Bob is removed while fetching: his connections close, his client cannot log in again
    // and reads nothing more; carol goes on.
    gw.running
        .as_ref()
        .unwrap()
        .broker
        .credentials
        .update(|s| s.remove_user("bob"))
        .unwrap();
    let cut_off = wait_for(LIMIT, || {
        let _ = bob.poll(Duration::from_millis(200));
        bob_errors.authentication().then_some(())
    });
    assert!(
        cut_off.is_some(),
        "bob's client never failed to log in again: {:?}",
        bob_errors.0.lock().unwrap()
    );
    send(&direct, &topic, b"after").unwrap();
    assert_eq!(next_value(&carol).as_deref(), Some(&b"after"[..]));
    for _ in 0..10 {
        if let Some(Ok(m)) = bob.poll(Duration::from_millis(200)) {
            assert_ne!(m.payload(), Some(&b"after"[..]), "a removed user read on");
        }
    }
}

#[test]
fn connection_limits_and_quotas_count_the_node_ports_too() {
    use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let (gw, base) = gateway_with_node_ports(
        &cluster,
        &dir.path().join("data"),
        &[
            // Three connections from 127.0.0.2 (the clients below use 127.0.0.1).
            (
                "connections_per_ip_overrides = {}",
                "connections_per_ip_overrides = { \"127.0.0.2\" = 3 }",
            ),
            (
                "new_connections_per_second_per_ip = 200",
                "new_connections_per_second_per_ip = 0",
            ),
            (
                "max_throttle_ms = 10000\n",
                "max_throttle_ms = 10000\n[[quotas.overrides]]\nclient_id = \"metered\"\nproducer_byte_rate = 100000\n",
            ),
        ],
    );
    let gw = &gw;
    // Three connections to two nodes' ports, from one address: each is served...
    let served = |port: u16| -> Option<common::Raw> {
        gw.rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().ok()?;
            socket.bind("127.0.0.2:0".parse().ok()?).ok()?;
            let stream = socket.connect(([127, 0, 0, 1], port).into()).await.ok()?;
            let mut raw = common::Raw::over(stream);
            raw.try_request::<_, ApiVersionsResponse>(
                ApiKey::ApiVersions,
                3,
                &ApiVersionsRequest::default(),
            )
            .await
            .map(|_| raw)
        })
    };
    // The node ports open once the gateway has learned the nodes.
    for node in 1..=3 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], base + node));
        wait_for(LIMIT, || common::api_versions_answered(addr).then_some(()))
            .unwrap_or_else(|| panic!("node {node}'s port {addr} never served"));
    }
    let held: Vec<common::Raw> = [base + 1, base + 2, base + 1]
        .into_iter()
        .map(|port| {
            served(port).unwrap_or_else(|| {
                panic!("a connection to {port} within the limit is not served (node 0 at {base})")
            })
        })
        .collect();
    // ...and a fourth, to another node's port or the bootstrap port, is not: one count for
    // every port of the gateway.
    assert!(
        served(base + 3).is_none(),
        "a node port ignored max_connections_per_ip"
    );
    assert!(
        served(base).is_none(),
        "node 0's port ignored max_connections_per_ip"
    );
    drop(held);
    // Freed slots serve again (once the gateway has seen the closes).
    wait_for(LIMIT, || served(base + 3)).expect("the closed connections' slots were never freed");

    // A producer over its quota, through the node ports: throttled, and nothing lost.
    let topic = unique("gw-metered");
    create_upstream_topic(&cluster.bootstrap(), &topic);
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", gw.bootstrap())
        .set("client.id", "metered")
        .set("acks", "all")
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap();
    let values: Vec<String> = (0..300)
        .map(|i| format!("{i:04}{}", "x".repeat(1020)))
        .collect();
    for r in produce_all(&p, &topic, &values) {
        r.unwrap();
    }
    let throttled = gw
        .running
        .as_ref()
        .unwrap()
        .broker
        .metrics
        .throttled
        .with(&["produce_quota"])
        .get();
    assert!(throttled >= 1, "300 KB at 100 KB/s were never throttled");
    assert_eq!(upstream_end(&cluster.bootstrap(), &topic), 300);
}

#[test]
fn a_consumer_group_rebalances_through_the_gateway_and_reads_every_record_once() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&cluster, &dir.path().join("data"), &[]);
    let topic = &unique("gw-rebalance");
    // Two partitions, created through the gateway (forwarded to the cluster).
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", gw.bootstrap())
        .create()
        .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in runtime()
        .block_on(admin.create_topics(
            [&NewTopic::new(topic, 2, TopicReplication::Fixed(3))],
            &options,
        ))
        .unwrap()
    {
        r.unwrap();
    }
    let group = unique("gw-rebalancing");
    let member = || -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", gw.bootstrap())
            .set("group.id", &group)
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .create()
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        c
    };
    let partitions_of = |c: &BaseConsumer| c.assignment().map(|a| a.count()).unwrap_or_default();
    let first = member();
    wait_for(LIMIT, || {
        let _ = first.poll(Duration::from_millis(200));
        (partitions_of(&first) == 2).then_some(())
    })
    .expect("the only member gets both partitions");
    // A second member joins: the group rebalances, one partition each.
    let second = member();
    wait_for(LIMIT, || {
        let _ = first.poll(Duration::from_millis(100));
        let _ = second.poll(Duration::from_millis(100));
        (partitions_of(&first) == 1 && partitions_of(&second) == 1).then_some(())
    })
    .expect("the group rebalanced to one partition each");

    let p = producer(&gw.bootstrap());
    let rt = runtime();
    for i in 0..40 {
        let value = format!("r{i}");
        rt.block_on(
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(i % 2)
                    .payload(&value),
                Duration::from_secs(30),
            ),
        )
        .unwrap();
    }
    // Each member reads its own partition's records; together every record, once.
    let mut by_member: [Vec<(i32, String)>; 2] = [Vec::new(), Vec::new()];
    let deadline = std::time::Instant::now() + LIMIT;
    while by_member[0].len() + by_member[1].len() < 40 && std::time::Instant::now() < deadline {
        for (i, c) in [&first, &second].into_iter().enumerate() {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                by_member[i].push((m.partition(), value));
            }
        }
    }
    let all: Vec<String> = by_member.iter().flatten().map(|(_, v)| v.clone()).collect();
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 40, "read {all:?}");
    assert_eq!(distinct.len(), 40, "some record was read twice: {all:?}");
    for reads in &by_member {
        let partitions: BTreeSet<i32> = reads.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            partitions.len(),
            1,
            "a member read both partitions: {reads:?}"
        );
    }
}

/// Sends SIGTERM to a child and kills it if it is still there when dropped.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_upstream_is_the_whole_gateway_in_one_command_from_an_empty_folder() {
    // Ours: the ports asserted below are those of nodes 1..3.
    let up = upstream();
    let cluster = up.ours();
    let _calm = cluster.calm();
    // The dev default's fixed ports: the test needs them free (as a newcomer's machine has).
    for port in [9092u16, 9093, 9094, 9644, 19093, 19094, 19095] {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken; this test runs the dev default on its fixed ports"
        );
    }
    let folder = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(folder.path().join("serve.log")).unwrap();
    let mut gw = Serving(
        std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["serve", "--upstream", &cluster.bootstrap()])
            .current_dir(folder.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(folder.path().join("serve.log")).unwrap_or_default();
    // Metadata through the PLAINTEXT listener: every upstream node at its documented port.
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .create()
        .unwrap();
    let metadata = wait_for(LIMIT, || {
        client
            .fetch_metadata(None, Duration::from_secs(5))
            .ok()
            .filter(|m| m.brokers().len() == 3)
    })
    .unwrap_or_else(|| panic!("the gateway never listed the nodes:\n{}", log_text()));
    let ports: BTreeSet<(i32, i32)> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), b.port()))
        .collect();
    assert_eq!(
        ports,
        BTreeSet::from([(1, 19093), (2, 19094), (3, 19095)]),
        "node N on 19092 + N"
    );
    // A record through it lands on the cluster.
    let topic = unique("gw-one-command");
    send(&producer("127.0.0.1:9092"), &topic, b"hello").unwrap();
    assert_eq!(
        read_all(&cluster.bootstrap(), &topic, 1),
        vec![b"hello".to_vec()]
    );
    // SIGTERM: a clean exit.
    let pid = gw.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exited = wait_for(LIMIT, || gw.0.try_wait().ok().flatten());
    assert!(
        exited.is_some_and(|s| s.success()),
        "{exited:?}\n{}",
        log_text()
    );
}

#[test]
fn before_login_only_the_sasl_apis_pass_and_nothing_reaches_the_upstream() {
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
        ProduceResponse,
    };
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    scram_users(&data, &["alice"]);
    let sasl = "protocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"SCRAM-SHA-256\"]";
    let (gw, base) =
        gateway_with_node_ports(&cluster, &data, &[("protocol = \"PLAINTEXT\"", sasl)]);
    let topic = unique("gw-before-login");
    create_upstream_topic(&cluster.bootstrap(), &topic);
    let record = common::batch(
        &[b"unauthenticated"],
        kafka_protocol::records::Compression::None,
        None,
    );
    let node_one = std::net::SocketAddr::from(([127, 0, 0, 1], base + 1));
    wait_for(LIMIT, || {
        common::api_versions_answered(node_one).then_some(())
    })
    .expect("node 1's port serves");
    let bootstrap: std::net::SocketAddr = gw.bootstrap().parse().unwrap();
    for addr in [bootstrap, node_one] {
        gw.rt.block_on(async {
            // ApiVersions passes before login...
            let mut raw = common::Raw::connect(addr).await;
            let versions: ApiVersionsResponse = raw
                .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
                .await;
            assert_eq!(versions.error_code, 0);
            // ...Metadata and Produce do not: no answer, the connection closes.
            assert!(
                raw.try_request::<_, MetadataResponse>(
                    ApiKey::Metadata,
                    12,
                    &MetadataRequest::default()
                )
                .await
                .is_none(),
                "Metadata answered before login on {addr}"
            );
            let mut raw = common::Raw::connect(addr).await;
            let produce = common::produce_request(&topic, 0, 1, record.clone());
            assert!(
                raw.try_request::<_, ProduceResponse>(ApiKey::Produce, 9, &produce)
                    .await
                    .is_none(),
                "Produce answered before login on {addr}"
            );
        });
    }
    // Logged in, the same client writes: the upstream holds that record only.
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", gw.bootstrap())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-password")
        .create()
        .unwrap();
    send(&p, &topic, b"logged in").unwrap();
    assert_eq!(
        read_all(&cluster.bootstrap(), &topic, 1),
        vec![b"logged in".to_vec()]
    );
    assert_eq!(upstream_end(&cluster.bootstrap(), &topic), 1);
}

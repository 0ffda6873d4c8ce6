//! Client quotas seen from outside: how fast real clients get through, what they are told
//! (`throttle_time_ms`), and that nothing is lost or refused because of a throttle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BackgroundBroker, Raw};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, MetadataRequest, MetadataResponse, ProduceResponse,
};
use kafka_protocol::records::Compression;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;

/// The test config with `quotas` added to the end of its `[quotas]` section.
fn broker(dir: &std::path::Path, quotas: &str) -> BackgroundBroker {
    let end = "max_throttle_ms = 10000\n";
    let section = format!("{end}{quotas}\n");
    BackgroundBroker::start(dir, &[(end, section.as_str())])
}

/// The largest throttle librdkafka reports having been told (its statistics, in ms), and how
/// many statistics reports it made.
#[derive(Clone, Default)]
struct Throttle(Arc<AtomicI64>, Arc<AtomicUsize>);

impl ClientContext for Throttle {
    fn stats(&self, statistics: Statistics) {
        for b in statistics.brokers.values() {
            if let Some(w) = &b.throttle {
                self.0.fetch_max(w.max, Ordering::Relaxed);
            }
        }
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

impl Throttle {
    /// The largest throttle, once librdkafka has reported twice more (so a whole statistics
    /// interval after the work, including its last throttle); `serve` runs its callbacks.
    fn settled(&self, mut serve: impl FnMut()) -> i64 {
        let seen = self.1.load(Ordering::Relaxed);
        common::wait_until(Duration::from_secs(10), || {
            serve();
            self.1.load(Ordering::Relaxed) >= seen + 2
        })
        .expect("librdkafka stopped reporting statistics");
        self.0.load(Ordering::Relaxed)
    }
}

impl ConsumerContext for Throttle {}

fn client(b: &BackgroundBroker, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("client.id", client_id)
        .set("statistics.interval.ms", "100");
    c
}

const VALUES: usize = 1000;
const VALUE_BYTES: usize = 1000;

/// Produces 1,000 values of 1,000 bytes as `client_id`; returns the time taken and the
/// largest throttle the client was told.
fn produce_all(b: &BackgroundBroker, topic: &str, client_id: &str) -> (Duration, i64) {
    let throttle = Throttle::default();
    let producer: FutureProducer<Throttle> = client(b, client_id)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "65536")
        .create_with_context(throttle.clone())
        .unwrap();
    let value = vec![b'x'; VALUE_BYTES];
    let started = Instant::now();
    b.rt.block_on(async {
        let sends: Vec<_> = (0..VALUES)
            .map(|i| {
                let key = i.to_string();
                producer
                    .send_result(FutureRecord::to(topic).key(&key).payload(&value))
                    .map_err(|(e, _)| e)
                    .unwrap()
            })
            .collect();
        for s in sends {
            s.await.unwrap().unwrap();
        }
    });
    let took = started.elapsed();
    // The producer's own thread serves its callbacks.
    (took, throttle.settled(|| ()))
}

/// Reads every record of `topic` as `client_id`; returns the keys in order, the time taken and
/// the largest throttle the client was told.
fn consume_all(b: &BackgroundBroker, topic: &str, client_id: &str) -> (Vec<String>, Duration, i64) {
    let throttle = Throttle::default();
    let consumer: BaseConsumer<Throttle> = client(b, client_id)
        .set("group.id", client_id)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "1048576")
        .create_with_context(throttle.clone())
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut keys = Vec::new();
    let started = Instant::now();
    while keys.len() < VALUES && started.elapsed() < Duration::from_secs(60) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            keys.push(String::from_utf8(m.key().unwrap().to_vec()).unwrap());
        }
    }
    let took = started.elapsed();
    let throttle = throttle.settled(|| {
        // Records past the last one are not expected; polling serves the statistics callback.
        let _ = consumer.poll(Duration::from_millis(10));
    });
    (keys, took, throttle)
}

fn in_order() -> Vec<String> {
    (0..VALUES).map(|i| i.to_string()).collect()
}

#[test]
fn a_producer_over_its_quota_is_held_to_it_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 200 KB/s for client id `metered`; `free` has no quota.
    let b = broker(
        dir.path(),
        "[[quotas.overrides]]\nclient_id = \"metered\"\nproducer_byte_rate = 200000",
    );
    let free = produce_all(&b, "quota-produce", "free");
    let metered = produce_all(&b, "quota-produce", "metered");
    assert_held_to_quota("producer", metered, free);
    // Throttled, never refused: every record of both producers is stored, in order.
    let (keys, _, _) = consume_all(&b, "quota-produce", "reader");
    assert_eq!(keys, in_order());
    let rest = consume_all_from(&b, "quota-produce", VALUES as i64);
    assert_eq!(rest, in_order());
    // Throttled many times, audited once per connection.
    let throttled = b
        .running
        .as_ref()
        .unwrap()
        .broker
        .metrics
        .throttled
        .with(&["produce_quota"])
        .get();
    assert!(throttled >= 3, "{throttled}");
    let dir_audit = dir.path().join("audit");
    audit_support::wait_in_file(&dir_audit, "quota_throttled", |e| {
        e["client_id"] == "metered"
    });
    let events = audit_support::parse(&audit_support::file_lines(&dir_audit));
    let audited = events
        .iter()
        .filter(|e| e["event_type"] == "quota_throttled")
        .count();
    assert!(
        (1..=2).contains(&audited),
        "{audited} events for {throttled} throttles"
    );
}

/// The records of partition 0 of `topic` from `offset` on, through a raw connection.
fn consume_all_from(b: &BackgroundBroker, topic: &str, offset: i64) -> Vec<String> {
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        let mut keys = Vec::new();
        let mut next = offset;
        while keys.len() < VALUES {
            let resp: FetchResponse = raw
                .request(ApiKey::Fetch, 11, &common::fetch_now(topic, next))
                .await;
            for (off, key) in records(&resp) {
                keys.push(key);
                next = off + 1;
            }
        }
        keys
    })
}

/// (offset, key) of every record in the first partition of a Fetch response.
fn records(resp: &FetchResponse) -> Vec<(i64, String)> {
    let Some(p) = resp.responses.first().map(|t| &t.partitions[0]) else {
        return Vec::new();
    };
    assert_eq!(p.error_code, 0);
    let mut bytes = p.records.clone().unwrap_or_default();
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_consumer_over_its_quota_is_held_to_it_and_reads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(
        dir.path(),
        "[[quotas.overrides]]\nclient_id = \"metered\"\nconsumer_byte_rate = 200000",
    );
    produce_all(&b, "quota-fetch", "writer");
    let (free_keys, free, free_throttle) = consume_all(&b, "quota-fetch", "free");
    let (keys, metered, metered_throttle) = consume_all(&b, "quota-fetch", "metered");
    assert_eq!(free_keys, in_order());
    assert_eq!(keys, in_order());
    assert_held_to_quota(
        "consumer",
        (metered, metered_throttle),
        (free, free_throttle),
    );
}

/// 1 MB at 200 KB/s, the first second's 200 KB free, takes at least 4 s, and the client was
/// told to wait; the same without a quota is never told to wait. (How fast the unmetered one
/// is depends on the machine: it is printed, not asserted.)
fn assert_held_to_quota(client: &str, metered: (Duration, i64), free: (Duration, i64)) {
    assert!(
        metered.0 >= Duration::from_millis(3500),
        "metered {client} took {:?}",
        metered.0
    );
    assert!(metered.1 > 0, "librdkafka was never told to wait");
    eprintln!(
        "unmetered {client} took {:?}, metered {:?}",
        free.0, metered.0
    );
    assert_eq!(free.1, 0, "the unmetered {client} was told to wait");
}

fn produce_of(bytes: usize) -> kafka_protocol::messages::ProduceRequest {
    let value = vec![b'v'; bytes];
    common::produce_request(
        "shared",
        0,
        -1,
        common::batch(&[&value], Compression::None, None),
    )
}

#[test]
fn a_new_client_id_does_not_escape_the_users_quota_and_a_throttled_connection_waits() {
    let dir = tempfile::tempdir().unwrap();
    // The one-line default: 100 KB/s per user (every connection here is ANONYMOUS).
    let b = broker(dir.path(), "producer_byte_rate = 100000");
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut first = Raw::connect(addr).await;
        first.client_id = "first".into();
        common::create_topic(&mut first, "shared", 1, &[]).await;
        let mut renamed = Raw::connect(addr).await;
        renamed.client_id = "renamed".into();
        // 150 KB against a 100 KB burst: about half a second owed, told in the response.
        let resp: ProduceResponse = first
            .request(ApiKey::Produce, 9, &produce_of(150_000))
            .await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        assert!(
            (400..=520).contains(&resp.throttle_time_ms),
            "throttle {} ms",
            resp.throttle_time_ms
        );
        // Another client id of the same user shares the bucket, still in debt: 100 KB more
        // is about a second owed (with a bucket of its own it would owe nothing).
        let resp: ProduceResponse = renamed
            .request(ApiKey::Produce, 9, &produce_of(100_000))
            .await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        assert!(
            resp.throttle_time_ms >= 500,
            "throttle {} ms",
            resp.throttle_time_ms
        );
        // The first connection reads its next request only once its own time is paid.
        let asked = Instant::now();
        let _: MetadataResponse = first
            .request(ApiKey::Metadata, 9, &MetadataRequest::default())
            .await;
        assert!(
            asked.elapsed() >= Duration::from_millis(300),
            "{:?}",
            asked.elapsed()
        );
    });
    // Each throttled response is counted.
    let metrics = b.running.as_ref().unwrap().broker.metrics.render();
    assert!(
        metrics.contains("palisade_throttled_total{kind=\"produce_quota\"} 2"),
        "{metrics}"
    );
    // Each connection's first throttle is in the audit trail, naming the quota's entity.
    let audit = dir.path().join("audit");
    for client in ["first", "renamed"] {
        let e =
            audit_support::wait_in_file(&audit, "quota_throttled", |e| e["client_id"] == client);
        assert_eq!(e["resource"], "quota:user=<default>");
        assert_eq!(e["operation"], "producer_byte_rate");
        assert!(e["detail"]["throttle_ms"].as_u64().unwrap() >= 400, "{e}");
    }
}

#[test]
fn a_fetch_while_time_is_owed_gets_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), "consumer_byte_rate = 100000");
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        common::create_topic(&mut raw, "shared", 1, &[]).await;
        let resp: ProduceResponse = raw.request(ApiKey::Produce, 9, &produce_of(300_000)).await;
        assert_eq!(resp.throttle_time_ms, 0, "produce has no quota here");
        // The first fetch gets the 300 KB and is told about 2 s.
        let resp: FetchResponse = raw
            .request(ApiKey::Fetch, 11, &common::fetch_now("shared", 0))
            .await;
        assert_eq!(records(&resp).len(), 1);
        assert!(
            resp.throttle_time_ms >= 1800,
            "throttle {} ms",
            resp.throttle_time_ms
        );
        // A second connection of the same user fetching meanwhile gets nothing and the time.
        let mut other = Raw::connect(addr).await;
        let resp: FetchResponse = other
            .request(ApiKey::Fetch, 11, &common::fetch_now("shared", 0))
            .await;
        assert!(records(&resp).is_empty());
        assert!(
            resp.throttle_time_ms >= 1500,
            "throttle {} ms",
            resp.throttle_time_ms
        );
    });
}

// ---------------------------------------------------------------------------------------------
// The admin API: AlterClientQuotas and DescribeClientQuotas

mod audit_support;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// An entry of `(entity type, name or None for the default)` with `(key, value or None to
/// remove)` operations.
fn entry(entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> EntryData {
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v)| {
                    OpData::default()
                        .with_key(s(k))
                        .with_value(v.unwrap_or(0.0))
                        .with_remove(v.is_none())
                })
                .collect(),
        )
}

async fn alter(raw: &mut Raw, entries: Vec<EntryData>) -> Vec<(i16, String)> {
    let resp: AlterClientQuotasResponse = raw
        .request(
            ApiKey::AlterClientQuotas,
            1,
            &AlterClientQuotasRequest::default().with_entries(entries),
        )
        .await;
    resp.entries
        .iter()
        .map(|e| {
            let message = e
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            (e.error_code, message)
        })
        .collect()
}

/// Every quota in force as `"entity key=value"` lines, sorted, or the error code.
async fn describe(
    raw: &mut Raw,
    components: Vec<ComponentData>,
    strict: bool,
) -> Result<Vec<String>, i16> {
    let resp: DescribeClientQuotasResponse = raw
        .request(
            ApiKey::DescribeClientQuotas,
            1,
            &DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(strict),
        )
        .await;
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    let mut lines: Vec<String> = resp
        .entries
        .unwrap_or_default()
        .iter()
        .flat_map(|e| {
            let entity: Vec<String> = e
                .entity
                .iter()
                .map(|d| {
                    let name = d
                        .entity_name
                        .as_ref()
                        .map_or("<default>".to_string(), |n| n.to_string());
                    format!("{}={name}", d.entity_type.as_str())
                })
                .collect();
            let entity = entity.join(",");
            e.values
                .iter()
                .map(move |v| format!("{entity} {}={}", v.key.as_str(), v.value))
        })
        .collect();
    lines.sort();
    Ok(lines)
}

fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(s(entity_type))
        .with_match_type(match_type)
        .with_match(name.map(s))
}

const INVALID_REQUEST: i16 = 42;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

#[test]
fn quotas_altered_through_the_admin_api_apply_at_once_survive_a_restart_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = broker(
        dir.path(),
        "[[quotas.overrides]]\nclient_id = \"batch\"\nconsumer_byte_rate = 5000000",
    );
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        common::create_topic(&mut raw, "shared", 1, &[]).await;
        let resp: ProduceResponse = raw.request(ApiKey::Produce, 9, &produce_of(150_000)).await;
        assert_eq!(resp.throttle_time_ms, 0, "no produce quota yet");
        // One valid entry (every user: 100 KB/s) among refused ones; the valid one applies.
        let results = alter(
            &mut raw,
            vec![
                entry(
                    &[("user", None)],
                    &[("producer_byte_rate", Some(100_000.0))],
                ),
                entry(
                    &[("user", Some("a"))],
                    &[("request_percentage", Some(50.0))],
                ),
                entry(
                    &[("client-id", Some("b"))],
                    &[("producer_byte_rate", Some(1.5))],
                ),
                entry(
                    &[("ip", Some("10.0.0.1"))],
                    &[("connection_creation_rate", Some(5.0))],
                ),
                entry(
                    &[("user", Some("a")), ("user", Some("b"))],
                    &[("producer_byte_rate", Some(5.0))],
                ),
            ],
        )
        .await;
        assert_eq!(results[0], (0, String::new()));
        for (i, want) in [
            (1, "unsupported quota `request_percentage`"),
            (2, "whole number"),
            (3, "[limits]"),
            (4, "appears twice"),
        ] {
            assert_eq!(results[i].0, INVALID_REQUEST, "{i}");
            assert!(results[i].1.contains(want), "{i}: {}", results[i].1);
        }
        // In force at once, for this connection too.
        let resp: ProduceResponse = raw.request(ApiKey::Produce, 9, &produce_of(150_000)).await;
        assert!(
            resp.throttle_time_ms >= 400,
            "throttle {} ms",
            resp.throttle_time_ms
        );
        // Describe: the config file's quota and the altered one, filtered as asked.
        assert_eq!(
            describe(&mut raw, vec![], false).await.unwrap(),
            [
                "client-id=batch consumer_byte_rate=5000000",
                "user=<default> producer_byte_rate=100000"
            ]
        );
        assert_eq!(
            describe(&mut raw, vec![component("user", 1, None)], true)
                .await
                .unwrap(),
            ["user=<default> producer_byte_rate=100000"]
        );
        assert_eq!(
            describe(
                &mut raw,
                vec![component("client-id", 0, Some("batch"))],
                false
            )
            .await
            .unwrap(),
            ["client-id=batch consumer_byte_rate=5000000"]
        );
        assert!(describe(
            &mut raw,
            vec![component("client-id", 0, Some("other"))],
            false
        )
        .await
        .unwrap()
        .is_empty());
        assert_eq!(
            describe(&mut raw, vec![component("ip", 2, None)], false).await,
            Err(INVALID_REQUEST)
        );
    });
    let stored = std::fs::read_to_string(dir.path().join("client-quotas.json")).unwrap();
    assert!(
        stored.contains("\"producer_byte_rate\": 100000"),
        "{stored}"
    );
    // A restart keeps it; removing it ends the throttling.
    b.restart();
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        assert_eq!(
            describe(&mut raw, vec![component("user", 1, None)], false)
                .await
                .unwrap(),
            ["user=<default> producer_byte_rate=100000"]
        );
        let results = alter(
            &mut raw,
            vec![entry(&[("user", None)], &[("producer_byte_rate", None)])],
        )
        .await;
        assert_eq!(results[0], (0, String::new()));
        for _ in 0..3 {
            let resp: ProduceResponse = raw.request(ApiKey::Produce, 9, &produce_of(150_000)).await;
            assert_eq!(resp.throttle_time_ms, 0);
        }
        assert_eq!(
            describe(&mut raw, vec![], false).await.unwrap(),
            ["client-id=batch consumer_byte_rate=5000000"]
        );
    });
    // Both changes are in the audit trail, with what they set.
    let audit = dir.path().join("audit");
    let set = audit_support::wait_in_file(&audit, "client_quota_changed", |e| {
        e["detail"]["changes"]["producer_byte_rate"] == 100000
    });
    assert_eq!(set["resource"], "quota:user=<default>");
    assert_eq!(set["result"], "success");
    audit_support::wait_in_file(&audit, "client_quota_changed", |e| {
        e["detail"]["changes"]["producer_byte_rate"].is_null()
    });
}

#[test]
fn only_principals_permitted_to_alter_configs_change_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all");
    for f in ["allow-all.cedar", "schema.cedarschema"] {
        std::fs::copy(fixture.join(f), policies.join(f)).unwrap();
    }
    std::fs::write(
        policies.join("no-cluster-configs.cedar"),
        "@id(\"no-cluster-configs\")\nforbid(principal, action in [Palisade::Action::\"AlterConfigs\", Palisade::Action::\"DescribeConfigs\"], resource is Palisade::Cluster);\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let policy_line = common::policy_dir_line(&policies);
    let b = BackgroundBroker::start(
        &data,
        &[(
            common::allow_all_policy_dir().as_str(),
            policy_line.as_str(),
        )],
    );
    let addr = b.running.as_ref().unwrap().addresses[0];
    b.rt.block_on(async {
        let mut raw = Raw::connect(addr).await;
        let results = alter(
            &mut raw,
            vec![entry(
                &[("user", None)],
                &[("producer_byte_rate", Some(1.0))],
            )],
        )
        .await;
        assert_eq!(results[0].0, CLUSTER_AUTHORIZATION_FAILED);
        assert!(
            results[0].1.contains("AlterConfigs on the cluster"),
            "{}",
            results[0].1
        );
        assert_eq!(
            describe(&mut raw, vec![], false).await,
            Err(CLUSTER_AUTHORIZATION_FAILED)
        );
        // Nothing changed: a produce is not throttled.
        common::create_topic(&mut raw, "shared", 1, &[]).await;
        let resp: ProduceResponse = raw.request(ApiKey::Produce, 9, &produce_of(10_000)).await;
        assert_eq!(resp.throttle_time_ms, 0);
    });
    assert!(!data.join("client-quotas.json").exists());
    // The refusal is in the audit trail, naming the forbidding policy.
    let denied = audit_support::wait_in_file(&data.join("audit"), "authorization", |e| {
        e["operation"] == "AlterConfigs" && e["result"] == "deny"
    });
    assert!(
        denied.to_string().contains("no-cluster-configs"),
        "{denied}"
    );
}

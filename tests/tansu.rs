//! tansu, a third-party Kafka-compatible broker, driven by librdkafka: directly (a topic
//! created, records produced with acks=all and consumed back in a group), and as the upstream
//! of a Palisade gateway (the same exchange through the gateway, the records on tansu, a Cedar
//! denial that tansu never sees, and the gateway's ApiVersions within what tansu offers).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::clients::runtime;
use common::gateway_harness::{forbid_writes, policies_with, Gateway};
use common::kafka_cluster::metadata_brokers;
use common::tansu::Tansu;
use common::Raw;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreatePartitionsRequest,
    CreatePartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, FromClientConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// The whole exchange may take this long; past it (or as soon as tansu exits) the test fails
/// with what tansu wrote, instead of waiting on a client that waits on a dead broker.
const WATCHDOG: Duration = Duration::from_secs(240);

#[test]
fn produces_and_consumes_in_a_group_through_tansu() {
    let mut tansu = Tansu::start();
    let bootstrap = tansu.bootstrap();
    watched(&mut tansu, move || exchange(&bootstrap, "through-tansu"));

    // Dropping the helper stops the broker: nothing answers on its port afterwards.
    let addr = tansu.bootstrap().parse().unwrap();
    drop(tansu);
    assert_eq!(metadata_brokers(addr), None);
}

/// tansu's node id (it numbers its one node 111), the gateway's `node_id_base`.
const TANSU_NODE_ID: i32 = 111;

#[test]
fn a_gateway_in_front_of_tansu_serves_a_group_and_keeps_a_denied_write_from_it() {
    let mut tansu = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let policy_line = policies_with(dir.path(), &forbid_writes("tansu-secret"));
    let gw = Gateway::start(
        &tansu.bootstrap(),
        TANSU_NODE_ID,
        &dir.path().join("data"),
        &[(&common::allow_all_policy_dir(), &policy_line)],
    );
    let (through, direct) = (gw.bootstrap(), tansu.bootstrap());
    let port_base = gw.port_base;
    watched(&mut tansu, move || {
        // The client sees tansu's node at the gateway's port, never tansu's own address.
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &through)
            .create()
            .unwrap();
        let md = c.fetch_metadata(None, Duration::from_secs(30)).unwrap();
        let brokers: Vec<(i32, String)> = md
            .brokers()
            .iter()
            .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
            .collect();
        assert_eq!(
            brokers,
            vec![(TANSU_NODE_ID, format!("127.0.0.1:{port_base}"))]
        );

        // Topic created, produced and read in a group, all through the gateway...
        exchange(&through, "gw-on-tansu");
        // ...and the records are on tansu itself.
        let sent: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        assert_eq!(read_partition(&direct, "gw-on-tansu", sent.len()), sent);

        // A write Cedar denies: the client gets TOPIC_AUTHORIZATION_FAILED, tansu nothing.
        create_topic(&direct, "tansu-secret");
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &through)
            .set("message.timeout.ms", "30000")
            .create()
            .unwrap();
        let refused = runtime()
            .block_on(producer.send(
                FutureRecord::<(), _>::to("tansu-secret").payload("leak"),
                Duration::from_secs(30),
            ))
            .map_err(|(e, _)| e)
            .unwrap_err();
        assert_eq!(
            refused.rdkafka_error_code(),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{refused:?}"
        );
        let (_, high) =
            BaseConsumer::from_config(ClientConfig::new().set("bootstrap.servers", &direct))
                .unwrap()
                .fetch_watermarks("tansu-secret", 0, Duration::from_secs(10))
                .unwrap();
        assert_eq!(high, 0, "the denied record reached tansu");

        // The gateway advertises only what tansu offers too (apart from the APIs it answers
        // itself), each within tansu's versions.
        let (gateway_apis, tansu_apis) = runtime()
            .block_on(async { (api_versions(&through).await, api_versions(&direct).await) });
        let mut missing_upstream = Vec::new();
        for (key, (min, max)) in &gateway_apis {
            if ANSWERED_BY_THE_GATEWAY.contains(key) {
                continue;
            }
            let (up_min, up_max) = tansu_apis
                .get(key)
                .copied()
                .unwrap_or_else(|| panic!("the gateway advertises {key:?}, which tansu lacks"));
            assert!(
                up_min <= *min && max <= &up_max,
                "{key:?}: gateway {min}..={max}, tansu {up_min}..={up_max}"
            );
        }
        for key in tansu_apis.keys() {
            if !gateway_apis.contains_key(key) {
                missing_upstream.push(*key);
            }
        }
        // tansu has no CreatePartitions: the gateway does not offer it, and one sent anyway
        // is refused at the gateway, never forwarded (the topic keeps its one partition).
        assert!(!gateway_apis.contains_key(&(ApiKey::CreatePartitions as i16)));
        let answer = runtime().block_on(async {
            let mut raw = Raw::connect(through.parse().unwrap()).await;
            raw.try_request::<_, CreatePartitionsResponse>(
                ApiKey::CreatePartitions,
                1,
                &CreatePartitionsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("gw-on-tansu")))
                        .with_count(3)]),
            )
            .await
        });
        assert!(answer.is_none(), "CreatePartitions answered: {answer:?}");
        let on_tansu =
            BaseConsumer::from_config(ClientConfig::new().set("bootstrap.servers", &direct))
                .unwrap()
                .fetch_metadata(Some("gw-on-tansu"), Duration::from_secs(10))
                .unwrap();
        assert_eq!(on_tansu.topics()[0].partitions().len(), 1);
        // For the run's log: what tansu offers that the gateway does not pass on.
        eprintln!(
            "gateway in front of tansu advertises {} APIs; tansu offers {} more: {missing_upstream:?}",
            gateway_apis.len(),
            missing_upstream.len()
        );
    });
}

#[test]
fn transactions_pass_through_a_gateway_to_tansu_and_read_committed_sees_what_tansu_serves() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mut tansu = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        &tansu.bootstrap(),
        TANSU_NODE_ID,
        &dir.path().join("data"),
        &[],
    );
    let (through, direct) = (gw.bootstrap(), tansu.bootstrap());
    watched(&mut tansu, move || {
        create_topic(&direct, "txn-on-tansu");
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &through)
            .set("transactional.id", "gw-tansu-txn")
            .set("message.timeout.ms", "30000")
            .create()
            .unwrap();
        let timeout = Duration::from_secs(30);
        p.init_transactions(timeout).unwrap();
        let send_in_transaction = |values: &[&str]| {
            p.begin_transaction().unwrap();
            for v in values {
                p.send(
                    BaseRecord::<(), str>::to("txn-on-tansu")
                        .partition(0)
                        .payload(v),
                )
                .unwrap();
            }
            p.flush(timeout).unwrap();
        };
        send_in_transaction(&["kept-0", "kept-1"]);
        p.commit_transaction(timeout).unwrap();
        send_in_transaction(&["aborted-0", "aborted-1"]);
        p.abort_transaction(timeout).unwrap();
        send_in_transaction(&["last"]);
        p.commit_transaction(timeout).unwrap();

        // read_committed through the gateway sees what tansu itself serves a read_committed
        // consumer: tansu 0.6 returns the aborted records too (it lists no aborted
        // transactions in its Fetch answers), so a gateway in front of it cannot hide them.
        let read_committed = |bootstrap: &str| {
            read_partition_with(
                bootstrap,
                "txn-on-tansu",
                &[("isolation.level", "read_committed")],
                |v| v.iter().any(|v| v == "last"),
            )
        };
        let (through, direct) = (read_committed(&through), read_committed(&direct));
        assert_eq!(through, direct);
        let committed: Vec<&String> = through
            .iter()
            .filter(|v| !v.starts_with("aborted"))
            .collect();
        assert_eq!(committed, ["kept-0", "kept-1", "last"]);
    });
}

/// APIs a gateway answers itself, whatever the upstream offers.
const ANSWERED_BY_THE_GATEWAY: &[i16] = &[
    ApiKey::ApiVersions as i16,
    ApiKey::SaslHandshake as i16,
    ApiKey::SaslAuthenticate as i16,
    ApiKey::DescribeAcls as i16,
    ApiKey::CreateAcls as i16,
    ApiKey::DeleteAcls as i16,
    ApiKey::DescribeUserScramCredentials as i16,
    ApiKey::AlterUserScramCredentials as i16,
    ApiKey::DescribeClientQuotas as i16,
    ApiKey::AlterClientQuotas as i16,
];

/// The ApiVersions (v3) answer of `bootstrap`: api key -> (min, max).
async fn api_versions(bootstrap: &str) -> std::collections::BTreeMap<i16, (i16, i16)> {
    let mut raw = Raw::connect(bootstrap.parse().unwrap()).await;
    let resp: ApiVersionsResponse = raw
        .request(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("palisade-tests"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .await;
    assert_eq!(resp.error_code, 0, "ApiVersions of {bootstrap}");
    resp.api_keys
        .iter()
        .map(|a| (a.api_key, (a.min_version, a.max_version)))
        .collect()
}

/// Creates `topic` (one partition) on `bootstrap`.
fn create_topic(bootstrap: &str, topic: &str) {
    common::clients::create_topic(bootstrap, topic, 1, 1);
}

/// The values of partition 0 of `topic` on `bootstrap`, from its beginning, until `expected`
/// arrived or 90 s passed.
fn read_partition(bootstrap: &str, topic: &str, expected: usize) -> Vec<String> {
    read_partition_with(bootstrap, topic, &[], |v| v.len() >= expected)
}

/// The values of partition 0 of `topic` on `bootstrap` (consumer `settings` on top), from its
/// beginning, until `done` says so or 90 s passed.
fn read_partition_with(
    bootstrap: &str,
    topic: &str,
    settings: &[(&str, &str)],
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "direct-reader")
        .set("enable.auto.commit", "false");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done(&got) && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    got
}

/// Runs `body` on its own thread while watching `tansu`: fails as soon as tansu exits, or
/// after [`WATCHDOG`], instead of waiting on a client that waits on a dead broker.
fn watched(tansu: &mut Tansu, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        let _ = done.send(outcome);
    });
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match finished.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(())) => break,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => {
                if let Some(exit) = tansu.exited() {
                    panic!("tansu exited during the test: {exit}");
                }
                assert!(
                    Instant::now() < deadline,
                    "no answer from the clients within {WATCHDOG:?}"
                );
            }
        }
    }
}

/// `topic` created, 100 records produced with acks=all, read back in a group.
fn exchange(bootstrap: &str, topic: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for r in rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let sent: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let deliveries: Vec<_> = sent
        .iter()
        .map(|v| {
            producer
                .send_result(FutureRecord::<(), _>::to(topic).payload(v))
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    rt.block_on(async {
        for d in deliveries {
            d.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tansu-readers")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.len() < sent.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(got, sent);
}

//! The Python clients and kcat through a Palisade gateway: confluent-kafka (bundled librdkafka
//! 2.16), kafka-python (pure Python) and kcat (Debian's librdkafka 2.0) in front of a real
//! Apache Kafka cluster (`crate::common::kafka_cluster`), each checked on what the client received and
//! on what the cluster itself holds (read directly). The Python side is
//! `tests/gateway/scenarios.py`; it reports, this file asserts.
//!
//! `tests/gateway-against.sh HOST:PORT` runs these tests against any cluster instead
//! (`PALISADE_UPSTREAM`; its topics get a unique suffix).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::clients::runtime;
use crate::common::gateway_harness::{
    forbid_writes, policies_with, python_scenario, strings, Gateway,
};
use crate::common::wait::wait_for;
use crate::common::{BackgroundBroker, Raw};
use crate::{audited_writers, kcat, scram_users, unique, upstream, Upstream, LIMIT};
use kafka_protocol::messages::{ApiKey, FetchResponse};
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The cluster's brokers as it advertises them itself: id -> `host:port`.
fn upstream_brokers(up: &Upstream) -> std::collections::BTreeMap<i32, String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", up.bootstrap())
        .create()
        .unwrap();
    let md = c.fetch_metadata(None, Duration::from_secs(30)).unwrap();
    md.brokers()
        .iter()
        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
        .collect()
}

/// Creates `topic` on the cluster itself (`partitions`, up to three replicas).
fn create_upstream_topic(up: &Upstream, topic: &str, partitions: i32) {
    let replicas = i32::try_from(upstream_brokers(up).len().min(3)).unwrap();
    crate::common::clients::create_topic(&up.bootstrap(), topic, partitions, replicas);
}

/// The leader of partition 0 of `topic` and the high watermark of every partition, as the
/// cluster itself reports them.
fn upstream_ends(up: &Upstream, topic: &str) -> (i32, Vec<i64>) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", up.bootstrap())
        .create()
        .unwrap();
    wait_for(LIMIT, || {
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
        let partitions = md.topics().first()?.partitions();
        let leader = partitions.first()?.leader();
        let ends = partitions
            .iter()
            .map(|p| {
                c.fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                    .ok()
                    .map(|(_, high)| high)
            })
            .collect::<Option<Vec<i64>>>()?;
        (leader >= 0).then_some((leader, ends))
    })
    .expect("the upstream's metadata and watermarks")
}

/// Every record batch of partition 0 of `topic` as its leader stores it: (producer id,
/// values).
fn upstream_batches(up: &Upstream, topic: &str) -> Vec<(i64, Vec<String>)> {
    let (leader, _) = upstream_ends(up, topic);
    let addr = upstream_brokers(up).remove(&leader).unwrap();
    runtime().block_on(async {
        let mut raw = Raw::over(tokio::net::TcpStream::connect(&addr).await.unwrap());
        let resp: FetchResponse = raw
            .request(ApiKey::Fetch, 12, &crate::common::fetch_now(topic, 0))
            .await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch of {topic} from node {leader}");
        let mut bytes = p.records.clone().unwrap_or_default();
        RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap()
            .into_iter()
            .filter_map(|set| {
                let first = set.records.first()?.producer_id;
                let values = set
                    .records
                    .iter()
                    .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
                    .collect();
                Some((first, values))
            })
            .collect()
    })
}

/// Every broker address the client reported is one of the gateway's node ports, never an
/// address of the cluster.
fn assert_only_gateway_addresses(gw: &Gateway, up: &Upstream, seen: &[String]) {
    assert!(!seen.is_empty(), "the client reported no brokers");
    let brokers = upstream_brokers(up);
    let bootstrap = up.bootstrap();
    let upstream: BTreeSet<&str> = brokers
        .values()
        .map(String::as_str)
        .chain(bootstrap.split(','))
        .collect();
    for address in seen {
        assert!(
            !upstream.contains(address.as_str()),
            "the client was given the upstream address {address}"
        );
        assert!(
            gw.is_node_port(address),
            "{address} is not a gateway node port"
        );
    }
    assert_eq!(seen.len(), brokers.len(), "one address per node: {seen:?}");
}

/// A consumer group through the gateway: the first half of the records read by one member,
/// then a second member joins, the four partitions are split between the two, and the
/// second half is read by both; every record exactly once.
fn group_with_a_rebalance(client: &str) {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&cluster.bootstrap(), 0, &dir.path().join("data"), &[]);
    let topic = unique(&format!("gwc-group-{client}"));
    create_upstream_topic(&cluster, &topic, 4);
    let group = unique(&format!("gwc-{client}"));
    let count = 200;
    let out = python_scenario(&[
        "group",
        "--client",
        client,
        "--bootstrap",
        &gw.bootstrap(),
        "--topic",
        &topic,
        "--count",
        &count.to_string(),
        "--group",
        &group,
    ]);
    let report = |k: &str| format!("{k}: {}", out[k]);
    assert_eq!(strings(&out["produce_errors"]), Vec::<String>::new());
    assert_eq!(strings(&out["failures"]), Vec::<String>::new());
    assert_eq!(out["a_alone_read_first_half"], true, "{out}");
    assert_eq!(out["a_alone_partitions"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(out["split"], true, "{}", report("b_partitions"));
    let (a, b) = (strings(&out["a"]), strings(&out["b"]));
    // The second member got records (its partitions), the first kept reading its own.
    assert!(!b.is_empty(), "{}", report("b_partitions"));
    assert!(a.len() > count / 2, "{}", report("a_partitions"));
    // Exactly once across both: no record twice, none missing.
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    let mut expected: Vec<String> = (0..count).map(|i| format!("{client}-{i}")).collect();
    expected.sort();
    assert_eq!(all, expected);
    assert_only_gateway_addresses(&gw, &cluster, &strings(&out["brokers"]));
    // The cluster holds every record, once.
    let (_, ends) = upstream_ends(&cluster, &topic);
    assert_eq!(ends.iter().sum::<i64>(), count as i64, "{ends:?}");
}

#[test]
fn confluent_kafka_consumes_in_a_group_through_the_gateway_across_a_rebalance() {
    group_with_a_rebalance("confluent");
}

#[test]
fn kafka_python_consumes_in_a_group_through_the_gateway_across_a_rebalance() {
    group_with_a_rebalance("kafka-python");
}

#[test]
fn confluent_kafka_idempotent_producer_writes_each_record_once_through_the_gateway() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&cluster.bootstrap(), 0, &dir.path().join("data"), &[]);
    let topic = unique("gwc-idempotent");
    create_upstream_topic(&cluster, &topic, 1);
    let out = python_scenario(&[
        "produce",
        "--client",
        "confluent",
        "--bootstrap",
        &gw.bootstrap(),
        "--topic",
        &topic,
        "--count",
        "300",
        "--idempotent",
    ]);
    assert_eq!(strings(&out["errors"]), Vec::<String>::new(), "{out}");
    assert_eq!(
        strings(&out["client_errors"]),
        Vec::<String>::new(),
        "{out}"
    );
    // On the cluster: every record once, in order, in batches of a producer id the cluster
    // gave out (InitProducerId passed through), not the -1 of a plain producer.
    let batches = upstream_batches(&cluster, &topic);
    let values: Vec<String> = batches.iter().flat_map(|(_, v)| v.clone()).collect();
    let expected: Vec<String> = (0..300).map(|i| format!("confluent-{i}")).collect();
    assert_eq!(values, expected);
    let producers: BTreeSet<i64> = batches.iter().map(|(p, _)| *p).collect();
    assert_eq!(producers.len(), 1, "{producers:?}");
    assert!(producers.iter().all(|p| *p >= 0), "{producers:?}");
}

#[test]
fn a_write_cedar_denies_gives_python_clients_topic_authorization_failed_and_never_reaches_the_upstream(
) {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let (secret, open) = (unique("gwc-secret"), unique("gwc-open"));
    let policy_line = policies_with(dir.path(), &forbid_writes(&secret));
    let gw = Gateway::start(
        &cluster.bootstrap(),
        0,
        &dir.path().join("data"),
        &[(&crate::common::allow_all_policy_dir(), &policy_line)],
    );
    create_upstream_topic(&cluster, &secret, 1);
    create_upstream_topic(&cluster, &open, 1);
    for client in ["confluent", "kafka-python"] {
        let produce = |topic: &str| {
            python_scenario(&[
                "produce",
                "--client",
                client,
                "--bootstrap",
                &gw.bootstrap(),
                "--topic",
                topic,
                "--count",
                "3",
            ])
        };
        let refused = produce(&secret);
        assert_eq!(
            strings(&refused["errors"]),
            vec!["TOPIC_AUTHORIZATION_FAILED"; 3],
            "{client}: {refused}"
        );
        // The same client writes the topic it may write.
        let allowed = produce(&open);
        assert_eq!(
            strings(&allowed["errors"]),
            Vec::<String>::new(),
            "{client}: {allowed}"
        );
    }
    // Both clients' allowed records are on the cluster; the denied ones never reached it.
    assert_eq!(upstream_ends(&cluster, &open).1, vec![6]);
    assert_eq!(upstream_ends(&cluster, &secret).1, vec![0]);
}

#[test]
fn kcat_produces_and_consumes_through_the_gateway_and_lists_only_gateway_addresses() {
    let cluster = upstream();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&cluster.bootstrap(), 0, &dir.path().join("data"), &[]);
    let bootstrap = gw.bootstrap();
    let topic = unique("gwc-kcat");
    create_upstream_topic(&cluster, &topic, 1);

    let (ok, listing, err) = kcat(&["-b", &bootstrap, "-L", "-m", "30"], None);
    assert!(ok, "{listing}{err}");
    let brokers: Vec<String> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("broker "))
        .filter_map(|l| l.split(" at ").nth(1))
        .map(|a| a.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    assert_only_gateway_addresses(&gw, &cluster, &brokers);

    let lines: Vec<String> = (0..100).map(|i| format!("kcat-{i}")).collect();
    let (ok, out, err) = kcat(
        &["-b", &bootstrap, "-P", "-t", &topic, "-X", "acks=all"],
        Some(&(lines.join("\n") + "\n")),
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-m",
            "60",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), lines);
    assert_eq!(upstream_ends(&cluster, &topic).1, vec![100]);
}

/// Clients log in to the gateway with SCRAM-SHA-512 over TLS; the gateway reaches its upstream
/// (a Palisade broker that requires SCRAM) as its service account. A wrong password is refused
/// at the gateway.
#[test]
fn python_clients_log_in_with_scram_over_tls_at_the_gateway_which_reaches_the_upstream_as_its_service_account(
) {
    let dir = tempfile::tempdir().unwrap();
    // The upstream knows only the gateway's service account.
    let up_data = dir.path().join("upstream");
    scram_users(&up_data, &["gateway-svc"]);
    let upstream = BackgroundBroker::start(
        &up_data,
        &[(
            "protocol = \"PLAINTEXT\"",
            "protocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"SCRAM-SHA-512\"]",
        )],
    );
    // The gateway: carol logs in to it over TLS; its certificate names 127.0.0.1, the address
    // it advertises.
    let gw_data = dir.path().join("gateway");
    scram_users(&gw_data, &["carol"]);
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = palisade::tls::DevCa::generate("gateway clients test CA").unwrap();
    let server = ca.issue_server("127.0.0.1", &["127.0.0.1"]).unwrap();
    let ca_file = certs.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    std::fs::write(
        certs.join("server.pem"),
        format!("{}{}", server.cert_pem, ca.cert_pem()),
    )
    .unwrap();
    std::fs::write(certs.join("server-key.pem"), &server.key_pem).unwrap();
    let password_file = dir.path().join("svc.pw");
    std::fs::write(&password_file, "gateway-svc-password\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let listener = format!(
        "protocol = \"SASL_SSL\"\nsasl_mechanisms = [\"SCRAM-SHA-512\"]\n[listeners.tls]\ncert = \
         {:?}\nkey = {:?}\nclient_auth = \"none\"\n",
        certs.join("server.pem").display().to_string(),
        certs.join("server-key.pem").display().to_string()
    );
    let password_line = format!("password_file = {:?}", password_file.display().to_string());
    let gw = Gateway::start(
        &upstream.bootstrap(),
        0,
        &gw_data,
        &[
            ("protocol = \"PLAINTEXT\"\n", &listener),
            ("name = \"PLAINTEXT\"", "name = \"SASL_SSL\""),
            // The upstream Palisade keeps `__palisade_audit` read-only to every client, the
            // gateway's service account included: the gateway's trail stays in its file.
            ("topic = true", "topic = false"),
            // Refused logins stay refused, only answered sooner.
            ("failed_login_delay_ms = 500", "failed_login_delay_ms = 50"),
            (
                "# mechanism = \"SCRAM-SHA-512\"",
                "mechanism = \"SCRAM-SHA-512\"",
            ),
            (
                "# username = \"palisade-gateway\"",
                "username = \"gateway-svc\"",
            ),
            (
                "# password_file = \"/etc/palisade/upstream-password\"",
                &password_line,
            ),
        ],
    );
    let ca_path = ca_file.display().to_string();
    let bootstrap = gw.bootstrap();
    let scenario = |args: &[&str], password: &str| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--bootstrap",
            &bootstrap,
            "--username",
            "carol",
            "--password",
            password,
            "--mechanism",
            "SCRAM-SHA-512",
            "--ca",
            &ca_path,
        ]);
        python_scenario(&all)
    };

    // Failed logins in the gateway's audit trail.
    let refusals = || {
        crate::audit_events(&gw_data)
            .iter()
            .filter(|e| e["event_type"] == "authentication" && e["result"] == "failure")
            .count()
    };
    for client in ["confluent", "kafka-python"] {
        // A wrong password: refused at the gateway (its audit trail says so), no metadata.
        let before = refusals();
        let refused = scenario(
            &[
                "login",
                "--client",
                client,
                "--bootstrap-timeout-ms",
                "8000",
            ],
            "not-carols-password",
        );
        assert!(refused.get("brokers").is_none(), "{client}: {refused}");
        wait_for(LIMIT, || (refusals() > before).then_some(()))
            .unwrap_or_else(|| panic!("{client}: the gateway audited no refused login: {refused}"));
        // confluent-kafka reports the refusal to the application. kafka-python only logs it,
        // and under the gateway's per-address login throttle (grown by the attempts before)
        // not always before its bootstrap gives up, so its report is not required.
        if client == "confluent" {
            let errors = strings(&refused["client_errors"]);
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("AUTHENTICATION") || e.contains("Authentication")),
                "{client}: {refused}"
            );
        }

        // The right one: metadata naming the gateway's nodes only...
        let admitted = scenario(&["login", "--client", client], "carol-password");
        let brokers = strings(&admitted["brokers"]);
        assert!(
            !brokers.is_empty() && brokers.iter().all(|a| gw.is_node_port(a)),
            "{client}: {admitted}"
        );
        // ...and carol produces and consumes in a group.
        let topic = unique(&format!("gwc-scram-{client}"));
        let produced = scenario(
            &[
                "produce", "--client", client, "--topic", &topic, "--count", "20",
            ],
            "carol-password",
        );
        assert_eq!(
            strings(&produced["errors"]),
            Vec::<String>::new(),
            "{produced}"
        );
        let group = format!("{topic}-g");
        let consumed = scenario(
            &[
                "consume", "--client", client, "--topic", &topic, "--count", "20", "--group",
                &group,
            ],
            "carol-password",
        );
        let expected: Vec<String> = (0..20).map(|i| format!("{client}-{i}")).collect();
        assert_eq!(strings(&consumed["values"]), expected, "{consumed}");
        assert!(
            strings(&consumed["brokers"])
                .iter()
                .all(|a| gw.is_node_port(a)),
            "{consumed}"
        );

        // The upstream saw the gateway's service account write carol's records.
        let writers = wait_for(LIMIT, || {
            let w = audited_writers(&up_data, &topic);
            (!w.is_empty()).then_some(w)
        });
        assert_eq!(
            writers,
            Some(BTreeSet::from(["User:gateway-svc".to_string()])),
            "{client}"
        );
    }
}

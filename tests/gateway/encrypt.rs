//! field-encrypt in gateway mode, seen from outside: a real Apache Kafka node behind a Palisade
//! gateway that runs the field-encrypt plugin on a topic. Records produced through the gateway
//! reach the cluster with the configured fields as ciphertext (read directly from the cluster
//! and from its log files); through the gateway, a consumer Cedar permits `Decrypt` reads them
//! back as plaintext and one it does not reads exactly the ciphertext the cluster holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::clients::runtime;
use crate::common::gateway_harness::Gateway;
use crate::common::plugins::install;
use crate::common::wait::wait_for;
use crate::common::{self, BackgroundBroker};
use crate::{
    audit_events, create_upstream_topic, scram_users, unique, upstream, upstream_end, Upstream,
    LIMIT,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const MANIFEST: &str = r#"
topics = ["gw-customers-*"]
hooks = ["produce", "fetch"]
keys = ["pii"]
[config]
key = "pii"
fields = ["card", "address.street"]
"#;

/// The values produced through the gateway, and the plaintext of their encrypted fields.
const VALUES: [&str; 2] = [
    r#"{"id":1,"card":"4111-1111-1111-1111","address":{"street":"1 Secret Lane","city":"Oslo"}}"#,
    r#"{"id":2,"card":"5500-0000-0000-0004","name":"Bo"}"#,
];
const SECRETS: [&str; 3] = [
    "4111-1111-1111-1111",
    "5500-0000-0000-0004",
    "1 Secret Lane",
];

/// The gateway's policies: everything allowed, except that bob may not decrypt.
fn policies(dir: &Path) -> PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/allow-all");
    for f in ["allow-all.cedar", "schema.cedarschema"] {
        std::fs::copy(fixture.join(f), policies.join(f)).unwrap();
    }
    std::fs::write(
        policies.join("decrypt.cedar"),
        "@id(\"bob-reads-ciphertext\")\nforbid(principal == Palisade::User::\"bob\", action == Palisade::Action::\"Decrypt\", resource);\n",
    )
    .unwrap();
    policies
}

/// A gateway in front of `upstream` on a SCRAM listener, with field-encrypt on `gw-customers-*`
/// and its config, data, keyring and policies under `dir`.
fn gateway(upstream: &Upstream, dir: &Path) -> BackgroundBroker {
    let data = dir.join("data");
    scram_users(&data, &["alice", "bob"]);
    let keyring = dir.join("keyring.json");
    let mut ring = palisade::plugin::Keyring::default();
    ring.generate("pii").unwrap();
    ring.save(&keyring).unwrap();
    let folder = dir.join("plugins");
    install(&folder, "field-encrypt", "field-encrypt", MANIFEST);
    let folder_line = format!("dir = {:?}", folder.display().to_string());
    let keyring_line = format!("keyring = {:?}", keyring.display().to_string());
    let policy_line = common::policy_dir_line(&policies(dir));
    let allow_all = common::allow_all_policy_dir();
    Gateway::start(
        &upstream.bootstrap(),
        0,
        &data,
        &[
            (
                "protocol = \"PLAINTEXT\"",
                "protocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"SCRAM-SHA-256\"]",
            ),
            ("dir = \"plugins\"", &folder_line),
            ("keyring = \"keyring.json\"", &keyring_line),
            // Host-side AES in a debug build is slow; the deadline is about the plugin.
            ("deadline_ms = 5", "deadline_ms = 200"),
            (&allow_all, &policy_line),
        ],
    )
    .broker
}

/// A librdkafka client of the gateway logged in as `user`.
fn as_user(bootstrap: &str, user: &str) -> ClientConfig {
    common::client_config(
        bootstrap,
        &[
            ("security.protocol", "SASL_PLAINTEXT".to_owned()),
            ("sasl.mechanism", "SCRAM-SHA-256".to_owned()),
            ("sasl.username", user.to_owned()),
            ("sasl.password", format!("{user}-password")),
        ],
    )
}

/// Every value of partition 0 of `topic` read with `config` from offset 0 until `expected`
/// arrived (or the deadline passed: then what arrived); the first error ends the read.
fn read_as(
    mut config: ClientConfig,
    topic: &str,
    expected: usize,
) -> Result<Vec<Vec<u8>>, KafkaError> {
    let consumer: BaseConsumer = config
        .set("group.id", format!("reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + LIMIT;
    while values.len() < expected && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => values.push(m.payload().unwrap_or_default().to_vec()),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(values)
}

/// Every file of partition 0 of `topic` in the node's log folder, concatenated.
fn upstream_log_bytes(node_dir: &Path, topic: &str) -> Vec<u8> {
    let partition = node_dir.join("data").join(format!("{topic}-0"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&partition).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            out.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn field_encrypt_through_the_gateway_leaves_ciphertext_upstream_and_decrypts_only_for_permitted_consumers(
) {
    let up = upstream();
    let _calm = up.calm();
    let dir = tempfile::tempdir().unwrap();
    let upstream = up.bootstrap();
    let topic = unique("gw-customers");
    let topic = topic.as_str();
    create_upstream_topic(&upstream, topic);
    let gw = gateway(&up, &dir.path().join("gateway"));
    let through = gw.bootstrap();

    // alice produces JSON through the gateway; a value that is not a JSON object is refused
    // there and never reaches the cluster.
    let p: FutureProducer = as_user(&through, "alice")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let send = |value: &str| {
        runtime()
            .block_on(p.send(
                FutureRecord::<str, str>::to(topic).key("k").payload(value),
                Duration::from_secs(60),
            ))
            .map(|delivery| delivery.offset)
            .map_err(|(e, _)| e)
    };
    send(VALUES[0]).unwrap();
    let refused = send("4111-1111-1111-1111 not json").unwrap_err();
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InvalidRecord),
        "{refused:?}"
    );
    send(VALUES[1]).unwrap();
    assert_eq!(upstream_end(&upstream, topic), 2);

    // Read directly from the cluster: the configured fields are ciphertext, the others are
    // the producer's bytes, and no plaintext of a field is anywhere in a record or in the
    // cluster's log files.
    let direct = read_as(common::client_config::<&str>(&upstream, &[]), topic, 2).unwrap();
    assert_eq!(direct.len(), 2, "{direct:?}");
    for (stored, sent) in direct.iter().zip(VALUES) {
        let stored_json: serde_json::Value = serde_json::from_slice(stored).unwrap();
        let sent_json: serde_json::Value = serde_json::from_str(sent).unwrap();
        let card = stored_json["card"].as_str().unwrap();
        assert!(card.starts_with("pal:enc:v1:"), "{card}");
        assert_eq!(stored_json["id"], sent_json["id"]);
        for secret in SECRETS {
            assert!(
                !contains(stored, secret.as_bytes()),
                "plaintext `{secret}` upstream: {}",
                String::from_utf8_lossy(stored)
            );
        }
    }
    let first: serde_json::Value = serde_json::from_slice(&direct[0]).unwrap();
    assert!(first["address"]["street"]
        .as_str()
        .unwrap()
        .starts_with("pal:enc:v1:"));
    assert_eq!(first["address"]["city"], "Oslo");
    // The cluster's log files, when they are ours to read.
    if let Upstream::Ours(cluster) = &up {
        let on_disk = upstream_log_bytes(&cluster.node_dir(1), topic);
        assert!(contains(&on_disk, b"pal:enc:v1:") && contains(&on_disk, b"Oslo"));
        for secret in SECRETS.iter().chain(&["not json"]) {
            assert!(
                !contains(&on_disk, secret.as_bytes()),
                "`{secret}` in the cluster's log files"
            );
        }
    }

    // Through the gateway: alice (permitted) reads the values she produced.
    let alice = read_as(as_user(&through, "alice"), topic, 2).unwrap();
    assert_eq!(alice.len(), 2, "{alice:?}");
    for (got, sent) in alice.iter().zip(VALUES) {
        let got: serde_json::Value = serde_json::from_slice(got).unwrap();
        let sent: serde_json::Value = serde_json::from_str(sent).unwrap();
        assert_eq!(got, sent);
    }
    // bob (Decrypt forbidden) reads exactly the ciphertext the cluster holds.
    let bob = read_as(as_user(&through, "bob"), topic, 2).unwrap();
    assert_eq!(bob, direct);

    // The gateway decided each Decrypt (audited as it writes its trail): allowed for alice,
    // denied for bob.
    let data = dir.path().join("gateway/data");
    let decrypts = |events: &[serde_json::Value], who: &str, result: &str| {
        events
            .iter()
            .filter(|e| {
                e["operation"] == "Decrypt"
                    && e["principal"] == format!("User:{who}")
                    && e["result"] == result
                    && e["resource"] == format!("topic:{topic}")
            })
            .count()
    };
    let events = wait_for(LIMIT, || {
        let events = audit_events(&data);
        (decrypts(&events, "alice", "allow") >= 1 && decrypts(&events, "bob", "deny") >= 1)
            .then_some(events)
    })
    .unwrap_or_else(|| panic!("no Decrypt decisions in {:?}", audit_events(&data)));
    assert_eq!(
        decrypts(&events, "alice", "deny") + decrypts(&events, "bob", "allow"),
        0
    );
}

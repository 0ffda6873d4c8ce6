//! Cedar authorization seen by real clients (librdkafka through the `rdkafka` crate) over
//! SASL_SSL with SCRAM-SHA-512, against a copy of the shipped `policies/` folder: alice is in
//! team-orders, bob in team-payments, admin is a super user.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::Mechanism;
use palisade::tls::generate_dev_pki;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const SASL_SSL: usize = 1;

struct Cluster {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl Cluster {
    /// The dev default with a copy of the shipped policies, users alice, bob and admin, and the
    /// topics `orders` (tag orders), `payments` (tag payments) and `vault` (tags orders,
    /// classified).
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let pki = generate_dev_pki(&certs, &[], false).unwrap();
        let policies = dir.path().join("policies");
        common::copy_shipped_policies(&policies);
        let text = common::secure_config_text(
            dir.path(),
            &certs,
            &[(
                common::allow_all_policy_dir().as_str(),
                common::policy_dir_line(&policies).as_str(),
            )],
        );
        let config = Config::parse(&text, Path::new("<authz test>")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt.block_on(Running::start(config)).unwrap();
        for user in ["alice", "bob", "admin"] {
            running
                .broker
                .credentials
                .update(|s| s.add_user(user, &Mechanism::ALL, 4096, user.as_bytes()))
                .unwrap();
        }
        let cluster = Cluster {
            rt,
            running: Some(running),
            dir,
            ca: pki.ca_cert,
        };
        cluster.create_topic("orders", "orders");
        cluster.create_topic("payments", "payments");
        cluster.create_topic("vault", "orders,classified");
        cluster
    }

    fn bootstrap(&self) -> String {
        self.running.as_ref().unwrap().addresses[SASL_SSL].to_string()
    }

    fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    /// Client settings for `user` (password = user name).
    fn config(&self, user: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", user)
            .set("sasl.password", user)
            .set("ssl.ca.location", self.ca.display().to_string())
            .set("socket.timeout.ms", "5000")
            .set("message.timeout.ms", "5000")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        c
    }

    fn create_topic(&self, name: &str, tags: &str) {
        let admin: AdminClient<DefaultClientContext> = self.config("admin").create().unwrap();
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("palisade.tags", tags);
        let results = self
            .rt
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .unwrap();
        assert!(results[0].is_ok(), "{results:?}");
    }

    /// The authorizer's generation number.
    fn generation(&self) -> u64 {
        self.running
            .as_ref()
            .unwrap()
            .broker
            .authorizer
            .generation()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

/// A producer whose delivery results are collected.
struct Delivery(std::sync::Mutex<Vec<Result<(), RDKafkaErrorCode>>>);

impl rdkafka::ClientContext for Delivery {}

impl rdkafka::producer::ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        let r = match result {
            Ok(_) => Ok(()),
            Err((KafkaError::MessageProduction(code), _)) => Err(*code),
            Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        };
        self.0.lock().unwrap().push(r);
    }
}

fn producer(cluster: &Cluster, user: &str) -> BaseProducer<Delivery> {
    cluster
        .config(user)
        .set("enable.idempotence", "false")
        .set("linger.ms", "0")
        .create_with_context(Delivery(std::sync::Mutex::new(Vec::new())))
        .unwrap()
}

/// Sends one record and returns its delivery result.
fn send(p: &BaseProducer<Delivery>, topic: &str) -> Result<(), RDKafkaErrorCode> {
    p.send(BaseRecord::<str, str>::to(topic).payload("x"))
        .map_err(|(e, _)| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail))?;
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        p.poll(Duration::from_millis(20));
        if let Some(r) = p.context().0.lock().unwrap().pop() {
            return r;
        }
        assert!(Instant::now() < until, "no delivery report for {topic}");
    }
}

#[test]
fn a_team_writes_its_topic_and_is_refused_the_other_teams() {
    let cluster = Cluster::start();
    let alice = producer(&cluster, "alice");
    assert_eq!(send(&alice, "orders"), Ok(()));
    assert_eq!(
        send(&alice, "payments"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let bob = producer(&cluster, "bob");
    assert_eq!(send(&bob, "payments"), Ok(()));
    assert_eq!(
        send(&bob, "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // `vault` is tagged orders and classified: over TLS with SCRAM-SHA-512 alice may write
    // it, with SCRAM-SHA-256 the classified forbid refuses her.
    assert_eq!(send(&alice, "vault"), Ok(()));
    let weak: BaseProducer<Delivery> = cluster
        .config("alice")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("enable.idempotence", "false")
        .create_with_context(Delivery(std::sync::Mutex::new(Vec::new())))
        .unwrap();
    assert_eq!(send(&weak, "orders"), Ok(()));
    assert_eq!(
        send(&weak, "vault"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}

#[test]
fn metadata_lists_only_describable_topics_and_hides_existence() {
    let cluster = Cluster::start();
    let c: BaseConsumer = cluster.config("alice").create().unwrap();
    let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let mut names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["orders", "vault"]);
    // Asking by name: an existing topic and a missing one answer alike.
    for topic in ["payments", "no-such-topic"] {
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let t = &md.topics()[0];
        assert_eq!(
            t.error().map(RDKafkaErrorCode::from),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            "{topic}"
        );
        assert!(t.partitions().is_empty(), "{topic}");
    }
    // The operations group describes everything.
    drop(c);
}

#[test]
fn topic_creation_and_auto_creation_are_denied_without_create() {
    let cluster = Cluster::start();
    let admin: AdminClient<DefaultClientContext> = cluster.config("alice").create().unwrap();
    let topic = NewTopic::new("orders-new", 1, TopicReplication::Fixed(1));
    let results = cluster
        .rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap();
    assert_eq!(
        results[0],
        Err((
            "orders-new".to_string(),
            RDKafkaErrorCode::TopicAuthorizationFailed
        ))
    );
    // Nor by producing to it (the dev config auto-creates topics for whoever may create).
    let alice = producer(&cluster, "alice");
    assert_eq!(
        send(&alice, "orders-auto"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let broker = &cluster.running.as_ref().unwrap().broker;
    assert!(broker.logs.topic("orders-new").is_none());
    assert!(broker.logs.topic("orders-auto").is_none());
}

/// Consumes `topic` in `group` as `user`; returns the first error or Ok once a record came.
fn consume_in_group(
    cluster: &Cluster,
    user: &str,
    group: &str,
    topic: &str,
) -> Result<(), RDKafkaErrorCode> {
    let c: BaseConsumer = cluster
        .config(user)
        .set("group.id", group)
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                if code != RDKafkaErrorCode::PartitionEOF {
                    return Err(code);
                }
            }
            None => {}
        }
    }
    panic!("{user} in {group}: neither a record nor an error within 20 s");
}

#[test]
fn consumer_groups_follow_the_group_rules() {
    let cluster = Cluster::start();
    let alice = producer(&cluster, "alice");
    assert_eq!(send(&alice, "orders"), Ok(()));
    assert_eq!(
        consume_in_group(&cluster, "alice", "orders-app", "orders"),
        Ok(())
    );
    assert_eq!(
        consume_in_group(&cluster, "alice", "payments-app", "orders"),
        Err(RDKafkaErrorCode::GroupAuthorizationFailed)
    );
}

#[test]
fn a_policy_edit_reaches_a_connected_client() {
    let cluster = Cluster::start();
    let alice = producer(&cluster, "alice");
    assert_eq!(send(&alice, "orders"), Ok(()));
    let forbid = cluster.policies().join("50-freeze-alice.cedar");
    std::fs::write(
        &forbid,
        "@id(\"freeze-alice\")\nforbid(principal == Palisade::User::\"alice\", action == Palisade::Action::\"Write\", resource);\n",
    )
    .unwrap();
    // The same connection is refused (no reconnect, no new session)...
    let took = common::wait_until(Duration::from_secs(30), || {
        send(&alice, "orders") == Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    })
    .expect("the new policy never took effect");
    eprintln!("the edit took effect after {took:?}");
    // ...and allowed again once the file is gone.
    std::fs::remove_file(&forbid).unwrap();
    let took = common::wait_until(Duration::from_secs(30), || send(&alice, "orders").is_ok())
        .expect("the removal never took effect");
    eprintln!("the removal took effect after {took:?}");
}

#[test]
fn a_broken_policy_file_keeps_the_previous_decisions() {
    let cluster = Cluster::start();
    let alice = producer(&cluster, "alice");
    let generation = cluster.generation();
    std::fs::write(
        cluster.policies().join("60-broken.cedar"),
        "permit(principal, action == Palisade::Action::\"Write\", resource) when { resource.tagz.contains(\"x\") };",
    )
    .unwrap();
    let authorizer = &cluster.running.as_ref().unwrap().broker.authorizer;
    common::wait_until(Duration::from_secs(5), || authorizer.last_error().is_some())
        .expect("the broken file was not noticed");
    assert_eq!(cluster.generation(), generation);
    let diagnostics = authorizer.last_error().unwrap();
    let text = diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("60-broken.cedar:1:"), "{text}");
    assert_eq!(send(&alice, "orders"), Ok(()));
    assert_eq!(
        send(&alice, "payments"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}

#[test]
fn a_forbid_whose_condition_errors_denies_a_real_client() {
    let cluster = Cluster::start();
    let alice = producer(&cluster, "alice");
    assert_eq!(send(&alice, "orders"), Ok(()));
    let generation = cluster.generation();
    // Overflows at evaluation for topics tagged `orders`: plain Cedar would skip this forbid
    // and let the team permit allow the write.
    std::fs::write(
        cluster.policies().join("70-erroring.cedar"),
        "@id(\"erroring-forbid\")\nforbid(principal, action, resource is Palisade::Topic) when { resource.tags.contains(\"orders\") && context.time + 9223372036854775807 > 0 };\n",
    )
    .unwrap();
    common::wait_until(Duration::from_secs(5), || {
        cluster.generation() != generation
    })
    .expect("the new policy file was not loaded");
    assert_eq!(
        send(&alice, "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let bob = producer(&cluster, "bob");
    assert_eq!(
        send(&bob, "payments"),
        Ok(()),
        "other topics are unaffected"
    );
}

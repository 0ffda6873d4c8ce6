//! Kafka's own Java client and command-line tools against Palisade in broker mode: the
//! `kafka-clients` producer and consumer group over SASL_SSL (SCRAM-SHA-512) and over mTLS, and
//! kafka-topics, kafka-acls, kafka-configs (the README's example, word for word) and
//! kafka-consumer-groups, each with the error a principal without permission gets.
//!
//! The broker is the dev default with a copy of the shipped policies: alice is in team-orders,
//! bob in team-payments, olga in operations (describe only), admin a super user; `orders` is
//! tagged `orders`. The Java programs run from the jars `.ci/kafka/fetch.sh` cached.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::kafka_java::{
    mtls_properties, run_java, scram_properties, write_pem_keystore, write_properties, JavaRun,
    ACLS, CONFIGS, CONSUMER_GROUPS, PALISADE_CLIENT, TOPICS,
};
use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::Mechanism;
use palisade::tls::generate_dev_pki;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const PLAINTEXT: usize = 0;
const SASL_SSL: usize = 1;
const SSL: usize = 2;
const USERS: [&str; 4] = ["alice", "bob", "olga", "admin"];

/// A secure Palisade broker on its own runtime, with client settings files for Java.
struct Broker {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let clients: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
        generate_dev_pki(&certs, &clients, false).unwrap();
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
        let config = Config::parse(&text, Path::new("<kafka tools test>")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt.block_on(Running::start(config)).unwrap();
        for user in USERS {
            running
                .broker
                .credentials
                .update(|s| s.add_user(user, &Mechanism::ALL, 4096, password(user).as_bytes()))
                .unwrap();
        }
        let broker = Broker {
            rt,
            running: Some(running),
            dir,
        };
        broker.create_topic("orders", "orders");
        broker
    }

    fn address(&self, listener: usize) -> String {
        self.running.as_ref().unwrap().addresses[listener].to_string()
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn ca(&self) -> PathBuf {
        self.certs().join("ca.pem")
    }

    /// A properties file for `user` over SASL_SSL with SCRAM-SHA-512.
    fn scram(&self, user: &str) -> String {
        self.scram_with_password(user, &password(user))
    }

    fn scram_with_password(&self, user: &str, password: &str) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{user}-{password}-scram.properties"));
        let entries = scram_properties(&self.address(SASL_SSL), user, password, &self.ca());
        write_properties(&path, &entries).display().to_string()
    }

    /// A properties file for `user`'s client certificate over SSL.
    fn mtls(&self, user: &str) -> String {
        let keystore = write_pem_keystore(
            &self.dir.path().join(format!("{user}-keystore.pem")),
            &self.certs().join(format!("{user}-key.pem")),
            &self.certs().join(format!("{user}.pem")),
        );
        let path = self.dir.path().join(format!("{user}-mtls.properties"));
        let entries = mtls_properties(&self.address(SSL), &keystore, &self.ca());
        write_properties(&path, &entries).display().to_string()
    }

    /// A tool as `user` over SASL_SSL: `--bootstrap-server` and `--command-config` added.
    fn tool(&self, main: &str, user: &str, args: &[&str]) -> JavaRun {
        let config = self.scram(user);
        let bootstrap = self.address(SASL_SSL);
        let mut all = vec![
            "--bootstrap-server",
            &bootstrap,
            "--command-config",
            &config,
        ];
        all.extend_from_slice(args);
        run_java(main, &all)
    }

    /// librdkafka as admin over SASL_SSL (a super user), to look at what the broker has.
    fn admin_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.address(SASL_SSL))
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", "admin")
            .set("sasl.password", password("admin"))
            .set("ssl.ca.location", self.ca().display().to_string());
        c
    }

    fn create_topic(&self, name: &str, tags: &str) {
        let admin: AdminClient<DefaultClientContext> = self.admin_config().create().unwrap();
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("palisade.tags", tags);
        let results = self
            .rt
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .unwrap();
        assert!(results[0].is_ok(), "{results:?}");
    }

    /// The topics the broker lists to a super user.
    fn topics(&self) -> Vec<String> {
        let c: BaseConsumer = self.admin_config().create().unwrap();
        let metadata = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
        metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    /// The values stored in partition 0 of `topic`, read as admin until `count` arrived.
    fn values(&self, topic: &str, count: usize) -> Vec<String> {
        let c: BaseConsumer = self
            .admin_config()
            .set("group.id", "admin-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let mut values = Vec::new();
        common::wait::wait_until(Duration::from_secs(60), || {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                values.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
            }
            values.len() >= count
        });
        values
    }

    /// The offset `group` committed for partition 0 of `topic`.
    fn committed(&self, group: &str, topic: &str) -> Offset {
        let c: BaseConsumer = self.admin_config().set("group.id", group).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, 0);
        let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        committed.find_partition(topic, 0).unwrap().offset()
    }

    fn acl_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("policies/kafka-acls.cedar"))
            .unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

fn password(user: &str) -> String {
    format!("{user}-secret-password")
}

fn expected_values(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("v{i}")).collect()
}

#[test]
fn java_client_produces_and_consumes_in_a_group_over_scram() {
    let b = Broker::start();
    let run = run_java(
        PALISADE_CLIENT,
        &[&b.scram("alice"), "orders", "orders-java", "200"],
    );
    assert!(run.success(), "{run:?}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["produced 200", "consumed 200"]
    );
    assert_eq!(b.values("orders", 200), expected_values(200));
    assert_eq!(b.committed("orders-java", "orders"), Offset::Offset(200));

    // bob (team-payments) may not write a topic tagged orders: the client sees the denial and
    // nothing more is stored.
    let denied = run_java(
        PALISADE_CLIENT,
        &[&b.scram("bob"), "orders", "payments-java", "5"],
    );
    assert_eq!(denied.code, Some(3), "{denied:?}");
    assert!(
        denied.stdout.starts_with(
            "produce failed: org.apache.kafka.common.errors.TopicAuthorizationException"
        ),
        "{denied:?}"
    );
    // A wrong password does not log in.
    let wrong = run_java(
        PALISADE_CLIENT,
        &[
            &b.scram_with_password("alice", "not-her-password"),
            "orders",
            "orders-x",
            "5",
        ],
    );
    assert_eq!(wrong.code, Some(3), "{wrong:?}");
    assert!(
        wrong.stdout.contains("SaslAuthenticationException"),
        "{wrong:?}"
    );
    assert_eq!(b.values("orders", 201), expected_values(200));
}

#[test]
fn java_client_produces_and_consumes_in_a_group_over_mtls() {
    let b = Broker::start();
    let run = run_java(
        PALISADE_CLIENT,
        &[&b.mtls("alice"), "orders", "orders-java-tls", "100"],
    );
    assert!(run.success(), "{run:?}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["produced 100", "consumed 100"]
    );
    assert_eq!(b.values("orders", 100), expected_values(100));
    assert_eq!(
        b.committed("orders-java-tls", "orders"),
        Offset::Offset(100)
    );

    // A certificate from another CA is refused at the handshake.
    let other = b.dir.path().join("other-ca");
    generate_dev_pki(&other, &["alice".to_string()], false).unwrap();
    let keystore = write_pem_keystore(
        &b.dir.path().join("stranger-keystore.pem"),
        &other.join("alice-key.pem"),
        &other.join("alice.pem"),
    );
    let stranger = write_properties(
        &b.dir.path().join("stranger.properties"),
        &mtls_properties(&b.address(SSL), &keystore, &b.ca()),
    );
    let refused = run_java(
        PALISADE_CLIENT,
        &[&stranger.display().to_string(), "orders", "orders-x", "5"],
    );
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        refused.stdout.contains("SslAuthenticationException"),
        "{refused:?}"
    );
    assert_eq!(b.values("orders", 101), expected_values(100));
}

#[test]
fn kafka_topics_creates_describes_and_deletes() {
    let b = Broker::start();
    let created = b.tool(
        TOPICS,
        "admin",
        &[
            "--create",
            "--topic",
            "tools-made",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
        ],
    );
    assert!(created.success(), "{created:?}");
    assert!(
        created.stdout.contains("Created topic tools-made."),
        "{created:?}"
    );
    assert!(b.topics().contains(&"tools-made".to_string()));

    let described = b.tool(TOPICS, "admin", &["--describe", "--topic", "tools-made"]);
    assert!(described.success(), "{described:?}");
    assert!(
        described.stdout.contains("PartitionCount: 3"),
        "{described:?}"
    );
    assert_eq!(
        described.stdout.matches("\tPartition: ").count(),
        3,
        "{described:?}"
    );

    // alice may not describe it, so she cannot learn that it exists; she may describe `orders`
    // but not delete it (no Delete for her team): the tool reports the authorization error
    // and both topics stay.
    let hidden = b.tool(TOPICS, "alice", &["--delete", "--topic", "tools-made"]);
    assert!(!hidden.success(), "{hidden:?}");
    assert!(
        hidden
            .output()
            .contains("Topic 'tools-made' does not exist"),
        "{hidden:?}"
    );
    let denied = b.tool(TOPICS, "alice", &["--delete", "--topic", "orders"]);
    assert!(!denied.success(), "{denied:?}");
    assert!(
        denied.output().contains("TopicAuthorizationException"),
        "{denied:?}"
    );
    let topics = b.topics();
    assert!(topics.contains(&"tools-made".to_string()) && topics.contains(&"orders".to_string()));

    let deleted = b.tool(TOPICS, "admin", &["--delete", "--topic", "tools-made"]);
    assert!(deleted.success(), "{deleted:?}");
    assert!(common::wait::wait_until(Duration::from_secs(30), || {
        !b.topics().contains(&"tools-made".to_string())
    })
    .is_some());
}

#[test]
fn kafka_acls_adds_lists_and_removes_an_acl() {
    let b = Broker::start();
    let acl = [
        "--allow-principal",
        "User:dave",
        "--operation",
        "Write",
        "--topic",
        "orders",
    ];
    let added = b.tool(ACLS, "admin", &[&["--add"][..], &acl].concat());
    assert!(added.success(), "{added:?}");
    assert!(
        added
            .stdout
            .contains("(principal=User:dave, host=*, operation=WRITE, permissionType=ALLOW)"),
        "{added:?}"
    );
    assert!(
        b.acl_file()
            .contains("principal == Palisade::User::\"dave\""),
        "{}",
        b.acl_file()
    );

    let listed = b.tool(ACLS, "admin", &["--list", "--topic", "orders"]);
    assert!(listed.success(), "{listed:?}");
    assert!(listed.stdout.contains("principal=User:dave"), "{listed:?}");

    // olga (operations) may describe the cluster but not alter it: the create is refused and
    // the policy folder is unchanged.
    let before = b.acl_file();
    let denied = b.tool(
        ACLS,
        "olga",
        &[
            "--add",
            "--allow-principal",
            "User:eve",
            "--operation",
            "Read",
            "--topic",
            "orders",
        ],
    );
    assert!(!denied.success(), "{denied:?}");
    assert!(
        denied
            .output()
            .contains("ClusterAuthorizationException: not authorized to create ACLs"),
        "{denied:?}"
    );
    assert_eq!(b.acl_file(), before);

    let removed = b.tool(
        ACLS,
        "admin",
        &[&["--remove", "--force"][..], &acl].concat(),
    );
    assert!(removed.success(), "{removed:?}");
    assert!(!b.acl_file().contains("User::\"dave\""), "{}", b.acl_file());
    let listed = b.tool(ACLS, "admin", &["--list", "--topic", "orders"]);
    assert!(listed.success(), "{listed:?}");
    assert!(!listed.stdout.contains("User:dave"), "{listed:?}");
}

/// The README's `kafka-configs.sh` example, as written there (continuation lines joined).
fn readme_kafka_configs_args() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("kafka-configs.sh --bootstrap-server")
        .expect("README shows kafka-configs.sh");
    let mut command = String::new();
    for line in readme[start..].lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(continued) => command.push_str(continued),
            None => {
                command.push_str(line);
                break;
            }
        }
    }
    let words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    assert_eq!(words[0], "kafka-configs.sh");
    words[1..].to_vec()
}

#[test]
fn readme_kafka_configs_example_sets_default_user_quotas() {
    let b = Broker::start();
    // The README runs it against the dev default's PLAINTEXT port from 127.0.0.1.
    let args: Vec<String> = readme_kafka_configs_args()
        .into_iter()
        .map(|a| a.replace("127.0.0.1:9092", &b.address(PLAINTEXT)))
        .collect();
    assert!(
        args.contains(&b.address(PLAINTEXT)),
        "README example names 127.0.0.1:9092: {args:?}"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let altered = run_java(CONFIGS, &args);
    assert!(altered.success(), "{altered:?}");
    assert!(
        altered
            .stdout
            .contains("Completed updating default config for users in the cluster."),
        "{altered:?}"
    );
    let describe = [
        "--bootstrap-server",
        &b.address(PLAINTEXT),
        "--describe",
        "--entity-type",
        "users",
        "--entity-default",
    ];
    let described = run_java(CONFIGS, &describe);
    assert!(described.success(), "{described:?}");
    assert!(
        described.stdout.contains(
            "Quota configs for the default user-principal are consumer_byte_rate=1.048576E7, producer_byte_rate=1048576.0"
        ),
        "{described:?}"
    );

    // alice over SASL_SSL may not change quotas; they stay as they were.
    let denied = b.tool(
        CONFIGS,
        "alice",
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-default",
            "--add-config",
            "producer_byte_rate=1",
        ],
    );
    assert!(!denied.success(), "{denied:?}");
    assert!(
        denied.output().contains("ClusterAuthorizationException"),
        "{denied:?}"
    );
    assert_eq!(run_java(CONFIGS, &describe).stdout, described.stdout);
}

#[test]
fn kafka_consumer_groups_describes_a_group() {
    let b = Broker::start();
    let run = run_java(
        PALISADE_CLIENT,
        &[&b.scram("alice"), "orders", "orders-tools", "50"],
    );
    assert!(run.success(), "{run:?}");

    let described = b.tool(
        CONSUMER_GROUPS,
        "admin",
        &["--describe", "--group", "orders-tools"],
    );
    assert!(described.success(), "{described:?}");
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    let row: Vec<&str> = described
        .stdout
        .lines()
        .find(|l| l.starts_with("orders-tools "))
        .unwrap_or_else(|| panic!("no row for the group: {described:?}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..6],
        ["orders-tools", "orders", "0", "50", "50", "0"],
        "{described:?}"
    );

    // bob may not describe a group of team-orders.
    let denied = b.tool(
        CONSUMER_GROUPS,
        "bob",
        &["--describe", "--group", "orders-tools"],
    );
    assert!(
        denied.output().contains("GroupAuthorizationException"),
        "{denied:?}"
    );
    assert!(!denied.stdout.contains("orders-tools "), "{denied:?}");
}

/// Topic tags with Kafka's own tools, as policies/README.md says: `kafka-configs` sets a
/// bracketed list as one `palisade.tags` value; `kafka-topics --create --config
/// palisade.tags=...` is refused by the tool before anything is sent; a principal without
/// AlterConfigs on the topic cannot retag it.
#[test]
fn kafka_configs_retags_a_topic_and_kafka_topics_refuses_the_key() {
    let b = Broker::start();
    b.create_topic("scratch", "scratch");
    let tags = |b: &Broker| -> Vec<String> {
        let running = b.running.as_ref().unwrap();
        running
            .broker
            .logs
            .topic("scratch")
            .unwrap()
            .tags()
            .to_vec()
    };
    let retag = |user: &str| {
        b.tool(
            CONFIGS,
            user,
            &[
                "--alter",
                "--entity-type",
                "topics",
                "--entity-name",
                "scratch",
                "--add-config",
                "palisade.tags=[pii,payments]",
            ],
        )
    };
    let denied = retag("bob");
    assert!(!denied.success(), "{denied:?}");
    assert!(
        denied.output().contains("TopicAuthorizationException"),
        "{denied:?}"
    );
    assert_eq!(tags(&b), ["scratch"]);
    let altered = retag("admin");
    assert!(altered.success(), "{altered:?}");
    assert_eq!(tags(&b), ["pii", "payments"]);

    let refused = b.tool(
        TOPICS,
        "admin",
        &[
            "--create",
            "--topic",
            "tagged-by-tool",
            "--partitions",
            "1",
            "--config",
            "palisade.tags=pii",
        ],
    );
    assert!(!refused.success(), "{refused:?}");
    assert!(
        refused.output().contains("palisade.tags"),
        "the tool names the key it refuses: {refused:?}"
    );
    assert!(!b.topics().contains(&"tagged-by-tool".to_string()));
}

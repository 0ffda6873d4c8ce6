//! Kafka's own Java client and command-line tools against Palisade, in both of its modes: the
//! `kafka-clients` producer and consumer group over SASL_SSL (SCRAM-SHA-512) and over mTLS, and
//! kafka-topics, kafka-acls, kafka-configs (the README's example, word for word) and
//! kafka-consumer-groups, each with the error a principal without permission gets.
//!
//! Every scenario is one function run twice: `SCENARIO::broker` against Palisade keeping the
//! data itself, `SCENARIO::gateway` against Palisade in gateway mode in front of a real Apache
//! Kafka node (KRaft, started once for this binary). In gateway mode the scenario also looks at
//! the upstream itself, bypassing the gateway (librdkafka, or Kafka's tools pointed at it):
//! topics, records and consumer groups are the upstream's; ACLs, SCRAM credentials, quotas and
//! topic tags are the gateway's and never reach the upstream.
//!
//! Palisade runs the dev default with a copy of the shipped policies: alice is in team-orders,
//! bob in team-payments, olga in operations (describe only), admin a super user; the scenario's
//! `orders` topic is tagged `orders`. The Java programs run from the jars `.ci/kafka/fetch.sh`
//! cached.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use common::kafka_cluster::KafkaCluster;
use common::kafka_java::{
    mtls_properties, run_java, scram_properties, write_pem_keystore, write_properties, JavaRun,
    ACLS, CONFIGS, CONSUMER_GROUPS, PALISADE_CLIENT, TOPICS,
};
use palisade::broker::Running;
use palisade::config::Config;
use palisade::sasl::Mechanism;
use palisade::tls::generate_dev_pki;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const PLAINTEXT: usize = 0;
const SASL_SSL: usize = 1;
const SSL: usize = 2;
const USERS: [&str; 4] = ["alice", "bob", "olga", "admin"];
/// How long the upstream may take to show a change (a busy two-core machine).
const LIMIT: Duration = Duration::from_secs(60);

/// Where Palisade keeps the data: its own log, or the upstream cluster it is a gateway for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Broker,
    Gateway,
}

/// Runs a scenario as two tests, `NAME::broker` and `NAME::gateway`.
macro_rules! in_both_modes {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn broker() {
                super::$scenario(super::Mode::Broker);
            }

            #[test]
            fn gateway() {
                super::$scenario(super::Mode::Gateway);
            }
        }
    };
}

/// The one-node Kafka cluster behind every gateway of this binary, started on first use; its
/// node dies with the test process.
fn cluster() -> &'static KafkaCluster {
    static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("kafka-cluster")
            .join("kafka_tools");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        KafkaCluster::start(&dir, 1)
    })
}

/// A port base `B` for a gateway in front of the one-node cluster: node 1 is served on
/// `B + 100·k` for listener `k`, so `B`, `B + 100` and `B + 200` must be free. Below Linux's
/// ephemeral range (no client connection takes them meanwhile), a different base per call.
fn node_port_base() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..500 {
        let call = NEXT.fetch_add(1, Ordering::Relaxed);
        let slot = (std::process::id().wrapping_mul(7) + call * 13) % 9000;
        let base = 22_000 + u16::try_from(slot).unwrap();
        let held: Vec<TcpListener> = [base, base + 100, base + 200]
            .into_iter()
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == 3 {
            return base;
        }
    }
    panic!("no free gateway node ports");
}

/// The `[gateway]` lines of a gateway in front of `cluster` (node ids from 1, as the cluster
/// helper numbers them).
fn gateway_settings(cluster: &KafkaCluster) -> [(&'static str, String); 3] {
    [
        (
            "# bootstrap_servers = [\"kafka-1.internal:9093\", \"kafka-2.internal:9093\"]",
            format!("bootstrap_servers = [{:?}]", cluster.bootstrap()),
        ),
        (
            "port_base = 19092",
            format!("port_base = {}", node_port_base()),
        ),
        ("node_id_base = 0", "node_id_base = 1".to_string()),
    ]
}

/// A secure Palisade (broker or gateway) on its own runtime, with client settings files for
/// Java.
struct Palisade {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    dir: tempfile::TempDir,
    /// Gateway mode: the cluster behind it.
    upstream: Option<&'static KafkaCluster>,
    /// Appended to the scenario's topic and group names: the gateway scenarios share one
    /// upstream, and each must find it free of the others' topics and groups.
    suffix: String,
}

impl Palisade {
    fn start(mode: Mode) -> Palisade {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let clients: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
        generate_dev_pki(&certs, &clients, false).unwrap();
        let policies = dir.path().join("policies");
        common::copy_shipped_policies(&policies);
        let (allow_all, policy_line) = (
            common::allow_all_policy_dir(),
            common::policy_dir_line(&policies),
        );
        let upstream = match mode {
            Mode::Broker => None,
            Mode::Gateway => Some(cluster()),
        };
        let gateway = upstream.map(gateway_settings);
        let mut extra = vec![(allow_all.as_str(), policy_line.as_str())];
        for (from, to) in gateway.iter().flatten() {
            extra.push((from, to.as_str()));
        }
        let text = common::secure_config_text(dir.path(), &certs, &extra);
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
        static SCENARIOS: AtomicU32 = AtomicU32::new(0);
        let suffix = match mode {
            Mode::Broker => String::new(),
            Mode::Gateway => format!("-{}", SCENARIOS.fetch_add(1, Ordering::Relaxed)),
        };
        let palisade = Palisade {
            rt,
            running: Some(running),
            dir,
            upstream,
            suffix,
        };
        palisade.create_topic(&palisade.name("orders"), "orders");
        palisade
    }

    /// `base` as this scenario names it (unique on the shared upstream).
    fn name(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
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

    /// Gateway mode: a tool pointed at the upstream itself, past the gateway.
    fn upstream_tool(&self, main: &str, args: &[&str]) -> JavaRun {
        let bootstrap = self.upstream.unwrap().bootstrap();
        run_java(
            main,
            &[&["--bootstrap-server", &bootstrap][..], args].concat(),
        )
    }

    /// librdkafka as `user` over SASL_SSL.
    fn client_config(&self, user: &str, password: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.address(SASL_SSL))
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", user)
            .set("sasl.password", password)
            .set("ssl.ca.location", self.ca().display().to_string());
        c
    }

    /// librdkafka as admin (a super user) through Palisade.
    fn admin_config(&self) -> ClientConfig {
        self.client_config("admin", &password("admin"))
    }

    /// librdkafka where the data is kept: Palisade itself as admin in broker mode, the
    /// upstream directly in gateway mode.
    fn store_config(&self) -> ClientConfig {
        match self.upstream {
            Some(cluster) => {
                let mut c = ClientConfig::new();
                c.set("bootstrap.servers", cluster.bootstrap());
                c
            }
            None => self.admin_config(),
        }
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

    /// The topics where the data is kept (see [`Self::store_config`]).
    fn topics(&self) -> Vec<String> {
        let c: BaseConsumer = self.store_config().create().unwrap();
        let metadata = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
        metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    /// The values stored in partition 0 of `topic` where the data is kept, up to its high
    /// watermark.
    fn values(&self, topic: &str) -> Vec<String> {
        let c: BaseConsumer = self
            .store_config()
            .set("group.id", "admin-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let (_, end) = c
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let mut values = Vec::new();
        let mut next = 0;
        common::wait::wait_until(LIMIT, || {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                next = m.offset() + 1;
                values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
            next >= end
        });
        values
    }

    /// The offset `group` committed for partition 0 of `topic`, asked where the data is kept
    /// (in gateway mode, the upstream's group coordinator).
    fn committed(&self, group: &str, topic: &str) -> Offset {
        let c: BaseConsumer = self.store_config().set("group.id", group).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, 0);
        let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        committed.find_partition(topic, 0).unwrap().offset()
    }

    /// The configs DescribeConfigs answers for `topic` to the client `config` makes.
    fn topic_configs(&self, config: &ClientConfig, topic: &str) -> HashMap<String, Option<String>> {
        let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
        let results = self
            .rt
            .block_on(
                admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()),
            )
            .unwrap();
        let resource = results[0].as_ref().unwrap();
        resource
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    }

    /// `topic`'s `palisade.tags` as DescribeConfigs through Palisade shows it to admin.
    fn tags(&self, topic: &str) -> Option<String> {
        self.topic_configs(&self.admin_config(), topic)
            .remove("palisade.tags")
            .flatten()
    }

    fn acl_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("policies/kafka-acls.cedar"))
            .unwrap_or_default()
    }
}

impl Drop for Palisade {
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

in_both_modes!(java_client_produces_and_consumes_in_a_group_over_scram);
fn java_client_produces_and_consumes_in_a_group_over_scram(mode: Mode) {
    let p = Palisade::start(mode);
    let (orders, group) = (p.name("orders"), p.name("orders-java"));
    let run = run_java(
        PALISADE_CLIENT,
        &[&p.scram("alice"), &orders, &group, "200"],
    );
    assert!(run.success(), "{run:?}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["produced 200", "consumed 200"]
    );
    // Stored where the mode keeps data (gateway: read on the upstream, past the gateway), and
    // the group's offset committed there.
    assert_eq!(p.values(&orders), expected_values(200));
    assert_eq!(p.committed(&group, &orders), Offset::Offset(200));

    // bob (team-payments) may not write a topic tagged orders: the client sees the denial and
    // nothing more is stored.
    let denied = run_java(
        PALISADE_CLIENT,
        &[&p.scram("bob"), &orders, &p.name("payments-java"), "5"],
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
            &p.scram_with_password("alice", "not-her-password"),
            &orders,
            &p.name("orders-x"),
            "5",
        ],
    );
    assert_eq!(wrong.code, Some(3), "{wrong:?}");
    assert!(
        wrong.stdout.contains("SaslAuthenticationException"),
        "{wrong:?}"
    );
    assert_eq!(p.values(&orders), expected_values(200));
}

in_both_modes!(java_client_produces_and_consumes_in_a_group_over_mtls);
fn java_client_produces_and_consumes_in_a_group_over_mtls(mode: Mode) {
    let p = Palisade::start(mode);
    let (orders, group) = (p.name("orders"), p.name("orders-java-tls"));
    let run = run_java(PALISADE_CLIENT, &[&p.mtls("alice"), &orders, &group, "100"]);
    assert!(run.success(), "{run:?}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["produced 100", "consumed 100"]
    );
    assert_eq!(p.values(&orders), expected_values(100));
    assert_eq!(p.committed(&group, &orders), Offset::Offset(100));

    // A certificate from another CA is refused at the handshake.
    let other = p.dir.path().join("other-ca");
    generate_dev_pki(&other, &["alice".to_string()], false).unwrap();
    let keystore = write_pem_keystore(
        &p.dir.path().join("stranger-keystore.pem"),
        &other.join("alice-key.pem"),
        &other.join("alice.pem"),
    );
    let stranger = write_properties(
        &p.dir.path().join("stranger.properties"),
        &mtls_properties(&p.address(SSL), &keystore, &p.ca()),
    );
    let refused = run_java(
        PALISADE_CLIENT,
        &[
            &stranger.display().to_string(),
            &orders,
            &p.name("orders-x"),
            "5",
        ],
    );
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        refused.stdout.contains("SslAuthenticationException"),
        "{refused:?}"
    );
    assert_eq!(p.values(&orders), expected_values(100));
}

in_both_modes!(kafka_topics_creates_describes_and_deletes);
fn kafka_topics_creates_describes_and_deletes(mode: Mode) {
    let p = Palisade::start(mode);
    let (made, orders) = (p.name("tools-made"), p.name("orders"));
    let created = p.tool(
        TOPICS,
        "admin",
        &[
            "--create",
            "--topic",
            &made,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
        ],
    );
    assert!(created.success(), "{created:?}");
    assert!(
        created.stdout.contains(&format!("Created topic {made}.")),
        "{created:?}"
    );
    // Gateway mode: the upstream has it (its metadata follows the controller shortly).
    assert!(common::wait::wait_until(LIMIT, || p.topics().contains(&made)).is_some());

    let described = p.tool(TOPICS, "admin", &["--describe", "--topic", &made]);
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

    // alice's team may not create topics: refused, and (gateway mode) never created upstream.
    let unmade = p.name("tools-refused");
    let refused = p.tool(
        TOPICS,
        "alice",
        &["--create", "--topic", &unmade, "--partitions", "1"],
    );
    assert!(!refused.success(), "{refused:?}");
    assert!(
        refused.output().contains("TopicAuthorizationException"),
        "{refused:?}"
    );
    assert!(!p.topics().contains(&unmade));

    // alice may not describe `made`, so she cannot learn that it exists; she may describe
    // `orders` but not delete it (no Delete for her team): the tool reports the
    // authorization error and both topics stay.
    let hidden = p.tool(TOPICS, "alice", &["--delete", "--topic", &made]);
    assert!(!hidden.success(), "{hidden:?}");
    assert!(
        hidden
            .output()
            .contains(&format!("Topic '{made}' does not exist")),
        "{hidden:?}"
    );
    let denied = p.tool(TOPICS, "alice", &["--delete", "--topic", &orders]);
    assert!(!denied.success(), "{denied:?}");
    assert!(
        denied.output().contains("TopicAuthorizationException"),
        "{denied:?}"
    );
    let topics = p.topics();
    assert!(topics.contains(&made) && topics.contains(&orders));

    let deleted = p.tool(TOPICS, "admin", &["--delete", "--topic", &made]);
    assert!(deleted.success(), "{deleted:?}");
    assert!(common::wait::wait_until(LIMIT, || !p.topics().contains(&made)).is_some());
}

in_both_modes!(kafka_acls_adds_lists_and_removes_an_acl);
fn kafka_acls_adds_lists_and_removes_an_acl(mode: Mode) {
    let p = Palisade::start(mode);
    let orders = p.name("orders");
    let acl = [
        "--allow-principal",
        "User:dave",
        "--operation",
        "Write",
        "--topic",
        &orders,
    ];
    let added = p.tool(ACLS, "admin", &[&["--add"][..], &acl].concat());
    assert!(added.success(), "{added:?}");
    assert!(
        added
            .stdout
            .contains("(principal=User:dave, host=*, operation=WRITE, permissionType=ALLOW)"),
        "{added:?}"
    );
    assert!(
        p.acl_file()
            .contains("principal == Palisade::User::\"dave\""),
        "{}",
        p.acl_file()
    );

    let listed = p.tool(ACLS, "admin", &["--list", "--topic", &orders]);
    assert!(listed.success(), "{listed:?}");
    assert!(listed.stdout.contains("principal=User:dave"), "{listed:?}");
    if mode == Mode::Gateway {
        // The gateway answered both itself: the upstream has no authorizer, so it refuses
        // every ACL request (a forwarded one would have failed the same way).
        let upstream = p.upstream_tool(ACLS, &["--list", "--topic", &orders]);
        assert!(!upstream.success(), "{upstream:?}");
        assert!(
            upstream.output().contains("SecurityDisabledException"),
            "{upstream:?}"
        );
        assert!(!upstream.output().contains("User:dave"), "{upstream:?}");
    }

    // olga (operations) may describe the cluster but not alter it: the create is refused and
    // the policy folder is unchanged.
    let before = p.acl_file();
    let denied = p.tool(
        ACLS,
        "olga",
        &[
            "--add",
            "--allow-principal",
            "User:eve",
            "--operation",
            "Read",
            "--topic",
            &orders,
        ],
    );
    assert!(!denied.success(), "{denied:?}");
    assert!(
        denied
            .output()
            .contains("ClusterAuthorizationException: not authorized to create ACLs"),
        "{denied:?}"
    );
    assert_eq!(p.acl_file(), before);

    let removed = p.tool(
        ACLS,
        "admin",
        &[&["--remove", "--force"][..], &acl].concat(),
    );
    assert!(removed.success(), "{removed:?}");
    assert!(!p.acl_file().contains("User::\"dave\""), "{}", p.acl_file());
    let listed = p.tool(ACLS, "admin", &["--list", "--topic", &orders]);
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

in_both_modes!(readme_kafka_configs_example_sets_default_user_quotas);
/// The README's example, then a SCRAM credential added with the same tool: both are kept by
/// Palisade (in gateway mode never sent upstream), and the new user logs in.
fn readme_kafka_configs_example_sets_default_user_quotas(mode: Mode) {
    let p = Palisade::start(mode);
    // The README runs it against the dev default's PLAINTEXT port from 127.0.0.1.
    let args: Vec<String> = readme_kafka_configs_args()
        .into_iter()
        .map(|a| a.replace("127.0.0.1:9092", &p.address(PLAINTEXT)))
        .collect();
    assert!(
        args.contains(&p.address(PLAINTEXT)),
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
    let plaintext = p.address(PLAINTEXT);
    let describe = [
        "--bootstrap-server",
        &plaintext,
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

    // A SCRAM credential for a new user, with the same tool: carol logs in with it.
    let scram = format!(
        "SCRAM-SHA-512=[iterations=4096,password={}]",
        password("carol")
    );
    let added = run_java(
        CONFIGS,
        &[
            "--bootstrap-server",
            &plaintext,
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
            "--add-config",
            &scram,
        ],
    );
    assert!(added.success(), "{added:?}");
    let carol: BaseConsumer = p
        .client_config("carol", &password("carol"))
        .create()
        .unwrap();
    let metadata = carol.fetch_metadata(None, Duration::from_secs(30));
    assert!(metadata.is_ok(), "carol logs in: {:?}", metadata.err());

    if mode == Mode::Gateway {
        // The upstream has neither the quota nor carol's credential: the gateway answered.
        let upstream = p.upstream_tool(CONFIGS, &["--describe", "--entity-type", "users"]);
        assert!(upstream.success(), "{upstream:?}");
        assert!(
            !upstream.stdout.contains("byte_rate") && !upstream.stdout.contains("carol"),
            "{upstream:?}"
        );
    }

    // alice over SASL_SSL may not change quotas; they stay as they were.
    let denied = p.tool(
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

in_both_modes!(kafka_consumer_groups_describes_a_group);
fn kafka_consumer_groups_describes_a_group(mode: Mode) {
    let p = Palisade::start(mode);
    let (orders, group) = (p.name("orders"), p.name("orders-tools"));
    let run = run_java(PALISADE_CLIENT, &[&p.scram("alice"), &orders, &group, "50"]);
    assert!(run.success(), "{run:?}");

    let described = p.tool(CONSUMER_GROUPS, "admin", &["--describe", "--group", &group]);
    assert!(described.success(), "{described:?}");
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    let row: Vec<&str> = described
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{group} ")))
        .unwrap_or_else(|| panic!("no row for the group: {described:?}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..6],
        [group.as_str(), orders.as_str(), "0", "50", "50", "0"],
        "{described:?}"
    );
    // The group is where the data is kept: in gateway mode the upstream's own coordinator
    // holds that offset.
    assert_eq!(p.committed(&group, &orders), Offset::Offset(50));

    // bob may not describe a group of team-orders.
    let denied = p.tool(CONSUMER_GROUPS, "bob", &["--describe", "--group", &group]);
    assert!(
        denied.output().contains("GroupAuthorizationException"),
        "{denied:?}"
    );
    assert!(!denied.stdout.contains(&format!("{group} ")), "{denied:?}");
}

in_both_modes!(kafka_configs_retags_a_topic_and_kafka_topics_refuses_the_key);
/// Topic tags with Kafka's own tools, as policies/README.md says: `kafka-configs` sets a
/// bracketed list as one `palisade.tags` value; `kafka-topics --create --config
/// palisade.tags=...` is refused by the tool before anything is sent; a principal without
/// AlterConfigs on the topic cannot retag it. In gateway mode the tags stay with the gateway:
/// the upstream's configs of the topic never hold the key.
fn kafka_configs_retags_a_topic_and_kafka_topics_refuses_the_key(mode: Mode) {
    let p = Palisade::start(mode);
    let scratch = p.name("scratch");
    p.create_topic(&scratch, "scratch");
    let retag = |user: &str| {
        p.tool(
            CONFIGS,
            user,
            &[
                "--alter",
                "--entity-type",
                "topics",
                "--entity-name",
                &scratch,
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
    assert_eq!(p.tags(&scratch).as_deref(), Some("scratch"));
    let altered = retag("admin");
    assert!(altered.success(), "{altered:?}");
    assert_eq!(p.tags(&scratch).as_deref(), Some("pii,payments"));
    if let Some(cluster) = p.upstream {
        let mut direct = ClientConfig::new();
        direct.set("bootstrap.servers", cluster.bootstrap());
        let upstream = p.topic_configs(&direct, &scratch);
        assert!(upstream.contains_key("retention.ms"), "{upstream:?}");
        assert!(!upstream.contains_key("palisade.tags"), "{upstream:?}");
    }

    let unmade = p.name("tagged-by-tool");
    let refused = p.tool(
        TOPICS,
        "admin",
        &[
            "--create",
            "--topic",
            &unmade,
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
    assert!(!p.topics().contains(&unmade));
}

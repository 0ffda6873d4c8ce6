//! Topic tags are kept in front of the backend: CreateTopics and IncrementalAlterConfigs reach
//! the backend without `palisade.tags` (a recording backend sees every request), the tags land
//! in the broker's tag store (broker mode: the topic config; gateway mode: its own file), and
//! DescribeConfigs shows them beside the backend's configs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use palisade::api::RequestContext;
use palisade::backend::{Backend, BackendError, Call};
use palisade::broker::Broker;
use palisade::principal::{AuthMethod, Principal};
use palisade::request::{Caller, FirstUse};
use palisade::topic_tags::file::{FileTags, FILE_NAME};
use palisade::topic_tags::TAGS_CONFIG;
use parking_lot::Mutex;

const TOPIC: i8 = 2;
const SET: i8 = 0;
const DELETE: i8 = 1;

/// Passes every request to the real backend and keeps a copy.
struct Recording {
    inner: Arc<dyn Backend>,
    seen: Mutex<Vec<RequestKind>>,
}

impl Backend for Recording {
    fn serve<'a>(
        &'a self,
        call: Call<'a>,
        request: RequestKind,
    ) -> BoxFuture<'a, Result<ResponseKind, BackendError>> {
        self.seen.lock().push(request.clone());
        self.inner.serve(call, request)
    }

    fn produce<'a>(
        &'a self,
        call: Call<'a>,
        request: palisade::backend::produce::ProduceBatches,
    ) -> BoxFuture<'a, palisade::backend::produce::ProduceAck> {
        self.inner.produce(call, request)
    }

    fn has_topic(&self, name: &str) -> Option<bool> {
        self.inner.has_topic(name)
    }

    fn apis(&self) -> Arc<[palisade::protocol::apis::ApiEntry]> {
        self.inner.apis()
    }
}

struct Front {
    broker: Arc<Broker>,
    recording: Arc<Recording>,
    _dir: tempfile::TempDir,
}

impl Front {
    /// A broker whose backend records what reaches it; with the gateway's file store when
    /// `gateway`, else broker mode's.
    fn open(gateway: bool) -> Front {
        let dir = tempfile::tempdir().unwrap();
        let mut broker = Broker::open(common::test_config(dir.path(), &[])).unwrap();
        let b = Arc::get_mut(&mut broker).expect("nothing else holds the broker yet");
        let recording = Arc::new(Recording {
            inner: b.backend.clone(),
            seen: Mutex::new(Vec::new()),
        });
        b.backend = recording.clone();
        if gateway {
            b.topic_tags = Arc::new(FileTags::open(dir.path()).unwrap());
        }
        Front {
            broker,
            recording,
            _dir: dir,
        }
    }

    fn ctx(&self, api_key: ApiKey, api_version: i16) -> RequestContext {
        RequestContext {
            api_key,
            api_version,
            correlation_id: 1,
            caller: Caller {
                principal: Principal {
                    name: "admin".into(),
                    method: AuthMethod::Sasl("SCRAM-SHA-512"),
                },
                peer: "127.0.0.1:50000".parse().unwrap(),
                listener: "test".into(),
                tls: false,
                client_id: None,
                audit_session: FirstUse::default(),
            },
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            lane: palisade::backend::Lane::default(),
            decisions: palisade::audit::RequestDecisions::new(self.broker.audit.clone()),
        }
    }

    /// The requests the backend received since the last call.
    fn seen(&self) -> Vec<RequestKind> {
        std::mem::take(&mut *self.recording.seen.lock())
    }

    async fn create(
        &self,
        name: &str,
        configs: &[(&str, &str)],
        validate_only: bool,
    ) -> CreateTopicsResponse {
        let topic = CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(5000)
            .with_validate_only(validate_only);
        let ctx = self.ctx(ApiKey::CreateTopics, 7);
        palisade::api::topics::create(&self.broker, &ctx, req).await
    }

    async fn alter(&self, name: &str, changes: &[(&str, i8, &str)]) -> i16 {
        let resource = AlterConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s(name))
            .with_configs(
                changes
                    .iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let ctx = self.ctx(ApiKey::IncrementalAlterConfigs, 1);
        let response = palisade::api::configs::incremental_alter(&self.broker, &ctx, req).await;
        assert_eq!(response.responses.len(), 1, "{response:?}");
        response.responses[0].error_code
    }

    async fn describe(&self, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResult {
        let resource = DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()));
        let req = DescribeConfigsRequest::default().with_resources(vec![resource]);
        let ctx = self.ctx(ApiKey::DescribeConfigs, 4);
        let mut response = palisade::api::configs::describe(&self.broker, &ctx, req).await;
        assert_eq!(response.results.len(), 1, "{response:?}");
        response.results.remove(0)
    }

    async fn delete(&self, name: &str) -> i16 {
        let req = DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(s(name))))
        ]);
        let ctx = self.ctx(ApiKey::DeleteTopics, 6);
        let response = palisade::api::topics::delete(&self.broker, &ctx, req).await;
        response.responses[0].error_code
    }

    fn tags(&self, topic: &str) -> Vec<String> {
        self.broker.topic_tags.get(topic).to_vec()
    }

    /// The topic config the local log keeps (what the backend stores).
    fn stored_config(&self, topic: &str) -> palisade::storage::TopicConfig {
        self.broker.logs.topic(topic).unwrap().config()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.broker.close();
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Every config name the backend was asked to set or change.
fn config_names_sent(seen: &[RequestKind]) -> Vec<String> {
    let mut names = Vec::new();
    for r in seen {
        match r {
            RequestKind::CreateTopics(r) => {
                for t in &r.topics {
                    names.extend(t.configs.iter().map(|c| c.name.to_string()));
                }
            }
            RequestKind::IncrementalAlterConfigs(r) => {
                for res in &r.resources {
                    names.extend(res.configs.iter().map(|c| c.name.to_string()));
                }
            }
            _ => {}
        }
    }
    names
}

fn config<'a>(result: &'a DescribeConfigsResult, name: &str) -> Option<(&'a str, i8)> {
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .map(|c| (c.value.as_deref().unwrap_or(""), c.config_source))
}

async fn tags_stay_in_front_of_the_backend(gateway: bool) -> Front {
    let f = Front::open(gateway);

    // CreateTopics: the backend gets the other configs, never the tags.
    let created = f
        .create(
            "orders",
            &[(TAGS_CONFIG, "pii, payments"), ("retention.ms", "1000")],
            false,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let seen = f.seen();
    assert!(
        matches!(seen.as_slice(), [RequestKind::CreateTopics(_)]),
        "{seen:?}"
    );
    assert_eq!(config_names_sent(&seen), ["retention.ms"]);
    assert_eq!(f.tags("orders"), ["pii", "payments"]);
    assert_eq!(f.stored_config("orders").retention_ms, 1000);
    // The created topic's configs show its tags (v5+).
    let shown = created.topics[0].configs.as_ref().unwrap();
    assert!(
        shown
            .iter()
            .any(|c| c.name.as_str() == TAGS_CONFIG && c.value.as_deref() == Some("pii,payments")),
        "{shown:?}"
    );

    // DescribeConfigs: the backend's configs plus the tags, when asked for.
    let all = f.describe("orders", None).await;
    assert_eq!(
        config(&all, TAGS_CONFIG),
        Some(("pii,payments", 1)),
        "{all:?}"
    );
    assert_eq!(config(&all, "retention.ms"), Some(("1000", 1)));
    let names: Vec<&str> = all.configs.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "placed among the others by name");
    assert_eq!(names.iter().filter(|n| **n == TAGS_CONFIG).count(), 1);
    let other = f.describe("orders", Some(&["retention.ms"])).await;
    assert_eq!(config(&other, TAGS_CONFIG), None, "{other:?}");
    let only = f.describe("orders", Some(&[TAGS_CONFIG])).await;
    assert_eq!(only.configs.len(), 1, "{only:?}");
    assert_eq!(config(&only, TAGS_CONFIG), Some(("pii,payments", 1)));
    f.seen();

    // IncrementalAlterConfigs: the tags are taken out, the rest is forwarded.
    let code = f
        .alter(
            "orders",
            &[
                (TAGS_CONFIG, SET, "classified"),
                ("retention.ms", SET, "2000"),
            ],
        )
        .await;
    assert_eq!(code, 0);
    let seen = f.seen();
    assert_eq!(config_names_sent(&seen), ["retention.ms"], "{seen:?}");
    assert_eq!(f.tags("orders"), ["classified"]);
    assert_eq!(f.stored_config("orders").retention_ms, 2000);

    // Only tags: no config change reaches the backend (it is only asked whether the topic
    // exists).
    assert_eq!(f.alter("orders", &[(TAGS_CONFIG, SET, "a,b")]).await, 0);
    let seen = f.seen();
    assert!(
        seen.iter().all(|r| matches!(r, RequestKind::Metadata(_))),
        "{seen:?}"
    );
    assert_eq!(f.tags("orders"), ["a", "b"]);
    assert_eq!(f.alter("orders", &[(TAGS_CONFIG, DELETE, "")]).await, 0);
    assert!(f.tags("orders").is_empty());
    let untagged = f.describe("orders", None).await;
    assert_eq!(config(&untagged, TAGS_CONFIG), None, "{untagged:?}");

    // A retag of a topic that does not exist is refused and stores nothing.
    assert_eq!(
        f.alter("ghost", &[(TAGS_CONFIG, SET, "x")]).await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(f.tags("ghost").is_empty());
    // Tags beyond the bounds are refused before anything is forwarded.
    let too_many = (0..100)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    f.seen();
    assert_eq!(
        f.alter(
            "orders",
            &[(TAGS_CONFIG, SET, &too_many), ("retention.ms", SET, "3000")]
        )
        .await,
        ResponseError::InvalidConfig.code()
    );
    assert!(f.seen().is_empty());
    assert_eq!(f.stored_config("orders").retention_ms, 2000);
    // APPEND is not a tag operation.
    assert_eq!(
        f.alter("orders", &[(TAGS_CONFIG, 2, "x")]).await,
        ResponseError::InvalidRequest.code()
    );

    // validate_only creates nothing, tags included.
    let checked = f.create("checked", &[(TAGS_CONFIG, "pii")], true).await;
    assert_eq!(checked.topics[0].error_code, 0, "{checked:?}");
    assert_eq!(config_names_sent(&f.seen()), Vec::<String>::new());
    assert!(f.tags("checked").is_empty());
    assert!(f.broker.logs.topic("checked").is_none());
    let invalid = f
        .create("invalid", &[(TAGS_CONFIG, &too_many)], false)
        .await;
    assert_eq!(
        invalid.topics[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    assert!(f.seen().is_empty(), "refused in front");

    // DeleteTopics forgets the tags: a topic created later under the name starts clean.
    assert_eq!(f.alter("orders", &[(TAGS_CONFIG, SET, "pii")]).await, 0);
    assert_eq!(f.delete("orders").await, 0);
    assert!(f.tags("orders").is_empty());
    assert_eq!(f.create("orders", &[], false).await.topics[0].error_code, 0);
    assert!(f.tags("orders").is_empty());
    f.seen();
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_mode_keeps_tags_in_the_topic_config_never_sent_to_the_backend() {
    let f = tags_stay_in_front_of_the_backend(false).await;
    // Broker mode's store is the topic config, where earlier versions kept the tags.
    assert_eq!(
        f.create("kept", &[(TAGS_CONFIG, "x,y")], false)
            .await
            .topics[0]
            .error_code,
        0
    );
    assert_eq!(
        f.stored_config("kept")
            .extra
            .get(TAGS_CONFIG)
            .map(String::as_str),
        Some("x,y")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_mode_keeps_tags_in_its_own_file_never_sent_to_the_backend() {
    let f = tags_stay_in_front_of_the_backend(true).await;
    assert_eq!(
        f.create("kept", &[(TAGS_CONFIG, "x,y")], false)
            .await
            .topics[0]
            .error_code,
        0
    );
    // Not in the backend's topic config: in the gateway's file, which a restart loads.
    assert!(!f.stored_config("kept").extra.contains_key(TAGS_CONFIG));
    let data_dir = f.broker.config.storage.data_dir.clone();
    let text = std::fs::read_to_string(data_dir.join(FILE_NAME)).unwrap();
    assert!(text.contains("\"kept\""), "{text}");
    let reopened = FileTags::open(&data_dir).unwrap();
    use palisade::topic_tags::TagStore as _;
    assert_eq!(*reopened.get("kept"), ["x", "y"]);
}

/// The local backend refuses the key as Kafka would: a layer that forgot to take it out
/// fails loudly instead of storing tags behind the store's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_backend_refuses_tags_sent_to_it() {
    let f = Front::open(false);
    let ctx = f.ctx(ApiKey::CreateTopics, 7);
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("direct")))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s(TAGS_CONFIG))
            .with_value(Some(s("pii")))])]);
    let response = palisade::backend::create_topics(&*f.broker.backend, ctx.call(), req)
        .await
        .unwrap();
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    assert!(f.broker.logs.topic("direct").is_none());
}

/// Through a gateway in front of a real Apache Kafka cluster (which refuses unknown topic
/// configs): a topic created with tags by a real client exists upstream without them, the
/// gateway keeps them in its file and shows them in DescribeConfigs, and deleting the topic
/// through the gateway forgets them.
#[test]
fn a_gateway_keeps_tags_the_kafka_cluster_behind_it_never_sees() {
    use common::kafka_cluster::KafkaCluster;
    use rdkafka::admin::{
        AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication,
    };
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use std::time::Duration;

    let cluster = KafkaCluster::shared();
    let _calm = cluster.calm();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let servers: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let bootstrap = format!("bootstrap_servers = {servers:?}");
    let port_base = format!("port_base = {}", free_port_block(3));
    // A gateway listener's own port is its bootstrap address: a fixed one, not 0.
    let listener_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("bind = \"127.0.0.1:{listener_port}\"");
    let gw = common::BackgroundBroker::start(
        &data,
        &[
            (
                "# bootstrap_servers = [\"kafka-1.internal:9093\", \"kafka-2.internal:9093\"]",
                &bootstrap,
            ),
            ("port_base = 19092", &port_base),
            ("node_id_base = 0", "node_id_base = 1"),
            ("bind = \"127.0.0.1:0\"", &bind),
        ],
    );
    let admin = |servers: &str| -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", servers)
            .create()
            .unwrap()
    };
    let through = admin(&gw.bootstrap());
    let direct = admin(&cluster.bootstrap());
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let topic = "gw-tagged";

    let tagged =
        NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set(TAGS_CONFIG, "pii,payments");
    let created = gw
        .rt
        .block_on(through.create_topics([&tagged], &options))
        .unwrap();
    assert!(
        created[0].is_ok(),
        "Kafka would refuse the key: {created:?}"
    );
    let broker = &gw.running.as_ref().unwrap().broker;
    assert_eq!(*broker.topic_tags.get(topic), ["pii", "payments"]);

    let describe = |client: &AdminClient<DefaultClientContext>| -> Vec<(String, Option<String>)> {
        let results = gw
            .rt
            .block_on(client.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
            .unwrap();
        let resource = results.into_iter().next().unwrap().unwrap();
        resource
            .entries
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    };
    let seen_through = describe(&through);
    assert!(
        seen_through.contains(&(TAGS_CONFIG.to_string(), Some("pii,payments".to_string()))),
        "{seen_through:?}"
    );
    assert!(
        seen_through.iter().any(|(name, _)| name == "retention.ms"),
        "the upstream's own configs are there too: {seen_through:?}"
    );
    let seen_direct = describe(&direct);
    assert!(
        seen_direct.iter().any(|(name, _)| name == "retention.ms"),
        "the topic exists upstream: {seen_direct:?}"
    );
    assert!(
        !seen_direct.iter().any(|(name, _)| name == TAGS_CONFIG),
        "{seen_direct:?}"
    );
    let file = std::fs::read_to_string(data.join(FILE_NAME)).unwrap();
    assert!(file.contains(topic), "{file}");

    let deleted = gw
        .rt
        .block_on(through.delete_topics(&[topic], &options))
        .unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    assert!(broker.topic_tags.get(topic).is_empty());
    let file = std::fs::read_to_string(data.join(FILE_NAME)).unwrap();
    assert!(!file.contains(topic), "{file}");
}

/// `n` consecutive free loopback ports: the gateway's node ports (node ids 1..=n).
fn free_port_block(n: u16) -> u16 {
    for base in (30_000u16..40_000).step_by(97) {
        let held: Vec<_> = (base..base + n)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no block of {n} free ports");
}

//! The gateway's conversation with the upstream cluster about the audit topic, used by
//! [`super::upstream_sink`]: find the leader of its one partition (Metadata), have the topic
//! created when it is missing or checked once ([`super::upstream_topic_setup`]), become an
//! idempotent producer (InitProducerId) and write batches (Produce, acks=all).
//!
//! It keeps one connection of its own, logged in as the service account with the cluster's
//! options, to the partition leader: the audit sink runs on its own thread and runtime (so a
//! shutdown can wait for it from anywhere), and a connection's I/O tasks live on the runtime
//! that opened it.
//!
//! Idempotence is why a retry cannot duplicate: each batch carries the producer id, epoch and
//! the sequence number of its first line, and a batch resent after an unanswered attempt
//! carries the same, so the upstream writes it once. When the upstream refuses InitProducerId
//! (no IdempotentWrite permission, an old broker), batches are written without a producer id
//! and a warning says a retry may then repeat lines (the `seq` field shows it).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, MetadataRequest, MetadataResponse, ProduceRequest, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::batch::{self, Producer};
use super::upstream_topic_setup::{self as setup, Wanted};
use super::AUDIT_TOPIC;
use crate::upstream::{ConnectOptions, Connection, Node, UpstreamCluster, UpstreamError};

/// The client id of the audit writer's requests (seen in the upstream's request logs).
pub(super) const CLIENT_ID: &str = "palisade-gateway-audit";
/// Metadata v1 and later: a topic list means those topics only.
const METADATA: VersionRange = VersionRange { min: 1, max: 12 };
const INIT_PRODUCER_ID: VersionRange = VersionRange { min: 0, max: 4 };
/// Produce v3 and later carry record batches v2; v13 names topics by id only.
const PRODUCE: VersionRange = VersionRange { min: 3, max: 12 };
/// Metadata asked while a topic the gateway just created gets its leader.
const LEADER_WAIT_TRIES: u32 = 20;

/// Why a step did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Try again after a backoff; `stale`: the leader or the connection may have changed, so
    /// find the leader again first.
    Retry { reason: String, stale: bool },
    /// The upstream refuses this batch for good (too large, invalid): retrying cannot help.
    Refused(String),
}

impl Failure {
    pub(super) fn retry(reason: impl Into<String>) -> Self {
        Failure::Retry {
            reason: reason.into(),
            stale: false,
        }
    }

    pub(super) fn stale(reason: impl Into<String>) -> Self {
        Failure::Retry {
            reason: reason.into(),
            stale: true,
        }
    }
}

impl From<UpstreamError> for Failure {
    fn from(e: UpstreamError) -> Self {
        Failure::stale(e.to_string())
    }
}

/// Lines taken from the backlog, kept as sent until the upstream acknowledges them.
pub struct Pending {
    pub lines: Vec<Bytes>,
    timestamp: i64,
    /// The producer and first sequence number the batch was sent as: a retry by the same
    /// producer sends exactly these again.
    sent_as: Option<Producer>,
}

impl Pending {
    pub fn new(lines: Vec<Bytes>) -> Self {
        Pending {
            lines,
            timestamp: batch::now_ms(),
            sent_as: None,
        }
    }
}

/// The idempotent producer's state: its id, epoch and the sequence of the next new batch.
#[derive(Debug, Clone, Copy)]
struct ProducerState {
    id: i64,
    epoch: i16,
    next_sequence: i32,
}

pub struct UpstreamTopic {
    cluster: Arc<UpstreamCluster>,
    options: ConnectOptions,
    wanted: Wanted,
    /// To the partition leader once it is known.
    conn: Option<Connection>,
    leader_known: bool,
    producer: Option<ProducerState>,
    /// False once the upstream refused InitProducerId.
    idempotent: bool,
    /// Whether an existing topic's config was checked (once per start).
    checked: bool,
}

impl UpstreamTopic {
    pub fn new(cluster: Arc<UpstreamCluster>, wanted: Wanted) -> Self {
        let options = cluster.connect_options().clone();
        UpstreamTopic {
            cluster,
            options,
            wanted,
            conn: None,
            leader_known: false,
            producer: None,
            idempotent: true,
            checked: false,
        }
    }

    /// Forgets the connection and the leader (after an error that suggests either changed);
    /// the gateway's node map is refreshed too.
    pub fn reset(&mut self) {
        self.conn = None;
        self.leader_known = false;
        self.cluster.request_refresh();
    }

    /// Connects, finds (or creates) the topic and its leader, and becomes a producer.
    pub async fn prepare(&mut self) -> Result<(), Failure> {
        if !self.conn.as_ref().is_some_and(Connection::is_usable) {
            self.conn = None;
            self.leader_known = false;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect_any().await?);
        }
        if !self.leader_known {
            let leader = self.find_leader().await?;
            if self.conn.as_ref().is_none_or(|c| c.address() != leader) {
                self.conn = Some(Connection::connect(&leader, &self.options).await?);
            }
            self.leader_known = true;
        }
        if self.idempotent && self.producer.is_none() {
            self.init_producer().await?;
        }
        Ok(())
    }

    /// Writes `pending` to partition 0 with acks=all.
    pub async fn produce(&mut self, pending: &mut Pending) -> Result<(), Failure> {
        let count = i32::try_from(pending.lines.len()).unwrap_or(i32::MAX);
        let producer = match self.producer {
            Some(p) if self.idempotent => match pending.sent_as {
                Some(s) if s.id == p.id && s.epoch == p.epoch => s,
                _ => {
                    if p.next_sequence > i32::MAX - count {
                        // Sequence numbers would wrap: a new producer id starts again at 0.
                        self.producer = None;
                        return Err(Failure::retry("sequence numbers exhausted"));
                    }
                    self.producer = Some(ProducerState {
                        next_sequence: p.next_sequence + count,
                        ..p
                    });
                    Producer {
                        id: p.id,
                        epoch: p.epoch,
                        base_sequence: p.next_sequence,
                    }
                }
            },
            _ => Producer::NONE,
        };
        pending.sent_as = (producer != Producer::NONE).then_some(producer);
        let records = batch::encode(&pending.lines, producer, pending.timestamp)
            .map_err(|e| Failure::Refused(e.to_string()))?
            .freeze();
        let conn = self.connection()?;
        let version = version(conn, ApiKey::Produce, PRODUCE)?;
        let timeout_ms = i32::try_from(self.options.request_timeout.as_millis() / 2)
            .unwrap_or(i32::MAX)
            .max(1);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]);
        let code = match conn
            .call(version, Some(CLIENT_ID), &RequestKind::Produce(request))
            .await?
        {
            ResponseKind::Produce(r) => r
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == AUDIT_TOPIC)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == 0)
                .map(|p| p.error_code)
                .ok_or_else(|| Failure::stale("the Produce response has no partition 0"))?,
            _ => return Err(Failure::stale("not a Produce response")),
        };
        match code.err() {
            // A duplicate is a batch the upstream already wrote (an earlier attempt arrived).
            None | Some(ResponseError::DuplicateSequenceNumber) => Ok(()),
            Some(
                e @ (ResponseError::OutOfOrderSequenceNumber
                | ResponseError::InvalidProducerEpoch
                | ResponseError::UnknownProducerId
                | ResponseError::ProducerFenced),
            ) => {
                // The upstream lost or refused this producer's state: start a new one.
                self.producer = None;
                Err(Failure::retry(format!("Produce: {e:?}")))
            }
            Some(
                e @ (ResponseError::NotLeaderOrFollower
                | ResponseError::LeaderNotAvailable
                | ResponseError::UnknownTopicOrPartition
                | ResponseError::FencedLeaderEpoch
                | ResponseError::UnknownLeaderEpoch
                | ResponseError::KafkaStorageError),
            ) => Err(Failure::stale(format!("Produce: {e:?}"))),
            // The operator may grant the permission: keep the lines and try again.
            Some(
                e @ (ResponseError::TopicAuthorizationFailed
                | ResponseError::ClusterAuthorizationFailed),
            ) => Err(Failure::retry(format!(
                "Produce: {e:?}: grant the gateway's upstream account Write on `{AUDIT_TOPIC}`, \
                 or set `[audit] topic = false` (a Palisade upstream lets no one write it)"
            ))),
            Some(e) if e.is_retriable() => Err(Failure::retry(format!("Produce: {e:?}"))),
            Some(e) => {
                // Sequence numbers were spent on a batch never written: the next batch would
                // be out of order, so the next one starts a new producer.
                self.producer = None;
                Err(Failure::Refused(format!("Produce: {e:?}")))
            }
        }
    }

    fn connection(&self) -> Result<&Connection, Failure> {
        self.conn
            .as_ref()
            .ok_or_else(|| Failure::stale("no connection"))
    }

    /// A connection to any broker: the known nodes first, then the bootstrap servers.
    async fn connect_any(&self) -> Result<Connection, Failure> {
        let mut addresses: Vec<String> = self
            .cluster
            .nodes()
            .nodes
            .values()
            .map(Node::address)
            .collect();
        addresses.extend(self.cluster.bootstrap_servers().iter().cloned());
        let mut failures = Vec::new();
        for address in addresses {
            match Connection::connect(&address, &self.options).await {
                Ok(conn) => return Ok(conn),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Failure::stale(if failures.is_empty() {
            "no upstream broker is known".to_string()
        } else {
            failures.join("; ")
        }))
    }

    /// The address of partition 0's leader; creates the topic when it is missing and checks
    /// an existing one once.
    async fn find_leader(&mut self) -> Result<String, Failure> {
        let mut created = false;
        for _ in 0..LEADER_WAIT_TRIES {
            let response = metadata(self.connection()?).await?;
            let brokers: BTreeMap<i32, String> = response
                .brokers
                .iter()
                .map(|b| {
                    let node = Node {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: None,
                    };
                    (node.id, node.address())
                })
                .collect();
            let topic = response
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == AUDIT_TOPIC))
                .ok_or_else(|| Failure::stale("the Metadata response omits the audit topic"))?;
            match topic.error_code.err() {
                None => {}
                Some(ResponseError::UnknownTopicOrPartition) if !created => {
                    let timeout_ms = i32::try_from(self.options.request_timeout.as_millis() / 2)
                        .unwrap_or(i32::MAX);
                    setup::create(self.connection()?, self.wanted, brokers.len(), timeout_ms)
                        .await?;
                    created = true;
                    self.checked = true;
                    continue;
                }
                Some(
                    ResponseError::UnknownTopicOrPartition | ResponseError::LeaderNotAvailable,
                ) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
                Some(e) => {
                    return Err(Failure::stale(format!(
                        "Metadata of the audit topic: {e:?}"
                    )))
                }
            }
            if !self.checked {
                self.checked = true;
                let replicas = topic
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == 0)
                    .map_or(0, |p| p.replica_nodes.len());
                setup::check(
                    self.connection()?,
                    self.wanted,
                    topic.partitions.len(),
                    replicas,
                    brokers.len(),
                )
                .await;
            }
            let leader = topic
                .partitions
                .iter()
                .find(|p| p.partition_index == 0 && p.error_code == 0)
                .map(|p| p.leader_id.0)
                .filter(|id| *id >= 0);
            match leader.and_then(|id| brokers.get(&id)) {
                Some(address) => return Ok(address.clone()),
                None if created => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                None => {
                    return Err(Failure::stale(
                        "partition 0 of the audit topic has no leader",
                    ))
                }
            }
        }
        Err(Failure::stale(
            "partition 0 of the audit topic has no leader yet",
        ))
    }

    /// InitProducerId without a transactional id: an idempotent producer.
    async fn init_producer(&mut self) -> Result<(), Failure> {
        let conn = self.connection()?;
        let Some(version) = conn
            .versions()
            .highest_common(ApiKey::InitProducerId, INIT_PRODUCER_ID)
        else {
            self.not_idempotent("the upstream does not offer InitProducerId");
            return Ok(());
        };
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX);
        let response = match conn
            .call(
                version,
                Some(CLIENT_ID),
                &RequestKind::InitProducerId(request),
            )
            .await?
        {
            ResponseKind::InitProducerId(r) => r,
            _ => return Err(Failure::stale("not an InitProducerId response")),
        };
        match response.error_code.err() {
            None => {
                self.producer = Some(ProducerState {
                    id: response.producer_id.0,
                    epoch: response.producer_epoch,
                    next_sequence: 0,
                });
                Ok(())
            }
            Some(e) if e.is_retriable() => Err(Failure::retry(format!("InitProducerId: {e:?}"))),
            Some(e) => {
                self.not_idempotent(&format!("InitProducerId refused: {e:?}"));
                Ok(())
            }
        }
    }

    fn not_idempotent(&mut self, why: &str) {
        self.idempotent = false;
        tracing::warn!(
            topic = AUDIT_TOPIC,
            "the audit topic is written without idempotence ({why}): a batch retried after a lost \
             answer may appear twice on the upstream (the `seq` field shows it); grant the \
             gateway's service account IdempotentWrite or Write on the topic"
        );
    }
}

pub(super) fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(AUDIT_TOPIC))
}

/// The highest version of `api` both ends speak.
pub(super) fn version(conn: &Connection, api: ApiKey, ours: VersionRange) -> Result<i16, Failure> {
    conn.versions().highest_common(api, ours).ok_or_else(|| {
        Failure::retry(format!(
            "the upstream offers {api:?} {}, the gateway needs v{}-v{}",
            conn.versions().describe(api),
            ours.min,
            ours.max
        ))
    })
}

/// Metadata of the audit topic alone (never auto-created: the gateway creates it with its
/// own settings).
async fn metadata(conn: &Connection) -> Result<MetadataResponse, Failure> {
    let version = version(conn, ApiKey::Metadata, METADATA)?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name()))
        ]))
        .with_allow_auto_topic_creation(false);
    match conn
        .call(version, Some(CLIENT_ID), &RequestKind::Metadata(request))
        .await?
    {
        ResponseKind::Metadata(r) => Ok(r),
        _ => Err(Failure::stale("not a Metadata response")),
    }
}

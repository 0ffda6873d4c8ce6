//! [`UpstreamCluster`]: the upstream's brokers as learned from Metadata, and a connection per
//! node (and per upstream identity), opened when first needed.
//!
//! - The node map starts from `bootstrap_servers` and is refreshed every `metadata_refresh`
//!   and on demand ([`UpstreamCluster::request_refresh`]); [`UpstreamCluster::subscribe`]
//!   tells a listener manager when a node appears, moves or leaves.
//! - Each node's connection has its own lock: a node that is down or slow to connect delays
//!   only the callers that need that node. After a failed connect the node is not dialled
//!   again until its backoff (100 ms, doubling to 5 s) has passed; callers get a retriable
//!   [`UpstreamError::NodeUnavailable`] meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::VersionRange;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connection::{ConnectOptions, Connection};
use super::error::UpstreamError;
use super::secret::Credential;

/// The Metadata versions the gateway asks in (v1 and later: an empty topic list means none).
const METADATA_VERSIONS: VersionRange = VersionRange { min: 1, max: 12 };

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One upstream broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Node {
    /// `host:port`, an IPv6 host in brackets.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What the upstream's last Metadata said about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMap {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub nodes: BTreeMap<i32, Node>,
}

impl NodeMap {
    fn from_metadata(response: &MetadataResponse) -> Self {
        let nodes = response
            .brokers
            .iter()
            .map(|b| {
                let id = b.node_id.0;
                let node = Node {
                    id,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (id, node)
            })
            .collect();
        NodeMap {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: Some(response.controller_id.0).filter(|id| *id >= 0),
            nodes,
        }
    }
}

/// Connections are kept per node and per upstream identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    node_id: i32,
    /// `None`: the service account (or no SASL); else [`Credential::fingerprint`].
    identity: Option<[u8; 32]>,
}

#[derive(Default)]
struct SlotState {
    connection: Option<Arc<Connection>>,
    health: Health,
}

#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

/// The upstream cluster: its node map and connections to its nodes.
pub struct UpstreamCluster {
    bootstrap: Vec<String>,
    options: ConnectOptions,
    refresh_every: Duration,
    map: watch::Sender<Arc<NodeMap>>,
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
    /// Backoff of the connections dialled for clients' lanes ([`UpstreamCluster::dial`]), per
    /// node.
    lane_health: Mutex<HashMap<i32, Health>>,
    refresh_wanted: Notify,
}

/// A node's recent connect failures, for backoff.
#[derive(Default)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

impl Health {
    /// Refuses a connect while the node's backoff has not passed.
    fn check(&self, node_id: i32, address: &str) -> Result<(), UpstreamError> {
        let now = Instant::now();
        match self.retry_at.filter(|at| *at > now) {
            Some(retry_at) => Err(UpstreamError::NodeUnavailable {
                node_id,
                address: address.to_string(),
                retry_in_ms: u64::try_from((retry_at - now).as_millis()).unwrap_or(u64::MAX),
                last: self.last_error.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Counts a failed connect; the next waits longer.
    fn failed(&mut self, e: &UpstreamError) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + backoff(self.failures));
        self.last_error = e.to_string();
    }
}

impl std::fmt::Debug for UpstreamCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCluster")
            .field("bootstrap", &self.bootstrap)
            .field("nodes", &self.map.borrow().nodes.len())
            .finish_non_exhaustive()
    }
}

impl UpstreamCluster {
    /// A cluster reached through `bootstrap` (`host:port` each), logging in with `options`'
    /// credential (the service account). Nothing is dialled until [`Self::refresh`].
    pub fn new(bootstrap: Vec<String>, options: ConnectOptions, refresh_every: Duration) -> Self {
        UpstreamCluster {
            bootstrap,
            options,
            refresh_every,
            map: watch::Sender::new(Arc::new(NodeMap::default())),
            slots: Mutex::new(HashMap::new()),
            lane_health: Mutex::new(HashMap::new()),
            refresh_wanted: Notify::new(),
        }
    }

    /// The cluster `[gateway]` describes, logging in as the service account of `identities`
    /// (the TLS files are read now). Nothing is dialled until [`Self::refresh`].
    pub fn from_settings(
        section: &super::settings::GatewaySection,
        identities: &super::identity::UpstreamIdentities,
    ) -> Result<Self, super::tls::UpstreamTlsError> {
        let options =
            ConnectOptions::from_settings(section, identities.service_account().cloned())?;
        Ok(Self::new(
            section.bootstrap_servers.clone(),
            options,
            Duration::from_millis(section.metadata_refresh_ms),
        ))
    }

    /// The configured bootstrap servers (`host:port` each).
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap
    }

    /// How this cluster's connections are made (TLS, the service account, timeouts), for a
    /// part of the gateway that keeps a connection of its own (the audit topic writer).
    pub fn connect_options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The node map as last learned.
    pub fn nodes(&self) -> Arc<NodeMap> {
        Arc::clone(&self.map.borrow())
    }

    /// Follows the node map: a listener manager opens a port when a node appears.
    pub fn subscribe(&self) -> watch::Receiver<Arc<NodeMap>> {
        self.map.subscribe()
    }

    /// Asks the refresher task for a Metadata refresh now (after an error that suggests the
    /// map is stale: NOT_LEADER, a node that went away ...).
    pub fn request_refresh(&self) {
        self.refresh_wanted.notify_one();
    }

    /// Refreshes every `refresh_every` and when asked, until the cluster is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) -> JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.refresh_every;
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(cluster) = weak.upgrade() else {
                    return;
                };
                // After a failure, sooner: a gateway started before its cluster finds it
                // within seconds.
                let wait = if failures == 0 {
                    every
                } else {
                    backoff(failures.saturating_add(3)).min(every)
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cluster.refresh_wanted.notified() => {}
                }
                match cluster.refresh().await {
                    Ok(_) => failures = 0,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, "upstream metadata refresh failed");
                    }
                }
            }
        })
    }

    /// Asks the known nodes, then the bootstrap servers, for Metadata until one answers, and
    /// publishes the node map it gives.
    pub async fn refresh(&self) -> Result<Arc<NodeMap>, UpstreamError> {
        let mut failures = Vec::new();
        let known: Vec<i32> = self.map.borrow().nodes.keys().copied().collect();
        for node_id in known {
            match self.connection(node_id).await {
                Ok(conn) => match metadata(&conn, &self.options.client_id).await {
                    Ok(map) => return Ok(self.publish(map)),
                    Err(e) => failures.push(e.to_string()),
                },
                Err(e) => failures.push(e.to_string()),
            }
        }
        for address in &self.bootstrap {
            let answered = async {
                let conn = Connection::connect(address, &self.options).await?;
                metadata(&conn, &self.options.client_id).await
            };
            match answered.await {
                Ok(map) => return Ok(self.publish(map)),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(UpstreamError::NoBroker(if failures.is_empty() {
            "no bootstrap servers".to_string()
        } else {
            failures.join("; ")
        }))
    }

    fn publish(&self, map: NodeMap) -> Arc<NodeMap> {
        let map = Arc::new(map);
        self.map.send_if_modified(|current| {
            if **current == *map {
                return false;
            }
            *current = Arc::clone(&map);
            true
        });
        // Connections to nodes that left the cluster are closed.
        self.slots
            .lock()
            .retain(|key, _| map.nodes.contains_key(&key.node_id));
        map
    }

    /// The service account's connection to `node_id`.
    pub async fn connection(&self, node_id: i32) -> Result<Arc<Connection>, UpstreamError> {
        self.connection_as(node_id, None).await
    }

    /// A connection to `node_id` logged in as `credential` (`None`: the service account).
    pub async fn connection_as(
        &self,
        node_id: i32,
        credential: Option<&Arc<Credential>>,
    ) -> Result<Arc<Connection>, UpstreamError> {
        let address = self.address_of(node_id)?;
        let key = SlotKey {
            node_id,
            identity: credential.map(|c| c.fingerprint()),
        };
        let slot = Arc::clone(self.slots.lock().entry(key).or_default());
        let mut state = slot.state.lock().await;
        if let Some(conn) = &state.connection {
            if conn.is_usable() && conn.address() == address {
                return Ok(Arc::clone(conn));
            }
        }
        state.connection = None;
        state.health.check(node_id, &address)?;
        let options = self.options_for(credential);
        match Connection::connect(&address, &options).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *state = SlotState {
                    connection: Some(Arc::clone(&conn)),
                    health: Health::default(),
                };
                Ok(conn)
            }
            Err(e) => {
                state.health.failed(&e);
                Err(e)
            }
        }
    }
}

impl UpstreamCluster {
    /// The `host:port` of `node_id` as last learned.
    fn address_of(&self, node_id: i32) -> Result<String, UpstreamError> {
        self.map
            .borrow()
            .nodes
            .get(&node_id)
            .map(Node::address)
            .ok_or(UpstreamError::UnknownNode { node_id })
    }

    /// The connect options of a login as `credential` (`None`: the service account).
    fn options_for(&self, credential: Option<&Arc<Credential>>) -> ConnectOptions {
        match credential {
            Some(c) => ConnectOptions {
                credential: Some(Arc::clone(c)),
                ..self.options.clone()
            },
            None => self.options.clone(),
        }
    }

    /// A new connection to `node_id` of its own, logged in as `credential` (`None`: the
    /// service account): a client connection's lane. Several are dialled at once; a node that
    /// failed recently is not dialled again before its backoff has passed.
    pub async fn dial(
        &self,
        node_id: i32,
        credential: Option<&Arc<Credential>>,
    ) -> Result<Connection, UpstreamError> {
        let address = self.address_of(node_id)?;
        if let Some(health) = self.lane_health.lock().get(&node_id) {
            health.check(node_id, &address)?;
        }
        let options = self.options_for(credential);
        let result = Connection::connect(&address, &options).await;
        let mut health = self.lane_health.lock();
        match &result {
            Ok(_) => {
                health.remove(&node_id);
            }
            Err(e) => health.entry(node_id).or_default().failed(e),
        }
        result
    }
}

/// 100 ms after the first failure, doubling, at most 5 s.
fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1u32 << shift).min(MAX_BACKOFF)
}

/// Asks one connection for the cluster's brokers (no topics).
async fn metadata(conn: &Connection, client_id: &str) -> Result<NodeMap, UpstreamError> {
    let version = conn
        .versions()
        .highest_common(ApiKey::Metadata, METADATA_VERSIONS)
        .ok_or_else(|| UpstreamError::UnsupportedVersion {
            address: conn.address().to_string(),
            api: ApiKey::Metadata,
            version: METADATA_VERSIONS.max,
            range: conn.versions().describe(ApiKey::Metadata),
        })?;
    let request = RequestKind::Metadata(
        MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .with_allow_auto_topic_creation(false),
    );
    match conn.call(version, Some(client_id), &request).await? {
        ResponseKind::Metadata(response) => Ok(NodeMap::from_metadata(&response)),
        _ => Err(UpstreamError::Decode {
            address: conn.address().to_string(),
            api: ApiKey::Metadata,
            version,
            message: "not a Metadata response".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let node = |host: &str| Node {
            id: 1,
            host: host.into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(node("::1").address(), "[::1]:9092");
        assert_eq!(node("kafka-1").address(), "kafka-1:9092");
    }
}

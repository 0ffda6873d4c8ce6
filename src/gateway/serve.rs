//! Gateway mode as `palisade serve` runs it: the upstream backend, and a port per upstream
//! node on every listener.
//!
//! Each listener keeps its own port as the bootstrap address and gets a range of node ports
//! of its own, with its own security: listener number `k` (0-based, in config order) serves
//! upstream node `N` on `port_base + k * NODE_PORTS_PER_LISTENER + N - node_id_base`. With
//! the development default (`port_base` 19092), the PLAINTEXT listener's node 0 is on 19092,
//! the SASL_SSL listener's on 19192, the SSL listener's on 19292. Metadata seen through a
//! listener names that listener's node ports.
//!
//! With `addressing = "sni"`, a TLS listener serves every node on its own port instead, by the
//! server name `broker-<id>.<sni_domain>` ([`super::sni`]); listeners without TLS keep their
//! node ports.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::addressing::{AddressMap, PortPerNodeSettings, PortRange, SniDomain, SniSettings};
use super::node_ports::NodePortListeners;
use crate::backend::upstream::Upstream;
use crate::config::Config;
use crate::server::listener::{Listener, ListenerMeta};
use crate::upstream::{Addressing, UpstreamCluster, UpstreamIdentities};

/// Node ports reserved for each listener: the most upstream nodes a listener can address.
pub const NODE_PORTS_PER_LISTENER: u16 = 100;

/// What a running gateway needs besides its backend: the cluster and each listener's ports.
pub struct GatewayPlan {
    pub cluster: Arc<UpstreamCluster>,
    /// Per listener name, its node ports.
    ranges: HashMap<String, Arc<PortRange>>,
    /// Per TLS listener in SNI addressing, its node names.
    sni: HashMap<String, SniDomain>,
    bind_ip: IpAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayStartError {
    #[error("[gateway] {0}")]
    Settings(String),
    #[error("[gateway] identities: {0}")]
    Identities(#[from] crate::upstream::identity::IdentityError),
    #[error("[gateway.tls]: {0}")]
    Tls(#[from] crate::upstream::tls::UpstreamTlsError),
    #[error("[gateway] node ports of listener `{listener}`: {message}")]
    Ports { listener: String, message: String },
}

/// The upstream backend `config` describes and the plan of its node ports. Nothing is dialled
/// yet: [`GatewayPlan::start`] does.
pub fn open(config: &Config) -> Result<(Arc<Upstream>, GatewayPlan), GatewayStartError> {
    let section = &config.gateway;
    let problems = section.validate();
    if !problems.is_empty() {
        return Err(GatewayStartError::Settings(problems.join("; ")));
    }
    let identities = Arc::new(UpstreamIdentities::load(section)?);
    let cluster = Arc::new(UpstreamCluster::from_settings(section, &identities)?);
    let bind_ip: IpAddr = section.bind_host.parse().map_err(|_| {
        GatewayStartError::Settings(format!(
            "`bind_host` {:?} is not an IP address",
            section.bind_host
        ))
    })?;
    let mut ranges = HashMap::new();
    let mut maps = HashMap::new();
    let mut sni = HashMap::new();
    for (k, listener) in config.listeners.iter().enumerate() {
        if let (Addressing::Sni, Some(_), Some(domain)) =
            (section.addressing, &listener.tls, &section.sni_domain)
        {
            // A TLS listener in SNI addressing: every node on its one port, by name.
            let advertised_port = listener
                .advertised
                .as_deref()
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(listener.bind.port());
            let settings = SniSettings {
                domain: domain.clone(),
                advertised_port,
            };
            let failed = |e: super::addressing::AddressMapError| GatewayStartError::Ports {
                listener: listener.name.clone(),
                message: e.to_string(),
            };
            maps.insert(
                listener.name.clone(),
                AddressMap::sni(&settings).map_err(failed)?,
            );
            sni.insert(
                listener.name.clone(),
                SniDomain::new(&settings).map_err(failed)?,
            );
            continue;
        }
        let offset = u16::try_from(k)
            .ok()
            .and_then(|k| k.checked_mul(NODE_PORTS_PER_LISTENER))
            .and_then(|o| section.port_base.checked_add(o));
        let first_port = offset.ok_or_else(|| GatewayStartError::Ports {
            listener: listener.name.clone(),
            message: "the node ports would be above 65535; lower `port_base`".to_string(),
        })?;
        let last_port = first_port.saturating_add(NODE_PORTS_PER_LISTENER - 1);
        let advertised_host = section.advertised_host.clone().unwrap_or_else(|| {
            listener
                .advertised
                .as_deref()
                .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.to_string()))
                .unwrap_or_else(|| listener.bind.ip().to_string())
        });
        let settings = PortPerNodeSettings {
            // The listener's own port; an ephemeral one (0) is not known before it is bound,
            // and serving needs none: node ports route by their own port, not by this one.
            bootstrap_port: match listener.bind.port() {
                0 => first_port
                    .checked_sub(1)
                    .unwrap_or(last_port.saturating_add(1)),
                port => port,
            },
            first_port,
            last_port,
            node_id_base: section.node_id_base,
            advertised_host,
            advertised_first_port: None,
        };
        let range = PortRange::new(&settings).map_err(|e| GatewayStartError::Ports {
            listener: listener.name.clone(),
            message: e.to_string(),
        })?;
        maps.insert(
            listener.name.clone(),
            AddressMap::port_per_node(&settings).map_err(|e| GatewayStartError::Ports {
                listener: listener.name.clone(),
                message: e.to_string(),
            })?,
        );
        ranges.insert(listener.name.clone(), Arc::new(range));
    }
    let upstream = Arc::new(Upstream::new(Arc::clone(&cluster), identities, maps));
    Ok((
        upstream,
        GatewayPlan {
            cluster,
            ranges,
            sni,
            bind_ip,
        },
    ))
}

impl GatewayPlan {
    /// The node names of `listener`, when it routes by SNI.
    pub fn sni_domain(&self, listener: &str) -> Option<&SniDomain> {
        self.sni.get(listener)
    }

    /// Learns the cluster (a failure is logged: the gateway serves, answering retriable
    /// errors, and keeps trying) and keeps following it.
    pub async fn start(&self, upstream: &Upstream) {
        match self.cluster.refresh().await {
            Ok(map) => {
                tracing::info!(nodes = ?map.nodes.keys().collect::<Vec<_>>(), "upstream cluster found");
                upstream.learn_versions().await;
            }
            Err(e) => tracing::error!(
                "the upstream cluster cannot be reached yet (clients get retriable errors; retrying): {e}"
            ),
        }
        self.cluster.spawn_refresher();
    }
}

/// The node ports of every listener, following the upstream's nodes; none in broker mode.
pub fn node_ports(
    broker: &crate::broker::Broker,
    listeners: &[Listener],
) -> Vec<(ListenerMeta, NodePortListeners)> {
    let Some(plan) = &broker.gateway else {
        return Vec::new();
    };
    listeners
        .iter()
        .filter_map(|l| {
            let range = plan.ranges.get(&l.name)?;
            let ports =
                NodePortListeners::start(Arc::clone(range), plan.bind_ip, node_ids(&plan.cluster));
            Some((l.meta(), ports))
        })
        .collect()
}

/// The upstream's node ids as they change.
fn node_ids(cluster: &Arc<UpstreamCluster>) -> watch::Receiver<BTreeMap<i32, ()>> {
    let mut nodes = cluster.subscribe();
    let ids = |nodes: &watch::Receiver<Arc<crate::upstream::NodeMap>>| -> BTreeMap<i32, ()> {
        nodes.borrow().nodes.keys().map(|id| (*id, ())).collect()
    };
    let (tx, rx) = watch::channel(ids(&nodes));
    tokio::spawn(async move {
        while nodes.changed().await.is_ok() {
            if tx.send(ids(&nodes)).is_err() {
                return;
            }
        }
    });
    rx
}

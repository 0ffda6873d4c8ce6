//! What `palisade config check` learns about the upstream: it connects as `serve` would (TLS,
//! the service account's login), reads the cluster's nodes and asks each for its API versions.

use super::cluster::{Node, UpstreamCluster};
use super::error::UpstreamError;
use super::identity::{IdentityError, UpstreamIdentities};
use super::settings::GatewaySection;
use super::tls::UpstreamTlsError;
use super::versions::ApiVersionRanges;

/// Why the upstream could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Identity(#[from] IdentityError),
    #[error("gateway tls: {0}")]
    Tls(#[from] UpstreamTlsError),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
}

/// One node of the upstream and what it answered.
#[derive(Debug)]
pub struct NodeReport {
    pub node: Node,
    /// Its API versions once connected and logged in, or why that failed.
    pub versions: Result<ApiVersionRanges, String>,
}

/// The upstream as `config check` found it.
#[derive(Debug)]
pub struct ProbeReport {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub nodes: Vec<NodeReport>,
    /// Principals with their own upstream identity in the identity map.
    pub mapped_principals: usize,
}

impl ProbeReport {
    /// Whether every node was reached and logged in to.
    pub fn all_reachable(&self) -> bool {
        !self.nodes.is_empty() && self.nodes.iter().all(|n| n.versions.is_ok())
    }
}

/// Connects to the upstream `section` describes and reports its nodes and versions.
pub async fn probe(section: &GatewaySection) -> Result<ProbeReport, ProbeError> {
    let identities = UpstreamIdentities::load(section)?;
    let cluster = UpstreamCluster::from_settings(section, &identities)?;
    let map = cluster.refresh().await?;
    let mut nodes = Vec::new();
    for node in map.nodes.values() {
        let versions = match cluster.connection(node.id).await {
            Ok(conn) => Ok(conn.versions().clone()),
            Err(e) => Err(e.to_string()),
        };
        nodes.push(NodeReport {
            node: node.clone(),
            versions,
        });
    }
    Ok(ProbeReport {
        cluster_id: map.cluster_id.clone(),
        controller_id: map.controller_id,
        nodes,
        mapped_principals: identities.mapped_count(),
    })
}

//! The gateway's API table: what it serves in front of the upstream, intersected with what
//! the upstream offers and what the address rewriter understands
//! ([`crate::gateway::api_versions`]). Before any upstream broker has answered, the gateway's
//! own table (capped by the rewriter) stands; each new upstream connection refreshes it.

use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use parking_lot::RwLock;

use crate::gateway::api_versions::gateway_api_versions;
use crate::gateway::rewrite::{version_caps, NodeEndpoints};
use crate::protocol::apis::{ApiEntry, APIS, TRANSACTION_APIS};
use crate::upstream::ApiVersionRanges;

/// APIs the layers in front answer themselves in gateway mode: the upstream never sees them.
const ANSWERED_IN_FRONT: &[ApiKey] = &[
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeClientQuotas,
    ApiKey::AlterClientQuotas,
];

/// The table the router and ApiVersions read; replaced whole.
pub(super) struct GatewayApis {
    table: RwLock<Arc<[ApiEntry]>>,
}

impl GatewayApis {
    /// The gateway's own table, capped by the rewriter, until the upstream is heard.
    pub(super) fn new() -> Self {
        let caps = version_caps(NodeEndpoints::Rewrite);
        let table: Vec<ApiEntry> = served()
            .map(|e| match caps.iter().find(|(k, _)| *k == e.key) {
                Some(&(_, cap)) => ApiEntry {
                    max: e.max.min(cap),
                    ..e
                },
                None => e,
            })
            .filter(|e| e.min <= e.max)
            .collect();
        GatewayApis {
            table: RwLock::new(Arc::from(table)),
        }
    }

    pub(super) fn get(&self) -> Arc<[ApiEntry]> {
        Arc::clone(&self.table.read())
    }

    /// Intersects with what an upstream broker offers.
    pub(super) fn learn(&self, upstream: &ApiVersionRanges) {
        let response = ApiVersionsResponse::default().with_api_keys(
            upstream
                .iter()
                .map(|(key, range)| {
                    ApiVersion::default()
                        .with_api_key(key)
                        .with_min_version(range.min)
                        .with_max_version(range.max)
                })
                .collect(),
        );
        let Ok(ranges) = gateway_api_versions(
            served().map(|e| (e.key, e.min, e.max)),
            ANSWERED_IN_FRONT,
            &response,
            &version_caps(NodeEndpoints::Rewrite),
        ) else {
            return;
        };
        let table: Vec<ApiEntry> = ranges
            .into_iter()
            .map(|r| ApiEntry {
                key: r.key,
                min: r.min,
                max: r.max,
            })
            .collect();
        let mut current = self.table.write();
        if current[..] != table[..] {
            *current = Arc::from(table);
        }
    }
}

/// Every API the gateway serves: the broker's, and transactions, which the upstream's
/// coordinators run.
fn served() -> impl Iterator<Item = ApiEntry> {
    APIS.iter().chain(TRANSACTION_APIS).copied()
}

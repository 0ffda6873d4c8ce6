//! What the gateway advertises in ApiVersions: what it serves, what the upstream offers, and
//! what its address rewriting understands, all three at once.
//!
//! A request is forwarded at the version the client chose, so every advertised version must
//! be one the gateway decodes and enforces (its own table), one the upstream accepts (its
//! ApiVersions answer), and, for responses that carry broker addresses, one the rewriter
//! knows ([`rewrite::version_caps`]). APIs whose responses carry addresses the rewriter does
//! not handle are never advertised ([`rewrite::NOT_REWRITTEN`]), whatever the tables say.
//!
//! APIs the gateway answers itself (ApiVersions, SASL, and whatever the caller lists, such as
//! the ACL and SCRAM credential APIs) keep the gateway's own range: the upstream never sees
//! them, so its range does not matter.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::rewrite;

/// One API and its version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// APIs a gateway always answers itself, never forwarding them.
pub const ALWAYS_LOCAL: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
];

/// The upstream's ApiVersions answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiVersionsError {
    #[error("upstream answered ApiVersions with error code {code}")]
    Upstream { code: i16 },
}

/// The ranges the gateway advertises, in the order of `served`.
///
/// - `served`: what the gateway itself serves (the broker's API table);
/// - `local`: APIs answered by the gateway itself (added to [`ALWAYS_LOCAL`]);
/// - `upstream`: the upstream's ApiVersions answer;
/// - `caps`: the highest version of each address-carrying API the rewriter supports
///   ([`rewrite::version_caps`]).
///
/// An API missing upstream, or whose ranges do not overlap, is left out. An upstream range
/// listed twice counts as the narrower of the two; an upstream range with `min > max` as
/// absent.
pub fn gateway_api_versions(
    served: impl IntoIterator<Item = (ApiKey, i16, i16)>,
    local: &[ApiKey],
    upstream: &ApiVersionsResponse,
    caps: &[(ApiKey, i16)],
) -> Result<Vec<ApiRange>, ApiVersionsError> {
    if upstream.error_code != 0 {
        return Err(ApiVersionsError::Upstream {
            code: upstream.error_code,
        });
    }
    let mut out = Vec::new();
    for (key, min, max) in served {
        if rewrite::NOT_REWRITTEN.contains(&key) {
            continue;
        }
        let (mut min, mut max) = (min, max);
        if !ALWAYS_LOCAL.contains(&key) && !local.contains(&key) {
            let Some((up_min, up_max)) = upstream_range(upstream, key) else {
                continue;
            };
            min = min.max(up_min);
            max = max.min(up_max);
        }
        if let Some(&(_, cap)) = caps.iter().find(|(k, _)| *k == key) {
            max = max.min(cap);
        }
        if min <= max {
            out.push(ApiRange { key, min, max });
        }
    }
    Ok(out)
}

/// The upstream's range for `key`: the intersection of every entry naming it.
fn upstream_range(upstream: &ApiVersionsResponse, key: ApiKey) -> Option<(i16, i16)> {
    let mut range: Option<(i16, i16)> = None;
    for entry in upstream.api_keys.iter().filter(|e| e.api_key == key as i16) {
        let (min, max) = range.unwrap_or((entry.min_version, entry.max_version));
        range = Some((min.max(entry.min_version), max.min(entry.max_version)));
    }
    range.filter(|(min, max)| min <= max)
}

/// The ranges as ApiVersions answer entries.
pub fn to_api_versions(ranges: &[ApiRange]) -> Vec<ApiVersion> {
    ranges
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect()
}

#[cfg(test)]
#[path = "api_versions_tests.rs"]
mod tests;

//! [`ApiVersionRanges`]: what an upstream broker said it accepts in ApiVersions.

use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

/// Per API key, the versions one upstream broker accepts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiVersionRanges(BTreeMap<i16, VersionRange>);

impl ApiVersionRanges {
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        ApiVersionRanges(
            response
                .api_keys
                .iter()
                .map(|k| {
                    (
                        k.api_key,
                        VersionRange {
                            min: k.min_version,
                            max: k.max_version,
                        },
                    )
                })
                .collect(),
        )
    }

    /// The upstream's range for `api`, if it offers the API at all.
    pub fn get(&self, api: ApiKey) -> Option<VersionRange> {
        self.0.get(&(api as i16)).copied()
    }

    pub fn supports(&self, api: ApiKey, version: i16) -> bool {
        self.get(api)
            .is_some_and(|r| (r.min..=r.max).contains(&version))
    }

    /// The highest version both the upstream and `ours` accept.
    pub fn highest_common(&self, api: ApiKey, ours: VersionRange) -> Option<i16> {
        let theirs = self.get(api)?;
        let max = theirs.max.min(ours.max);
        (max >= theirs.min.max(ours.min)).then_some(max)
    }

    /// Every (api key, range), by key.
    pub fn iter(&self) -> impl Iterator<Item = (i16, VersionRange)> + '_ {
        self.0.iter().map(|(k, r)| (*k, *r))
    }

    /// `min-max`, or `none` when the API is not offered.
    pub fn describe(&self, api: ApiKey) -> String {
        self.get(api)
            .map_or_else(|| "none".to_string(), |r| format!("v{}-v{}", r.min, r.max))
    }

    /// Transactions need InitProducerId, AddPartitionsToTxn and EndTxn; the missing ones.
    pub fn missing_for_transactions(&self) -> Vec<ApiKey> {
        [
            ApiKey::InitProducerId,
            ApiKey::AddPartitionsToTxn,
            ApiKey::AddOffsetsToTxn,
            ApiKey::EndTxn,
            ApiKey::TxnOffsetCommit,
        ]
        .into_iter()
        .filter(|api| self.get(*api).is_none())
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    #[test]
    fn ranges_intersect_and_transactions_need_every_api() {
        let response = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::Metadata as i16)
                .with_min_version(4)
                .with_max_version(12),
            ApiVersion::default()
                .with_api_key(ApiKey::InitProducerId as i16)
                .with_min_version(0)
                .with_max_version(5),
        ]);
        let r = ApiVersionRanges::from_response(&response);
        assert!(r.supports(ApiKey::Metadata, 4) && !r.supports(ApiKey::Metadata, 3));
        assert!(!r.supports(ApiKey::Produce, 9));
        assert_eq!(
            r.highest_common(ApiKey::Metadata, VersionRange { min: 0, max: 9 }),
            Some(9)
        );
        assert_eq!(
            r.highest_common(ApiKey::Metadata, VersionRange { min: 0, max: 3 }),
            None
        );
        assert_eq!(r.describe(ApiKey::Metadata), "v4-v12");
        assert_eq!(r.describe(ApiKey::Fetch), "none");
        assert_eq!(
            r.missing_for_transactions(),
            vec![
                ApiKey::AddPartitionsToTxn,
                ApiKey::AddOffsetsToTxn,
                ApiKey::EndTxn,
                ApiKey::TxnOffsetCommit
            ]
        );
    }
}

use super::*;
use crate::gateway::rewrite::{version_caps, NodeEndpoints};

fn upstream(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        ranges
            .iter()
            .map(|&(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

fn range(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { key, min, max }
}

fn find(ranges: &[ApiRange], key: ApiKey) -> Option<(i16, i16)> {
    ranges.iter().find(|r| r.key == key).map(|r| (r.min, r.max))
}

#[test]
fn advertised_ranges_are_the_intersection() {
    let served = [
        (ApiKey::Produce, 3, 9),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::ListOffsets, 1, 8),
        (ApiKey::JoinGroup, 0, 9),
    ];
    let up = upstream(&[
        (ApiKey::Produce, 0, 11),
        (ApiKey::Metadata, 4, 13),
        (ApiKey::ListOffsets, 2, 6),
        (ApiKey::JoinGroup, 0, 9),
    ]);
    let got =
        gateway_api_versions(served, &[], &up, &version_caps(NodeEndpoints::Rewrite)).unwrap();
    assert_eq!(
        got,
        vec![
            range(ApiKey::Produce, 3, 9),
            range(ApiKey::Metadata, 4, 12),
            range(ApiKey::ListOffsets, 2, 6),
            range(ApiKey::JoinGroup, 0, 9),
        ]
    );
}

#[test]
fn apis_missing_upstream_or_without_overlap_are_left_out() {
    let served = [
        (ApiKey::Produce, 3, 9),
        (ApiKey::DeleteRecords, 0, 2),
        (ApiKey::OffsetCommit, 2, 5),
    ];
    let up = upstream(&[(ApiKey::Produce, 3, 13), (ApiKey::OffsetCommit, 6, 9)]);
    let got = gateway_api_versions(served, &[], &up, &[]).unwrap();
    assert_eq!(got, vec![range(ApiKey::Produce, 3, 9)]);
}

#[test]
fn local_apis_keep_the_gateways_range() {
    let served = [
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::SaslHandshake, 0, 1),
        (ApiKey::SaslAuthenticate, 0, 2),
        (ApiKey::CreateAcls, 1, 3),
        (ApiKey::DescribeAcls, 1, 3),
    ];
    // The upstream offers nothing of these, and a narrower ApiVersions.
    let up = upstream(&[(ApiKey::ApiVersions, 0, 1), (ApiKey::DescribeAcls, 2, 2)]);
    let got = gateway_api_versions(served, &[ApiKey::CreateAcls], &up, &[]).unwrap();
    assert_eq!(
        got,
        vec![
            range(ApiKey::ApiVersions, 0, 3),
            range(ApiKey::SaslHandshake, 0, 1),
            range(ApiKey::SaslAuthenticate, 0, 2),
            range(ApiKey::CreateAcls, 1, 3),
            range(ApiKey::DescribeAcls, 2, 2),
        ]
    );
}

#[test]
fn versions_above_what_the_rewriter_knows_are_capped() {
    let served = [
        (ApiKey::Produce, 3, 13),
        (ApiKey::Fetch, 4, 18),
        (ApiKey::Metadata, 0, 13),
    ];
    let up = upstream(&[
        (ApiKey::Produce, 0, 13),
        (ApiKey::Fetch, 0, 18),
        (ApiKey::Metadata, 0, 13),
    ]);
    let full =
        gateway_api_versions(served, &[], &up, &version_caps(NodeEndpoints::Rewrite)).unwrap();
    assert_eq!(find(&full, ApiKey::Produce), Some((3, 13)));
    assert_eq!(find(&full, ApiKey::Fetch), Some((4, 18)));
    let capped =
        gateway_api_versions(served, &[], &up, &version_caps(NodeEndpoints::CapBelow)).unwrap();
    assert_eq!(find(&capped, ApiKey::Produce), Some((3, 9)));
    assert_eq!(find(&capped, ApiKey::Fetch), Some((4, 15)));
    assert_eq!(find(&capped, ApiKey::Metadata), Some((0, 13)));
    // A cap below the served minimum leaves the API out rather than advertising nothing valid.
    let below = gateway_api_versions(
        [(ApiKey::Fetch, 16, 18)],
        &[],
        &up,
        &version_caps(NodeEndpoints::CapBelow),
    )
    .unwrap();
    assert!(below.is_empty());
}

#[test]
fn apis_with_addresses_the_rewriter_does_not_know_are_never_advertised() {
    let served = [
        (ApiKey::ShareFetch, 1, 1),
        (ApiKey::DescribeQuorum, 0, 2),
        (ApiKey::Metadata, 0, 12),
    ];
    let up = upstream(&[
        (ApiKey::ShareFetch, 1, 1),
        (ApiKey::DescribeQuorum, 0, 2),
        (ApiKey::Metadata, 0, 13),
    ]);
    let local = [ApiKey::DescribeQuorum];
    let got = gateway_api_versions(served, &local, &up, &[]).unwrap();
    assert_eq!(got, vec![range(ApiKey::Metadata, 0, 12)]);
}

#[test]
fn odd_upstream_answers_fail_closed() {
    let up = upstream(&[
        (ApiKey::Produce, 3, 11),
        (ApiKey::Produce, 5, 13),
        (ApiKey::Fetch, 9, 4),
    ]);
    let got = gateway_api_versions(
        [(ApiKey::Produce, 3, 13), (ApiKey::Fetch, 4, 18)],
        &[],
        &up,
        &[],
    )
    .unwrap();
    assert_eq!(got, vec![range(ApiKey::Produce, 5, 11)]);

    let failed = ApiVersionsResponse::default().with_error_code(35);
    assert_eq!(
        gateway_api_versions([(ApiKey::Produce, 3, 9)], &[], &failed, &[]),
        Err(ApiVersionsError::Upstream { code: 35 })
    );
}

#[test]
fn ranges_become_api_versions_entries() {
    let entries = to_api_versions(&[range(ApiKey::Fetch, 4, 15), range(ApiKey::Metadata, 0, 12)]);
    let got: Vec<(i16, i16, i16)> = entries
        .iter()
        .map(|e| (e.api_key, e.min_version, e.max_version))
        .collect();
    assert_eq!(got, vec![(1, 4, 15), (3, 0, 12)]);
}

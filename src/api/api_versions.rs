//! ApiVersions: generated from the backend's API table (the broker's, or the gateway's
//! intersection with the upstream's), the same table the router accepts requests by.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::protocol::apis::ApiEntry;

fn api_keys(table: &[ApiEntry]) -> Vec<ApiVersion> {
    table
        .iter()
        .map(|e| {
            ApiVersion::default()
                .with_api_key(e.key as i16)
                .with_min_version(e.min)
                .with_max_version(e.max)
        })
        .collect()
}

pub fn handle(table: &[ApiEntry], _req: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys(table))
}

/// The answer to an ApiVersions request of a version we do not know, encoded as v0.
pub fn unsupported_version(table: &[ApiEntry]) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys(table))
}

//! ApiVersions: which APIs and versions this broker answers.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::SUPPORTED_APIS;
use super::Versions;
use crate::broker::Broker;

/// The ApiVersions versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 4);

/// Answers with the supported API table.
pub async fn handle(_broker: Arc<Broker>, _request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_table())
}

/// The v0 answer to an ApiVersions request of a version we do not know (KIP-511).
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_table())
}

fn api_table() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, versions)| {
            ApiVersion::default().with_api_key(*key as i16).with_min_version(versions.min).with_max_version(versions.max)
        })
        .collect()
}

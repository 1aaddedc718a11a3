//! One module per Kafka API behind a thin dispatcher. A handler is a function from
//! (broker, decoded request, version) to the decoded response.

mod admin;
pub mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod fetch;
mod find_coordinator;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod produce;

use std::sync::Arc;

use bytes::BytesMut;
use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::ApiKey;

use crate::broker::{Broker, Endpoint};
use crate::error::ConnectionError;
use crate::protocol::{encode_response, Request};

/// Every API this broker implements, with the version range it answers. This is
/// exactly what ApiVersions advertises; each entry has wire-level tests.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
];

/// The supported version range of an API, if it is implemented.
pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(k, _, _)| *k == api_key).map(|(_, min, max)| (*min, *max))
}

/// The response of one request: an encoded frame, or nothing (produce with acks=0).
pub type Reply = Result<Option<BytesMut>, ConnectionError>;

/// Decodes a request and starts its handler. The returned future yields the
/// encoded response; work that must happen in request order (produce appends)
/// is done before this returns.
pub fn dispatch(
    broker: &Arc<Broker>,
    endpoint: &Arc<Endpoint>,
    mut request: Request,
) -> Result<BoxFuture<'static, Reply>, ConnectionError> {
    let (api_key, version, correlation_id) = (request.api_key, request.version, request.correlation_id);
    let in_range = supported_versions(api_key).map(|(min, max)| (min..=max).contains(&version));
    if api_key == ApiKey::ApiVersions && in_range != Some(true) {
        // KIP-511: answer an unknown ApiVersions version with a v0 body.
        let body = api_versions::unsupported_version_response();
        return Ok(async move { encode_response(api_key, 0, correlation_id, &body).map(Some) }.boxed());
    }
    if in_range != Some(true) {
        return Err(ConnectionError::UnsupportedVersion { api_key: api_key as i16, version });
    }

    macro_rules! route {
        ($handler:path) => {{
            let body = request.decode()?;
            let response = $handler(broker.clone(), body, version);
            async move { encode_response(api_key, version, correlation_id, &response.await).map(Some) }.boxed()
        }};
        // Handlers that name this broker's address answer with the listener's one.
        ($handler:path, endpoint) => {{
            let body = request.decode()?;
            let response = $handler(broker.clone(), endpoint.clone(), body, version);
            async move { encode_response(api_key, version, correlation_id, &response.await).map(Some) }.boxed()
        }};
    }

    Ok(match api_key {
        ApiKey::Produce => {
            let body: kafka_protocol::messages::ProduceRequest = request.decode()?;
            let acks = body.acks;
            let response = produce::handle(broker, body, version);
            async move {
                let response = response.await;
                if acks == 0 {
                    return Ok(None);
                }
                encode_response(api_key, version, correlation_id, &response).map(Some)
            }
            .boxed()
        }
        ApiKey::Fetch => route!(fetch::handle),
        ApiKey::ListOffsets => route!(list_offsets::handle),
        ApiKey::Metadata => route!(metadata::handle, endpoint),
        ApiKey::FindCoordinator => route!(find_coordinator::handle, endpoint),
        ApiKey::ApiVersions => route!(api_versions::handle),
        ApiKey::CreateTopics => route!(create_topics::handle),
        ApiKey::DeleteTopics => route!(delete_topics::handle),
        ApiKey::InitProducerId => route!(init_producer_id::handle),
        ApiKey::DescribeConfigs => route!(describe_configs::handle),
        ApiKey::CreatePartitions => route!(create_partitions::handle),
        ApiKey::DescribeCluster => route!(describe_cluster::handle, endpoint),
        other => return Err(ConnectionError::UnsupportedVersion { api_key: other as i16, version }),
    })
}

/// The error for a request's `current_leader_epoch` that does not match ours
/// (-1 means the client did not say).
fn leader_epoch_error(requested: i32, current: i32) -> Option<i16> {
    use kafka_protocol::error::ResponseError;
    match requested {
        -1 => None,
        r if r < current => Some(ResponseError::FencedLeaderEpoch.code()),
        r if r > current => Some(ResponseError::UnknownLeaderEpoch.code()),
        _ => None,
    }
}

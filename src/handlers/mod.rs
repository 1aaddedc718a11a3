//! One module per Kafka API behind a thin dispatcher. A handler is a function from
//! (broker, decoded request, version) to the decoded response.

mod admin;
mod alter_configs;
pub mod api_versions;
mod create_partitions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_groups;
mod describe_cluster;
mod describe_configs;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod sync_group;

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
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 0),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::AlterConfigs, 0, 2),
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

    // Group APIs that record who the member is (client id).
    macro_rules! route_client {
        ($handler:path) => {{
            let client = crate::coordinator::ClientInfo {
                client_id: request.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                client_host: String::new(),
            };
            let body = request.decode()?;
            let response = $handler(broker.clone(), body, version, client);
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
        ApiKey::OffsetCommit => route!(offset_commit::handle),
        ApiKey::OffsetFetch => route!(offset_fetch::handle),
        ApiKey::JoinGroup => route_client!(join_group::handle),
        ApiKey::Heartbeat => route!(heartbeat::handle),
        ApiKey::LeaveGroup => route!(leave_group::handle),
        ApiKey::SyncGroup => route!(sync_group::handle),
        ApiKey::DescribeGroups => route!(describe_groups::handle),
        ApiKey::ListGroups => route!(list_groups::handle),
        ApiKey::DeleteGroups => route!(delete_groups::handle),
        ApiKey::OffsetDelete => route!(offset_delete::handle),
        ApiKey::ConsumerGroupHeartbeat => route_client!(consumer_group_heartbeat::handle),
        ApiKey::ConsumerGroupDescribe => route!(consumer_group_describe::handle),
        ApiKey::IncrementalAlterConfigs => route!(incremental_alter_configs::handle),
        ApiKey::DeleteRecords => route!(delete_records::handle),
        ApiKey::AlterConfigs => route!(alter_configs::handle),
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

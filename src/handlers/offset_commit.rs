//! OffsetCommit: commits offsets for a group member (generation or, for KIP-848
//! groups, member epoch checked) or for a client outside group management.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::error::KafkaError;
use super::{auth, Session, Versions};
use crate::security::acl::{Operation, ResourceType};

use crate::broker::Broker;
use crate::coordinator::{CommitParams, PartitionCommit};

/// The OffsetCommit versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(2, 9);

/// Commits the offsets the client may commit (GROUP READ, and TOPIC READ on each
/// topic, as Kafka); answers once they are durable.
pub async fn handle(broker: Arc<Broker>, session: Session, mut request: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    if let Err(e) = auth::check(&broker, &session, Operation::Read, ResourceType::Group, request.group_id.as_str()) {
        return OffsetCommitResponse::default().with_topics(every_partition(&request.topics, e.code()));
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| auth::allowed(&broker, &session, Operation::Read, ResourceType::Topic, t.name.0.as_str()));
    request.topics = allowed;
    let mut response = commit(broker, request, version).await;
    response.topics.extend(every_partition(&denied, crate::security::acl::AuthorizationError::Topic.code()));
    response
}

/// The answer giving every partition of `topics` the error `code`.
fn every_partition(topics: &[OffsetCommitRequestTopic], code: i16) -> Vec<OffsetCommitResponseTopic> {
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code))
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect()
}

async fn commit(broker: Arc<Broker>, request: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let names: Vec<_> = request.topics.iter().map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>())).collect();
    let params = CommitParams {
        group_id: request.group_id.to_string(),
        generation_or_epoch: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|s| s.to_string()),
        retention_ms: if version <= 4 { request.retention_time_ms } else { -1 },
        api_version: version,
        topics: request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionCommit {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                        metadata: p.committed_metadata.map(|m| m.to_string()),
                    })
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect(),
    };
    let outcome = broker.groups().commit_offsets(broker.topic_lookup(), params);
    let outcome = match outcome {
        Ok(results) => match broker.groups().wait_durable().await {
            Ok(()) => Ok(results),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let topics = match outcome {
        Ok(results) => results
            .into_iter()
            .zip(names)
            .map(|((_, partitions), (name, _))| {
                let partitions = partitions
                    .into_iter()
                    .map(|(p, r)| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(r.err().map(|e| e.code()).unwrap_or(0))
                    })
                    .collect();
                OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
            })
            .collect(),
        // A group-level error applies to every partition.
        Err(e) => names
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| OffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(e.code()))
                    .collect();
                OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
            })
            .collect(),
    };
    OffsetCommitResponse::default().with_topics(topics)
}

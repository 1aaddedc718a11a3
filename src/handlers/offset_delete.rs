//! OffsetDelete: removes a group's offsets of topics its members do not consume.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;

/// The OffsetDelete versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 0);

/// Deletes the offsets.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: OffsetDeleteRequest, _version: i16) -> OffsetDeleteResponse {
    use crate::security::acl::{Operation, ResourceType};
    if let Err(e) = super::auth::check(&broker, &session, Operation::Delete, ResourceType::Group, request.group_id.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let wanted: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.iter().map(|p| p.partition_index).collect()))
        .collect();
    match broker.groups().delete_offsets(&request.group_id, &wanted) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(results) => {
            let topics = results
                .into_iter()
                .zip(request.topics)
                .map(|((_, partitions), t)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|(p, r)| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(r.err().map(|e| e.code()).unwrap_or(0))
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}

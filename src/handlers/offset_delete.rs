//! OffsetDelete: removes a group's offsets of topics its members do not consume.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::error::KafkaError;
use super::{auth, Versions};
use crate::broker::{Broker, TopicRef};
use crate::security::acl::{AuthorizationError, Operation, ResourceType};

/// The OffsetDelete versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 0);

/// Deletes the offsets, as Kafka authorizes it: GROUP DELETE for the request, then
/// TOPIC READ per topic (TOPIC_AUTHORIZATION_FAILED in each of its partitions);
/// partitions of unknown topics answer UNKNOWN_TOPIC_OR_PARTITION. Only the rest
/// reach the coordinator.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: OffsetDeleteRequest, _version: i16) -> OffsetDeleteResponse {
    if let Err(e) = auth::check(&broker, &session, Operation::Delete, ResourceType::Group, request.group_id.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    // Per requested partition: an error decided here, or None to ask the coordinator.
    let mut decided: Vec<Vec<(i32, Option<i16>)>> = Vec::with_capacity(request.topics.len());
    let mut wanted: Vec<(String, Vec<i32>)> = Vec::new();
    for t in &request.topics {
        let name = t.name.0.as_str();
        let readable = auth::allowed(&broker, &session, Operation::Read, ResourceType::Topic, name);
        let count = broker.topic(TopicRef::Name(name)).map(|topic| topic.partition_count()).unwrap_or(0);
        let mut asked = Vec::new();
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let p = p.partition_index;
                if !readable {
                    (p, Some(AuthorizationError::Topic.code()))
                } else if p < 0 || p >= count {
                    (p, Some(ResponseError::UnknownTopicOrPartition.code()))
                } else {
                    asked.push(p);
                    (p, None)
                }
            })
            .collect();
        decided.push(partitions);
        if !asked.is_empty() {
            wanted.push((name.to_string(), asked));
        }
    }
    let results = match broker.groups().delete_offsets(&request.group_id, &wanted) {
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(results) => results,
    };
    let mut outcome: HashMap<(String, i32), i16> = HashMap::new();
    for (topic, partitions) in results {
        for (p, r) in partitions {
            outcome.insert((topic.clone(), p), r.err().map(|e| e.code()).unwrap_or(0));
        }
    }
    let topics = request
        .topics
        .into_iter()
        .zip(decided)
        .map(|(t, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, error)| {
                    let code = error.unwrap_or_else(|| outcome.get(&(t.name.0.to_string(), p)).copied().unwrap_or(0));
                    OffsetDeleteResponsePartition::default().with_partition_index(p).with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

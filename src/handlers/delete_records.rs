//! DeleteRecords: move partitions' log start offsets forward, deleting the records below.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::error::KafkaError;
use super::Versions;
use crate::broker::{Broker, BrokerError, TopicRef};

/// The DeleteRecords versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 2);

/// Deletes the records before each partition's requested offset (-1: the high watermark)
/// and answers the new low watermark (log start offset).
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            // Deleting records needs TOPIC DELETE (Kafka).
            let delete = crate::security::acl::Operation::Delete;
            let topic = super::auth::topic(&broker, &session, delete, TopicRef::Name(t.name.0.as_str()));
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    let outcome = topic
                        .as_ref()
                        .map_err(BrokerError::clone_lookup)
                        .and_then(|t| broker.partition(t, p.partition_index))
                        .and_then(|partition| partition.delete_records(p.offset));
                    match outcome {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(e) => result.with_low_watermark(-1).with_error_code(e.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

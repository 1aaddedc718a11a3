//! DeleteRecords: move partitions' log start offsets forward, deleting the records below.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;
use crate::error::StorageError;

/// Deletes the records before each partition's requested offset (-1: the high watermark)
/// and answers the new low watermark (log start offset).
pub async fn handle(broker: Arc<Broker>, request: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    let outcome = match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        Some(log) => log.delete_records(p.offset),
                        None => Err(StorageError::UnknownTopicOrPartition),
                    };
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

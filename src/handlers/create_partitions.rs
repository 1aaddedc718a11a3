//! CreatePartitions: grow a topic's partition count.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::admin::error_message;
use super::Versions;
use super::error::KafkaError;
use crate::broker::Broker;
use crate::error::StorageError;

/// The CreatePartitions versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 3);

/// Grows each topic to its requested count.
pub async fn handle(broker: Arc<Broker>, request: CreatePartitionsRequest, _version: i16) -> CreatePartitionsResponse {
    let node = broker.node_id();
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let bad_assignment = t
                .assignments
                .as_ref()
                .map(|a| a.iter().any(|p| p.broker_ids.iter().any(|b| b.0 != node)))
                .unwrap_or(false);
            let outcome = if bad_assignment {
                Err(StorageError::InvalidReplicaAssignment(format!("only broker {node} exists")).into())
            } else {
                broker.add_partitions(t.name.0.as_str(), t.count, request.validate_only)
            };
            let result = CreatePartitionsTopicResult::default().with_name(t.name);
            match outcome {
                Ok(()) => result,
                Err(e) => result.with_error_code(e.code()).with_error_message(error_message(&e)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

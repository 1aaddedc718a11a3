//! CreatePartitions: grow a topic's partition count.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::admin::error_message;
use super::error::KafkaError;
use super::Versions;
use crate::broker::{Broker, BrokerError, PartitionBudget, TopicRef};
use crate::error::StorageError;

/// The CreatePartitions versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 3);

/// Grows each topic to its requested count, on a blocking thread (new partitions may
/// need new column families, which can take long).
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: CreatePartitionsRequest, _version: i16) -> CreatePartitionsResponse {
    let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
    // Adding partitions needs TOPIC ALTER (Kafka).
    use crate::security::acl::{Operation, ResourceType};
    let denied: std::collections::HashSet<String> = names
        .iter()
        .map(|n| n.0.to_string())
        .filter(|n| !super::auth::allowed(&broker, &session, Operation::Alter, ResourceType::Topic, n))
        .collect();
    match tokio::task::spawn_blocking(move || grow_all(&broker, request, &denied)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "CreatePartitions failed");
            let failed = |name| {
                CreatePartitionsTopicResult::default()
                    .with_name(name)
                    .with_error_code(kafka_protocol::error::ResponseError::UnknownServerError.code())
            };
            CreatePartitionsResponse::default().with_results(names.into_iter().map(failed).collect())
        }
    }
}

fn grow_all(broker: &Broker, request: CreatePartitionsRequest, denied: &std::collections::HashSet<String>) -> CreatePartitionsResponse {
    let node = broker.node_id();
    let mut budget = PartitionBudget::new(broker.config().max_partitions_per_request, "CreatePartitions");
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let bad_assignment = t
                .assignments
                .as_ref()
                .map(|a| a.iter().any(|p| p.broker_ids.iter().any(|b| b.0 != node)))
                .unwrap_or(false);
            let outcome = if denied.contains(t.name.0.as_str()) {
                Err(crate::security::acl::AuthorizationError::Topic.into())
            } else if bad_assignment {
                Err(StorageError::InvalidReplicaAssignment(format!("only broker {node} exists")).into())
            } else {
                grow(broker, t.name.0.as_str(), t.count, request.validate_only, &mut budget)
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

/// Grows one topic within the request's partition budget.
fn grow(broker: &Broker, name: &str, count: i32, validate_only: bool, budget: &mut PartitionBudget) -> Result<(), BrokerError> {
    let current = broker.topic(TopicRef::Name(name))?.partition_count();
    let adding = count.saturating_sub(current).max(0);
    budget.check(adding)?;
    if validate_only {
        // Topics validated before this one in the request count against the broker's cap.
        broker.check_partition_capacity(budget.used + adding as usize)?;
    }
    broker.add_partitions(name, count, validate_only)?;
    budget.used += adding as usize;
    Ok(())
}

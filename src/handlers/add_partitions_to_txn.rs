//! AddPartitionsToTxn (v0–v3, the client form): adds partitions to the producer's
//! transaction before it writes to them.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::error::{txn_code, KafkaError};
use super::{auth, Session, Versions};
use crate::broker::{Broker, TopicRef};
use crate::security::acl::{Operation, ResourceType};

/// The AddPartitionsToTxn versions this broker answers (each has wire-level tests).
/// v4+ (batched, broker to broker) is not offered.
pub const VERSIONS: Versions = Versions::new(0, 3);

/// Adds the partitions if every one of them exists and may be written; otherwise
/// none is added and the others answer OPERATION_NOT_ATTEMPTED (as Kafka).
pub async fn handle(broker: Arc<Broker>, session: Session, request: AddPartitionsToTxnRequest, version: i16) -> AddPartitionsToTxnResponse {
    let id = request.v3_and_below_transactional_id.0.as_str();
    let (pid, epoch) = (request.v3_and_below_producer_id.0, request.v3_and_below_producer_epoch);
    // Per partition: None (can be added) or the error that stops it.
    let mut checked: Vec<(AddPartitionsToTxnTopicResult, Vec<(i32, Option<i16>)>)> = Vec::new();
    let txn_denied = auth::check(&broker, &session, Operation::Write, ResourceType::TransactionalId, id).err().map(|e| e.code());
    for topic in &request.v3_and_below_topics {
        let lookup = auth::topic(&broker, &session, Operation::Write, TopicRef::Name(topic.name.0.as_str()));
        let partitions = topic
            .partitions
            .iter()
            .map(|&p| {
                let error = match &lookup {
                    Err(e) => Some(e.code()),
                    Ok(t) => broker.partition(t, p).err().map(|e| e.code()),
                };
                (p, txn_denied.or(error))
            })
            .collect();
        checked.push((AddPartitionsToTxnTopicResult::default().with_name(topic.name.clone()), partitions));
    }
    let any_failed = checked.iter().any(|(_, ps)| ps.iter().any(|(_, e)| e.is_some()));
    let outcome: Result<(), i16> = if any_failed {
        // The transaction's own errors (fencing, …) win over per-partition ones.
        match broker.txns().check_add(id, pid, epoch) {
            Err(e) => Err(txn_code(&e, version >= 2)),
            Ok(()) => Ok(()),
        }
    } else {
        let all: Vec<(String, i32)> = checked
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, _)| (t.name.0.to_string(), *p)))
            .collect();
        match broker.txns().add_partitions(id, pid, epoch, &all) {
            Ok(()) => match broker.txns().wait_durable().await {
                Ok(()) => Ok(()),
                Err(e) => Err(e.code()),
            },
            Err(e) => Err(txn_code(&e, version >= 2)),
        }
    };
    let results = checked
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, error)| {
                    let code = match (&outcome, error) {
                        (Err(code), _) => *code,
                        (Ok(()), Some(code)) => code,
                        (Ok(()), None) if any_failed => ResponseError::OperationNotAttempted.code(),
                        (Ok(()), None) => 0,
                    };
                    AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(code)
                })
                .collect();
            topic.with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

//! TxnOffsetCommit: offsets committed inside a transaction, held until it ends and
//! visible to OffsetFetch only once it commits. KIP-447 (v3+): the member id and
//! generation are checked against the group.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::error::{txn_code, KafkaError};
use super::{auth, Session, Versions};
use crate::broker::Broker;
use crate::coordinator::txn::PendingOffset;
use crate::coordinator::TxnCommitMember;
use crate::security::acl::{Operation, ResourceType};

/// The TxnOffsetCommit versions this broker answers (each has wire-level tests).
/// v5 (transactions v2, KIP-890) is not offered.
pub const VERSIONS: Versions = Versions::new(0, 4);

/// Holds the offsets in the transaction (TRANSACTIONAL_ID WRITE, GROUP READ and TOPIC
/// READ needed, as Kafka).
pub async fn handle(broker: Arc<Broker>, session: Session, request: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    let id = request.transactional_id.0.as_str();
    let group = request.group_id.0.as_str();
    let denied = auth::check(&broker, &session, Operation::Write, ResourceType::TransactionalId, id)
        .and_then(|()| auth::check(&broker, &session, Operation::Read, ResourceType::Group, group))
        .err()
        .map(|e| e.code());
    // Per offset: the error decided before the coordinator is asked (topic ACLs).
    let mut shape: Vec<(kafka_protocol::messages::TopicName, Vec<(i32, Option<i16>)>)> = Vec::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        let topic_denied = (!auth::allowed(&broker, &session, Operation::Read, ResourceType::Topic, topic.name.0.as_str()))
            .then(|| crate::security::acl::AuthorizationError::Topic.code());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let error = denied.or(topic_denied);
            if error.is_none() {
                offsets.push(PendingOffset {
                    group: group.to_string(),
                    topic: topic.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                });
            }
            partitions.push((p.partition_index, error));
        }
        shape.push((topic.name.clone(), partitions));
    }
    // KIP-447 fields exist from v3.
    let member = TxnCommitMember {
        member_id: if version >= 3 { request.member_id.as_str() } else { "" },
        instance_id: if version >= 3 { request.group_instance_id.as_ref().map(|s| s.as_str()) } else { None },
        generation: if version >= 3 { request.generation_id } else { -1 },
    };
    let outcome = if offsets.is_empty() {
        Ok(Vec::new())
    } else {
        match broker.txn_offset_commit(id, request.producer_id.0, request.producer_epoch, group, member, offsets) {
            Ok(results) => match broker.txns().wait_durable().await {
                Ok(()) => Ok(results),
                Err(e) => Err(e.code()),
            },
            // PRODUCER_FENCED exists from v3 (KIP-588).
            Err(crate::broker::BrokerError::Txn(e)) => Err(txn_code(&e, version >= 3)),
            Err(e) => Err(e.code()),
        }
    };
    let mut results = match &outcome {
        Ok(results) => results.iter().map(|r| r.as_ref().err().map_or(0, |e| e.code())).collect::<Vec<_>>().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let topics = shape
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, error)| {
                    let code = match (error, &outcome) {
                        (Some(code), _) => code,
                        (None, Err(code)) => *code,
                        (None, Ok(_)) => results.next().unwrap_or(0),
                    };
                    TxnOffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

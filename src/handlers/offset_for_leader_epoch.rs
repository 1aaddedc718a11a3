//! OffsetForLeaderEpoch (23): the end offset of a leader epoch, which consumers
//! (KIP-320) use to validate their position after a leader or metadata change, and
//! followers to find where their log diverges.
//!
//! Each partition is answered as Kafka's `Partition.lastOffsetForLeaderEpoch` does:
//! `current_leader_epoch` is checked first (older: FENCED_LEADER_EPOCH, newer:
//! UNKNOWN_LEADER_EPOCH, -1: not checked); then the answer is the largest epoch ≤ the
//! requested one with its end offset, or -1/-1 when that is undefined. The
//! `replica_id` (v3+: -1 consumer, -2 debugging tool, ≥ 0 a broker) changes nothing:
//! Kafka answers every caller from the leader's log, which is this broker's.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::error::KafkaError;
use super::Versions;
use crate::broker::{Broker, BrokerError, TopicRef};

/// The OffsetForLeaderEpoch versions this broker answers (each has wire-level
/// tests): what Kafka 4.x accepts; v0–v1 were removed (KIP-896).
pub const VERSIONS: Versions = Versions::new(2, 4);

/// Answers an offset-for-leader-epoch request.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: OffsetForLeaderEpochRequest, _version: i16) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            // Kafka: TOPIC DESCRIBE.
            let describe = crate::security::acl::Operation::Describe;
            let topic = super::auth::topic(&broker, &session, describe, TopicRef::Name(t.topic.0.as_str()));
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    let partition = match topic
                        .as_ref()
                        .map_err(BrokerError::clone_lookup)
                        .and_then(|t| broker.partition(t, p.partition))
                    {
                        Ok(partition) => partition,
                        Err(e) => return base.with_error_code(e.code()),
                    };
                    match partition.end_offset_for_leader_epoch(p.current_leader_epoch, p.leader_epoch) {
                        Ok(Some((epoch, end_offset))) => base.with_leader_epoch(epoch).with_end_offset(end_offset),
                        Ok(None) => base,
                        Err(e) => base.with_error_code(e.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

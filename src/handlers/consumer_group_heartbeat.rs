//! ConsumerGroupHeartbeat (KIP-848): join, heartbeat, reconcile and leave a consumer
//! group whose assignment the broker computes.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;
use crate::coordinator::{ClientInfo, ConsumerHeartbeat};

/// The ConsumerGroupHeartbeat versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 0);

/// Answers a consumer group heartbeat.
pub async fn handle(
    broker: Arc<Broker>,
    session: super::Session,
    request: ConsumerGroupHeartbeatRequest,
    _version: i16,
    client: ClientInfo,
) -> ConsumerGroupHeartbeatResponse {
    use crate::security::acl::{Operation, ResourceType};
    // A KIP-848 member needs GROUP READ (Kafka).
    if let Err(e) = super::auth::check(&broker, &session, Operation::Read, ResourceType::Group, request.group_id.as_str()) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string())));
    }
    let heartbeat = ConsumerHeartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request.subscribed_topic_names.map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        server_assignor: request.server_assignor.map(|s| s.to_string()),
        owned: request.topic_partitions.map(|tps| tps.into_iter().map(|tp| (tp.topic_id, tp.partitions)).collect()),
        client,
    };
    match broker.groups().consumer_heartbeat(broker.topic_lookup(), &request.group_id, heartbeat) {
        Ok(outcome) => {
            let assignment = outcome.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(topic_id, ps)| TopicPartitions::default().with_topic_id(topic_id).with_partitions(ps.into_iter().collect()))
                        .collect(),
                )
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_string(outcome.member_id)))
                .with_member_epoch(outcome.member_epoch)
                .with_heartbeat_interval_ms(outcome.heartbeat_interval_ms)
                .with_assignment(assignment)
        }
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}

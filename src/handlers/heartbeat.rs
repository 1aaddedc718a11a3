//! Heartbeat: keeps a classic group member's session alive; tells it to rejoin
//! during a rebalance.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;

/// The Heartbeat versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 4);

/// Answers a heartbeat.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    use crate::security::acl::{Operation, ResourceType};
    if let Err(e) = super::auth::check(&broker, &session, Operation::Read, ResourceType::Group, request.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(e.code());
    }
    let instance_id = request.group_instance_id.as_ref().map(|s| s.as_str());
    let result = broker.groups().heartbeat(&request.group_id, &request.member_id, instance_id, request.generation_id);
    HeartbeatResponse::default().with_error_code(result.err().map(|e| e.code()).unwrap_or(0))
}

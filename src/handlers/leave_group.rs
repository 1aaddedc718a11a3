//! LeaveGroup: one member (v0–2) or a batch of members, by member id or by
//! group.instance.id (v3+, KIP-345).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;

/// The LeaveGroup versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 5);

/// Removes the members from the group.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    use crate::security::acl::{Operation, ResourceType};
    if let Err(e) = super::auth::check(&broker, &session, Operation::Read, ResourceType::Group, request.group_id.as_str()) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let results = match broker.groups().leave_group(&request.group_id, &members) {
        Ok(results) => results,
        Err(e) => return LeaveGroupResponse::default().with_error_code(e.code()),
    };
    if version < 3 {
        let code = results.first().and_then(|r| r.as_ref().err()).map(|e| e.code()).unwrap_or(0);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = members
        .into_iter()
        .zip(results)
        .map(|((member_id, instance_id), result)| {
            MemberResponse::default()
                .with_member_id(StrBytes::from_string(member_id))
                .with_group_instance_id(instance_id.map(StrBytes::from_string))
                .with_error_code(result.err().map(|e| e.code()).unwrap_or(0))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

//! JoinGroup: joins a classic group; the response waits for the join phase of the
//! rebalance to complete (long poll), MEMBER_ID_REQUIRED first from v4 (KIP-394).

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::code_of;
use super::Versions;
use crate::broker::Broker;
use crate::coordinator::{ClientInfo, JoinOutcome, JoinParams};
use crate::error::GroupError;

/// The JoinGroup versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 9);

/// Joins the group; resolves when the member's join completes.
pub fn handle(
    broker: Arc<Broker>,
    session: super::Session,
    request: JoinGroupRequest,
    version: i16,
    client: ClientInfo,
) -> impl Future<Output = JoinGroupResponse> {
    use crate::security::acl::{Operation, ResourceType};
    let member_id = request.member_id.to_string();
    // Joining needs GROUP READ (Kafka); a refused join never reaches the group.
    let join = match super::auth::check(&broker, &session, Operation::Read, ResourceType::Group, request.group_id.as_str()) {
        Ok(()) => Ok(join(broker, request, version, client)),
        Err(e) => Err(e),
    };
    async move {
        match join {
            Ok(joined) => joined.await,
            Err(e) => response(JoinOutcome::failed(&GroupError::NotAuthorized(e), &member_id), version),
        }
    }
}

fn join(
    broker: Arc<Broker>,
    request: JoinGroupRequest,
    version: i16,
    client: ClientInfo,
) -> impl Future<Output = JoinGroupResponse> {
    let member_id = request.member_id.to_string();
    let params = JoinParams {
        member_id: member_id.clone(),
        instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves as one.
        rebalance_timeout_ms: if version >= 1 { request.rebalance_timeout_ms } else { request.session_timeout_ms },
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        client,
    };
    let pending = broker.groups().join_group(&request.group_id, params);
    async move {
        // A parked join whose member was replaced by a newer join of its own.
        let outcome = pending.resolve(|| JoinOutcome::failed(&GroupError::RebalanceInProgress, &member_id));
        let outcome = tokio::select! {
            outcome = outcome => outcome,
            // Shutting down: the client finds the coordinator again and rejoins.
            _ = broker.shutdown_signal().cancelled() => JoinOutcome::failed(&GroupError::CoordinatorNotAvailable, &member_id),
        };
        response(outcome, version)
    }
}

fn response(o: JoinOutcome, version: i16) -> JoinGroupResponse {
    let members = o
        .members
        .into_iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.with_group_instance_id(m.instance_id.map(StrBytes::from_string))
            } else {
                member
            }
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(code_of(o.error.as_ref()))
        .with_generation_id(o.generation)
        .with_leader(StrBytes::from_string(o.leader))
        .with_member_id(StrBytes::from_string(o.member_id))
        .with_members(members);
    if version >= 7 {
        // Nullable from v7.
        response.protocol_type = o.protocol_type.map(StrBytes::from_string);
        response.protocol_name = o.protocol_name.map(StrBytes::from_string);
    } else {
        response.protocol_name = Some(StrBytes::from_string(o.protocol_name.unwrap_or_default()));
    }
    if version >= 9 {
        response.skip_assignment = o.skip_assignment;
    }
    response
}
